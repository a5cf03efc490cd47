"""``make demo``: the main job end to end on a fresh machine, against the sandbox.

Starts the sandbox on loopback, materializes every snapshot asset and the last 7 daily event
partitions into ``aptrinsic.duckdb`` through Dagster (runs recorded in ``.dagster_home``, so
``make dev`` shows them), runs the checks, builds the dbt marts for the same days (dbt tests as
checks), prints rows per table, check outcomes and a few mart figures, and stops the sandbox.
Exits non-zero if a run or a check failed.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import sys
import time

import dagster as dg

from aptrinsic_dagster import settings
from aptrinsic_dagster.definitions import defs as loads_defs
from aptrinsic_dagster.marts import MARTS_SCHEMA
from aptrinsic_dagster.marts_definitions import defs as marts_defs
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
        # The two code locations of workspace.yaml: the loads, then the marts.
        loads, marts = loads_defs(), marts_defs()
        days = {
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": yesterday.isoformat(),
        }
        runs = {
            "snapshots": (loads, "aptrinsic_snapshots", {}),
            f"events {first}..{yesterday}": (loads, "aptrinsic_daily_events", days),
            # In `make dev` the marts follow by themselves (declarative automation); here, one run.
            f"marts {first}..{yesterday}": (marts, "aptrinsic_marts", days),
        }
        results = {}
        with dg.DagsterInstance.get() as instance:
            for number, (name, (definitions, job, tags)) in enumerate(runs.items(), 1):
                print(f"\n[{number}/{len(runs)}] {name} (job {job})", flush=True)
                # dbt's own log lines (dagster-dbt re-prints them on stdout) join Dagster's in the log
                # file; the progress lines keep the terminal's stdout.
                with StepProgress(instance, sandbox, job, out=sys.stdout), contextlib.redirect_stdout(sys.stderr):
                    results[name] = definitions.resolve_job_def(job).execute_in_process(
                        instance=instance, raise_on_error=False, tags=tags
                    )
        requests = sandbox.stats.snapshot()["total_requests"]
    print()
    ok = _report(results, duckdb_path)
    _marts(duckdb_path, yesterday)
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
            mart = evaluation.asset_key.path[0] == MARTS_SCHEMA
            name = "dbt tests (marts)" if mart else evaluation.check_name
            outcomes[name]["passed" if evaluation.passed else evaluation.severity.value] += 1
            if not evaluation.passed:
                ok &= evaluation.severity != dg.AssetCheckSeverity.ERROR
                print(f"  FAILED {evaluation.asset_key.to_user_string()} {evaluation.check_name}")
    print("\nchecks")
    for check, counts in sorted(outcomes.items()):
        print(f"  {check:<20} " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return ok


def _marts(duckdb_path: str, day: dt.date) -> None:
    import duckdb

    marts = MARTS_SCHEMA
    with duckdb.connect(duckdb_path, read_only=True) as con:
        active = con.execute(f"SELECT dau, wau, mau, dau_over_mau FROM {marts}.active_users_daily WHERE day = ?", [day])
        dau, wau, mau, stickiness = active.fetchone() or (0, 0, 0, None)
        print(f"\nmarts ({marts}), {day}: DAU {dau:,}, WAU {wau:,}, MAU {mau:,} (MAU over the days loaded)", end="")
        print(f", DAU/MAU {stickiness:.2f}" if stickiness is not None else "")
        top = con.execute(
            f"SELECT feature_name, users, share_of_dau FROM {marts}.feature_adoption_daily WHERE day = ? "
            "ORDER BY users DESC, feature_name LIMIT 5",
            [day],
        ).fetchall()
        print(
            "  top features: " + "; ".join(f"{name} {users} users ({share:.0%} of DAU)" for name, users, share in top)
        )
        responses, score = con.execute(
            f"SELECT sum(responses), 100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(responses), 0) "
            f"FROM {marts}.nps_daily"
        ).fetchone()
        print(f"  NPS over the days loaded: {score:+.0f} from {responses:,} responses" if responses else "  no NPS")


if __name__ == "__main__":
    sys.exit(main())
