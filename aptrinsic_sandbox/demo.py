"""``make demo``: the main job end to end on a fresh machine, against the sandbox.

Starts the sandbox on loopback, materializes every snapshot asset and the last 7 daily event
partitions into ``aptrinsic.duckdb`` through Dagster (runs recorded in ``.dagster_home``, so
``make dev`` shows them), runs the checks, prints rows per table and check outcomes, and stops
the sandbox. Exits non-zero if a run or a check failed.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import sys
import time

import dagster as dg

from aptrinsic_dagster import settings
from aptrinsic_dagster.definitions import defs
from aptrinsic_dagster.sources.aptrinsic import API_COUNTS_TABLE
from aptrinsic_dagster.sources.aptrinsic.pipeline import DATASET_NAME, DEFAULT_DUCKDB_PATH

from .dev import ROOT, SANDBOX_KEY, prepare_dagster_home, sandbox_for_demo
from .progress import StepProgress, log_to

LOG = ROOT / ".dagster_home" / "demo.log"


def main() -> int:
    started = time.perf_counter()
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(ROOT / ".dagster_home"))
    duckdb_path = os.environ.setdefault(settings.DUCKDB_PATH, str(ROOT / DEFAULT_DUCKDB_PATH))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=6)
    LOG.unlink(missing_ok=True)
    # Dagster's and dlt's own logs go to LOG; the terminal shows one line per step.
    with log_to(LOG), sandbox_for_demo() as sandbox:
        os.environ.update({settings.API_KEY: SANDBOX_KEY, settings.BASE_URL: sandbox.base_url})
        print(f"sandbox serving {sandbox.base_url}; Dagster home {os.environ['DAGSTER_HOME']}", flush=True)
        definitions = defs()
        runs = {
            "snapshots": ("aptrinsic_snapshots", {}),
            f"events {first}..{yesterday}": (
                "aptrinsic_daily_events",
                {
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": yesterday.isoformat(),
                },
            ),
        }
        results = {}
        with dg.DagsterInstance.get() as instance:
            for number, (name, (job, tags)) in enumerate(runs.items(), 1):
                print(f"\n[{number}/{len(runs)}] {name} (job {job})", flush=True)
                with StepProgress(instance, sandbox, job):
                    results[name] = definitions.resolve_job_def(job).execute_in_process(
                        instance=instance, raise_on_error=False, tags=tags
                    )
        requests = sandbox.stats.snapshot()["total_requests"]
    print()
    ok = _report(results, duckdb_path)
    print(f"\n{requests} API requests; {time.perf_counter() - started:.1f} s in all; DuckDB: {duckdb_path}")
    print(f"Dagster's full log: {LOG}; the runs: make dev, then http://127.0.0.1:3000/runs")
    return 0 if ok else 1


def _report(results: dict[str, dg.ExecuteInProcessResult], duckdb_path: str) -> bool:
    import duckdb

    ok = True
    for name, result in results.items():
        print(f"run {name}: {'SUCCESS' if result.success else 'FAILURE'} ({result.run_id})")
        ok &= result.success
    with duckdb.connect(duckdb_path, read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [DATASET_NAME]
            ).fetchall()
            if not t.startswith("_dlt") and t != API_COUNTS_TABLE
        ]
        print("\nrows per table")
        for table in tables:
            print(f"  {table:<24} {con.execute(f'SELECT count(*) FROM {DATASET_NAME}.{table}').fetchone()[0]:>9,}")
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for result in results.values():
        for evaluation in result.get_asset_check_evaluations():
            outcomes[evaluation.check_name]["passed" if evaluation.passed else evaluation.severity.value] += 1
            if not evaluation.passed:
                ok &= evaluation.severity != dg.AssetCheckSeverity.ERROR
                print(f"  FAILED {evaluation.asset_key.to_user_string()} {evaluation.check_name}")
    print("\nchecks")
    for check, counts in sorted(outcomes.items()):
        print(f"  {check:<20} " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return ok


if __name__ == "__main__":
    sys.exit(main())
