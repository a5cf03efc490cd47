"""Faults, crashes, bad input, idempotency and secrets, end to end through Dagster.

Every test here works below a folder of its own (Dagster storage, dlt working dirs, the DuckDB file,
logs of killed runs), and the ``ops`` fixture scans all of it for the API key when the test ends.
"""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from aptrinsic_dagster.assets import POOL
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES
from aptrinsic_sandbox import Faults, Sandbox
from aptrinsic_sandbox.dev import prepare_dagster_home
from aptrinsic_sandbox.server import INJECTED_400

from .helpers import (
    API_KEY,
    DAY_MS,
    END_DATE,
    SandboxFactory,
    Warehouse,
    failure_text,
    files_holding,
    ms,
    postgres_tables_holding,
    row_count,
)

ROOT = Path(__file__).resolve().parents[1]
BACKFILL = ("2026-03-01", "2026-03-14")  # 14 daily partitions


class Ops:
    """One deployment below the test's folder: sandbox, env, a persistent Dagster instance."""

    def __init__(self, root: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, warehouse: Warehouse) -> None:
        self.root, self.sandbox, self.warehouse = root, sandbox, warehouse
        self.duckdb_path = warehouse.duckdb_path
        self.env = {
            "APTRINSIC_API_KEY": API_KEY,
            "APTRINSIC_BASE_URL": sandbox.base_url,
            "APTRINSIC_PIPELINES_DIR": str(root / "pipelines"),
            **warehouse.env,
        }
        # The shipped instance settings (pool limit 1), persistent: a killed run and its re-run see
        # the same slots, as they do for a person with DAGSTER_HOME set.
        self.env["DAGSTER_HOME"] = str(prepare_dagster_home(root / "dagster_home"))
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        self.instance = dg.DagsterInstance.get()

    def run(self, defs: dg.Definitions, job: str, **kwargs) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def(job).execute_in_process(instance=self.instance, raise_on_error=False, **kwargs)

    def backfill(self, defs: dg.Definitions, first: str = BACKFILL[0], last: str = BACKFILL[1]):
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        return self.run(defs, "aptrinsic_daily_events", tags=tags)


@pytest.fixture
def ops(tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    root = tmp_path / "deployment"

    made: list[Ops] = []

    def make(warehouse: Warehouse | None = None, **sandbox_args) -> Ops:
        """``warehouse``: the parametrized ``warehouse`` fixture; DuckDB below the test's folder if None."""
        root.mkdir(exist_ok=True)
        warehouse = warehouse or Warehouse("duckdb", {"APTRINSIC_DUCKDB_PATH": str(root / "aptrinsic.duckdb")},
                                           root / "aptrinsic.duckdb")  # fmt: skip
        made.append(Ops(root, make_sandbox(**sandbox_args), monkeypatch, warehouse))
        return made[-1]

    yield make
    # Dagster storage (event logs, compute logs, run config), dlt working dirs of failed and killed
    # runs (state, traces, load packages), the DuckDB file and the captured output of killed runs;
    # on Postgres, every text column of every table (warehouse, dlt's _dlt_* tables).
    leaks = files_holding(API_KEY, [root]) if root.exists() else []
    assert not leaks, leaks
    for o in made:
        if o.warehouse.kind == "postgres":
            assert not postgres_tables_holding(o.warehouse.url, API_KEY)


def _assert_exact_per_day(ops: Ops, first: str, last: str) -> None:
    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    while day <= end:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        for table in EVENT_TABLES:
            landed = ops.warehouse.query(
                f"SELECT count(*), count(DISTINCT event_id) FROM aptrinsic_data.{table.name} "
                "WHERE date >= %s AND date < %s",
                start,
                start + dt.timedelta(days=1),
            )[0]
            expected = ops.sandbox.count("/v1" + table.path, ms(day), ms(day) + DAY_MS)
            assert landed == (expected, expected), (table.name, day)
        day += dt.timedelta(days=1)


# -- 1. faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_snapshots_and_a_14_day_backfill_are_exact_under_faults(defs, ops):
    faults = Faults(rate_429=0.05, rate_5xx=0.02, rate_reset=0.01, latency_jitter_ms=20, rate_cap=0)
    o = ops(users=2500, accounts=150, events_per_day=120, features=230, faults=faults)
    snapshots = o.run(defs, "aptrinsic_snapshots", run_config=_page_size(100))
    events = o.backfill(defs)
    assert snapshots.success and events.success, failure_text(snapshots) + failure_text(events)
    assert {"429", "503", "0"} <= set(o.sandbox.stats.snapshot()["statuses"]), "the faults happened"
    for table in SNAPSHOT_TABLES:
        assert row_count(o.duckdb_path, table.name) == o.sandbox.count("/v1" + table.path), table.name
    assert row_count(o.duckdb_path, "user_preferences") == 2500
    _assert_exact_per_day(o, *BACKFILL)


def _page_size(size: int) -> dict:
    return {"resources": {"aptrinsic": {"config": {"page_size": size}}}}


# -- 2. crashes -------------------------------------------------------------------------------------

_RUN_BACKFILL = """
import sys, dagster as dg
from aptrinsic_dagster.definitions import defs
tags = {"dagster/asset_partition_range_start": sys.argv[1], "dagster/asset_partition_range_end": sys.argv[2]}
with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME: the test's instance, as the CLI would use
    defs().resolve_job_def("aptrinsic_daily_events").execute_in_process(instance=instance, tags=tags)
"""


def _start_backfill(o: Ops, name: str) -> tuple[subprocess.Popen, Path]:
    log = o.root / f"{name}-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_BACKFILL, *BACKFILL],
        cwd=ROOT,
        env={**os.environ, **o.env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return proc, log


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _wait_for_line(proc: subprocess.Popen, log: Path, pattern: str, timeout: float = 120) -> re.Match:
    deadline = time.monotonic() + timeout
    while not (found := re.search(pattern, log.read_text())):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no line matching {pattern!r} in {log}"
        time.sleep(0.2)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["extract", "load"])
def test_kill_9_mid_run_then_rerun_gives_exact_counts_and_no_duplicates(defs, ops, moment, warehouse):
    o = ops(warehouse, users=300, events_per_day=2000, faults=Faults(latency_ms=20, rate_cap=0))
    assert o.backfill(defs, "2026-03-02", "2026-03-02").success  # an earlier load, which must survive
    proc, _ = _start_backfill(o, "killed-run")
    if moment == "extract":
        _kill_when(proc, lambda: o.sandbox.stats.snapshot()["total_requests"] > 40)
    else:
        # The package is normalized: the load into DuckDB is starting or under way.
        _kill_when(proc, lambda: any((o.root / "pipelines").glob("*/aptrinsic_pipeline/load/normalized/*/*")))
    (killed,) = o.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

    # No daemon on this path: the killed run stays STARTED and keeps its slot in the pool, so the
    # re-run waits on it, and its log line says which run holds the pool and the command to free it.
    rerun, log = _start_backfill(o, "rerun")
    command = _wait_for_line(rerun, log, r"`(python -m aptrinsic_dagster\.recover --fail (\S+))`")
    assert command[2] == killed.run_id and f"Run {killed.run_id} (STARTED, pid " in log.read_text()
    freed = subprocess.run(
        [sys.executable, *command[1].split()[1:]], cwd=ROOT, env={**os.environ, **o.env}, capture_output=True, text=True
    )
    assert freed.returncode == 0 and f"run {killed.run_id}: now FAILURE" in freed.stdout, freed

    assert rerun.wait(timeout=300) == 0, log.read_text()[-3000:]
    runs = o.instance.get_runs(dg.RunsFilter(job_name="aptrinsic_daily_events"))
    assert [r.status for r in runs[:2]] == [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
    _assert_exact_per_day(o, *BACKFILL)
    checks = o.instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    # Freshness checks judge the calendar (a March backfill leaves yesterday missing), not the load.
    evaluations = [e.dagster_event.event_specific_data for e in checks]
    assert evaluations and all(e.passed for e in evaluations if e.check_name != "freshness_check")
    assert o.instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []


# -- 3. concurrency is in test_dagster_dev.py (seven partition runs and a snapshot run at once) ----

# -- 4. idempotency -------------------------------------------------------------------------------


def _table_contents(warehouse: Warehouse) -> dict[str, list[dict]]:
    return {t.name: warehouse.contents(t.name, "event_id") for t in EVENT_TABLES}


@pytest.mark.slow
def test_three_partitions_each_rerun_three_times_leave_identical_tables(defs, ops, warehouse):
    o = ops(warehouse, users=200, events_per_day=60)
    for key in ("2026-03-05", "2026-03-06", "2026-03-07"):
        result = o.run(defs, "aptrinsic_daily_events", partition_key=key)
        # Freshness checks judge the calendar (these March days leave yesterday missing), not the load.
        loads = [e for e in result.get_asset_check_evaluations() if e.check_name != "freshness_check"]
        assert result.success and loads and all(e.passed for e in loads)
    first = _table_contents(o.warehouse)
    for _ in range(2):
        for key in ("2026-03-07", "2026-03-05", "2026-03-06"):
            assert o.run(defs, "aptrinsic_daily_events", partition_key=key).success
        assert _table_contents(o.warehouse) == first
    _assert_exact_per_day(o, "2026-03-05", "2026-03-07")


# -- 5. bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "status"), [(None, None), ("not-the-key", 401), ("read-only-key", 403)], ids=["none", "401", "403"]
)
def test_bad_keys_fail_fast_naming_the_env_var_and_region(defs, ops, monkeypatch, key, status):
    o = ops(users=20, forbidden_keys=("read-only-key",))
    if key is None:
        monkeypatch.delenv("APTRINSIC_API_KEY")
    else:
        monkeypatch.setenv("APTRINSIC_API_KEY", key)
    result = o.run(defs, "aptrinsic_snapshots")
    assert not result.success
    text = failure_text(result)
    assert "APTRINSIC_API_KEY" in text
    if status:
        assert f"answered {status}" in text and "region" in text
        # One request per endpoint the run got to, none retried.
        assert all(n == 1 for n in o.sandbox.stats.snapshot()["requests"].values())
    else:
        assert o.sandbox.stats.snapshot()["total_requests"] == 0
    if key:
        assert key not in text


def test_an_unknown_partition_is_refused_before_the_run(defs, ops):
    o = ops(users=5)
    with pytest.raises(dg.DagsterUnknownPartitionError, match=r"1999-01-01"):
        o.run(defs, "aptrinsic_daily_events", partition_key="1999-01-01")
    assert o.sandbox.stats.snapshot()["total_requests"] == 0


def test_a_page_size_above_the_maximum_fails_before_any_request(defs, ops):
    o = ops(users=5)
    config = {"resources": {"aptrinsic": {"config": {"page_sizes": {"feature_flags": 500}}}}}
    result = o.run(defs, "aptrinsic_snapshots", run_config=config)
    assert not result.success
    assert "allows 1..200 on /feature" in failure_text(result)
    assert o.sandbox.stats.snapshot()["total_requests"] == 0


def test_an_api_400_surfaces_the_api_message(defs, ops):
    o = ops(users=5, faults=Faults(rate_400=1.0))
    result = o.run(defs, "aptrinsic_daily_events", partition_key="2026-03-10")
    assert not result.success
    assert "answered 400" in failure_text(result) and INJECTED_400 in failure_text(result)


@pytest.mark.slow
def test_a_malformed_page_fails_clearly_and_commits_nothing(defs, ops):
    o = ops(users=50, events_per_day=30)
    assert o.run(defs, "aptrinsic_daily_events", partition_key="2026-03-10").success
    before = _table_contents(o.warehouse)
    o.sandbox.faults.update(rate_malformed=0.5)
    result = o.run(defs, "aptrinsic_daily_events", partition_key="2026-03-11")
    assert not result.success and "malformed JSON" in failure_text(result)
    assert _table_contents(o.warehouse) == before


# -- 7. schema drift --------------------------------------------------------------------------------


@pytest.mark.slow
def test_schema_drift_loads_and_reconciles(defs, ops, make_sandbox, monkeypatch, warehouse):
    o = ops(warehouse, users=200)
    assert o.run(defs, "aptrinsic_snapshots").success
    drifted = make_sandbox(users=200, extra_custom_attribute="region", seats_as_string=True)
    monkeypatch.setenv("APTRINSIC_BASE_URL", drifted.base_url)
    result = o.run(defs, "aptrinsic_snapshots")
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    columns = {
        c
        for (c,) in o.warehouse.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'aptrinsic_data' AND table_name = 'users'"
        )
    }
    assert o.warehouse.count("users") == 200
    assert {"custom_attributes__region", "custom_attributes__seats", "custom_attributes__seats__v_text"} <= columns


def test_dlt_native_secret_resolution_keeps_the_key_out_of_the_working_dir(ops, monkeypatch, tmp_path):
    # The key as dlt itself resolves it (the secrets.toml path), rather than APTRINSIC_API_KEY.
    from aptrinsic_dagster.sources.aptrinsic import aptrinsic_source
    from aptrinsic_dagster.sources.aptrinsic.pipeline import load, make_pipeline, warehouse_destination

    o = ops(users=30, events_per_day=5)
    monkeypatch.delenv("APTRINSIC_API_KEY")
    monkeypatch.setenv("SOURCES__APTRINSIC__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__APTRINSIC__BASE_URL", o.sandbox.base_url)
    pipeline = make_pipeline(warehouse_destination(duckdb_path=o.duckdb_path), pipelines_dir=str(o.root / "dlt_native"))
    load(pipeline, aptrinsic_source(start="2026-03-10", end=END_DATE).with_resources("users", "events_lead"))
    assert row_count(o.duckdb_path, "users") == 30
    assert any((o.root / "dlt_native").rglob("state.json")), "the scan covers dlt's working dir"
    assert not files_holding(API_KEY, [o.root / "dlt_native"])
