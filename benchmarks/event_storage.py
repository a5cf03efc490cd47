"""What Dagster's own record of a backfill costs on each instance a user runs: one run over a range of
daily partitions of the event tables (11 assets, 44 checks), a few events a day, so that the run is
mostly Dagster's bookkeeping: a "materialization planned" event and a materialization per partition
and asset, and a planned check row per partition and check.

Side by side, each in a Dagster database of its own:
- the benchmarks' in-memory instance (``DagsterInstance.ephemeral()``, what ``bench.py`` runs);
- ``make dev``'s instance (dagster.yaml: SQLite files in DAGSTER_HOME);
- production's (deploy/dagster.yaml: Postgres), without and with the image's
  ``DAGSTER_EVENT_BATCH_SIZE`` (deploy/Dockerfile).

Printed per instance, for the run through ``execute_in_process``: its whole time; its creation (the
planned events, up to RUN_START), its execution after that, and the span of its materializations.

    .venv/bin/python -m benchmarks.event_storage [--days 365]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from aptrinsic_dagster.assets import EVENT_NAMES
from aptrinsic_dagster.names import asset_key
from aptrinsic_dagster_tests.helpers import ROOT, image_env
from aptrinsic_sandbox.postgres import PostgresServer
from benchmarks.bench import END as BENCH_END
from benchmarks.bench import KEY, commit, machine, spawn_sandbox

END = dt.date.fromisoformat(BENCH_END)


def _measure(instance: dg.DagsterInstance, job: dg.JobDefinition, tags: dict[str, str]) -> dict:
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.time()
    result = job.execute_in_process(run_config=quiet, instance=instance, tags=tags, raise_on_error=False)
    ended = time.time()
    if not result.success:
        raise SystemExit("the run failed")
    (run_start,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_START)
    stamps = [e.timestamp for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)]
    return {
        "create": run_start.timestamp - started,
        "execute": ended - run_start.timestamp,
        "run": ended - started,
        "materializations": max(stamps) - min(stamps),
        # Partitions materialized, per asset: main checks that each of the 11 holds the whole range.
        "partitions": {len(instance.get_materialized_partitions(asset_key(name))) for name in EVENT_NAMES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    first = END - dt.timedelta(days=args.days)
    work = Path(tempfile.mkdtemp(prefix="aptrinsic-events-bench-"))
    data = ("--users", "50", "--accounts", "5", "--events-per-day", "3", "--days", str(args.days + 5))
    sandbox, base_url = spawn_sandbox("--port", "0", *data)
    pg = PostgresServer.start()
    try:
        os.environ.update(
            APTRINSIC_API_KEY=KEY,
            APTRINSIC_BASE_URL=base_url,
            APTRINSIC_START_DATE=first.isoformat(),
            APTRINSIC_PIPELINES_DIR=str(work / "pipelines"),
        )
        from aptrinsic_dagster.definitions import defs

        job = defs().resolve_job_def("aptrinsic_daily_events")
        tags = {
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": (END - dt.timedelta(days=1)).isoformat(),
        }
        batch = image_env()["DAGSTER_EVENT_BATCH_SIZE"]
        instances = {
            "in memory (the benchmarks')": ("", None, "0"),
            "SQLite (make dev)": ("dagster.yaml", None, "0"),
            "Postgres (production), no batch": ("deploy/dagster.yaml", "pg_unbatched", "0"),
            f"Postgres (production), batch {batch}": ("deploy/dagster.yaml", "pg_batched", batch),
        }
        rows = {}
        for name, (settings, database, batch_size) in instances.items():
            home = work / f"home_{len(rows)}"
            home.mkdir()
            os.environ.update(
                DAGSTER_HOME=str(home),
                DAGSTER_EVENT_BATCH_SIZE=batch_size,
                APTRINSIC_DUCKDB_PATH=str(work / f"warehouse_{len(rows)}.duckdb"),
            )
            if database:
                pg.create_database(database)
                os.environ.update(pg.dagster_storage_env(database))
            if settings:
                shutil.copy(ROOT / settings, home / "dagster.yaml")
                instance = dg.DagsterInstance.get()
            else:
                instance = dg.DagsterInstance.ephemeral()
            with instance:
                rows[name] = _measure(instance, job, tags)
        if any(row["partitions"] != {args.days} for row in rows.values()):
            raise SystemExit(f"a range of {args.days} days left other partition counts: {rows}")
        base = rows["in memory (the benchmarks')"]["run"]
        print(f"date {dt.date.today().isoformat()}  commit {commit()}  machine {machine()}")
        print(f"Dagster's record of one run over {args.days} days (11 event assets, 44 checks), a few events a day")
        columns = ("run s", "creation s", "execution s", "materializations s", "partitions", "run vs in memory")
        print(f"{'instance':38}", *columns)
        for name, row in rows.items():
            print(f"{name:38} {row['run']:5.1f} {row['create']:10.1f} {row['execute']:11.1f} "
                  f"{row['materializations']:18.1f} {args.days:10d} {row['run'] / base:15.1f}x")  # fmt: skip
    finally:
        pg.stop()
        sandbox.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
