"""Loaded days that stay true: the drift sensor finds days that changed at the source, and a run of
exactly those days makes them converge (late-arriving events, users erased at the source)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from aptrinsic_dagster.sensors import DRIFT_SENSOR
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES
from aptrinsic_sandbox import Faults, Sandbox

from .helpers import (
    API_KEY,
    DAY_MS,
    ROOT,
    SandboxFactory,
    Warehouse,
    failure_text,
    files_holding,
    ms,
    postgres_tables_holding,
    query,
)

TODAY = dt.datetime.now(dt.UTC).date()
D1, D2, D3 = (TODAY - dt.timedelta(days=k) for k in (3, 2, 1))
EVENTS_JOB = "aptrinsic_daily_events"


class Deployment:
    """A sandbox whose data ends today, the APTRINSIC_* environment, a persistent Dagster instance."""

    def __init__(
        self, root: Path, sandbox: Sandbox, defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch, warehouse: Warehouse
    ) -> None:
        self.root, self.sandbox, self.defs, self.warehouse = root, sandbox, defs, warehouse
        self.env = {
            "APTRINSIC_API_KEY": API_KEY,
            "APTRINSIC_BASE_URL": sandbox.base_url,
            "APTRINSIC_PIPELINES_DIR": str(root / "pipelines"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            **warehouse.env,
        }
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        (root / "dagster_home").mkdir()
        self.instance = dg.DagsterInstance.get()

    def run(self, request: dg.RunRequest | None = None, **kwargs) -> dg.ExecuteInProcessResult:
        if request is not None:
            kwargs.update(
                tags=request.tags, partition_key=request.partition_key, asset_selection=request.asset_selection
            )
        result = self.defs.resolve_job_def(EVENTS_JOB).execute_in_process(
            instance=self.instance, raise_on_error=False, **kwargs
        )
        assert result.success, failure_text(result)
        return result

    def tick(self) -> dg.SensorExecutionData:
        sensor = self.defs.resolve_sensor_def(DRIFT_SENSOR)
        with dg.build_sensor_context(
            instance=self.instance, definitions=self.defs, resources=self.defs.resources
        ) as context:
            return sensor.evaluate_tick(context)

    def landed(self, table: str, day: dt.date) -> int:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        sql = f"SELECT count(*) FROM aptrinsic_data.{table} WHERE date >= %s AND date < %s"
        return self.warehouse.query(sql, start, start + dt.timedelta(days=1))[0][0]

    def assert_exact(self, *days: dt.date) -> None:
        for day in days:
            for table in EVENT_TABLES:
                api = self.sandbox.count("/v1" + table.path, ms(day), ms(day) + DAY_MS)
                assert self.landed(table.name, day) == api, (table.name, day)


@pytest.fixture
def deployment(tmp_path: Path, make_sandbox: SandboxFactory, defs, monkeypatch, warehouse) -> Deployment:
    sandbox = make_sandbox(users=400, accounts=40, events_per_day=40, end_date=TODAY, faults=Faults(rate_cap=0))
    yield Deployment(tmp_path, sandbox, defs, monkeypatch, warehouse)
    assert not files_holding(API_KEY, [tmp_path])
    if warehouse.kind == "postgres":
        assert not postgres_tables_holding(warehouse.url, API_KEY)


@pytest.fixture
def duckdb_deployment(tmp_path: Path, make_sandbox: SandboxFactory, defs, monkeypatch) -> Deployment:
    """For what is DuckDB's own concern (its file lock), not the warehouse's."""
    sandbox = make_sandbox(users=400, accounts=40, events_per_day=40, end_date=TODAY, faults=Faults(rate_cap=0))
    path = tmp_path / "aptrinsic.duckdb"
    yield Deployment(
        tmp_path, sandbox, defs, monkeypatch, Warehouse("duckdb", {"APTRINSIC_DUCKDB_PATH": str(path)}, path)
    )
    assert not files_holding(API_KEY, [tmp_path])


def _days(request: dg.RunRequest) -> list[str]:
    tags = request.tags
    first = tags.get("dagster/asset_partition_range_start", request.partition_key)
    last = tags.get("dagster/asset_partition_range_end", request.partition_key)
    return [d.isoformat() for d in _span(dt.date.fromisoformat(first), dt.date.fromisoformat(last))]


def _span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _range(first: dt.date, last: dt.date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


@pytest.mark.slow
def test_late_events_and_deletions_are_found_by_the_sensor_and_repaired_exactly(deployment: Deployment):
    d = deployment
    d.sandbox.faults.update(late_days=[D2.isoformat()])  # part of D2 has not reached the API yet
    d.run(tags=_range(D1, D3))
    d.assert_exact(D1, D2, D3)

    # Nothing changed at the source: no run request, and nothing read from the warehouse.
    tick = d.tick()
    assert not tick.run_requests and tick.skip_message

    # The late events arrive. Re-counted on demand, D2 warns and D1 still matches.
    d.sandbox.faults.update(late_days=[])
    for day, matches in ((D2, False), (D1, True)):
        recount = d.defs.resolve_job_def("aptrinsic_still_matches_api").execute_in_process(
            instance=d.instance, tags={"dagster/partition": day.isoformat()}, raise_on_error=False
        )
        evaluations = recount.get_asset_check_evaluations()
        assert len(evaluations) == len(EVENT_TABLES) and all(e.check_name == "still_matches_api" for e in evaluations)
        assert all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations)
        assert all(e.passed for e in evaluations) == matches, day
        if not matches:
            changed = [e.metadata["changed_days"].value for e in evaluations if not e.passed]
            assert changed and all(list(c) == [D2.isoformat()] for c in changed)
    # The sensor asks for exactly D2.
    [request] = d.tick().run_requests
    assert _days(request) == [D2.isoformat()] and request.partition_key == D2.isoformat()
    assert {k.path[-1] for k in request.asset_selection} <= {t.name for t in EVENT_TABLES}
    assert d.tick().run_requests[0].run_key == request.run_key  # the same change asks once
    repair = d.run(request)
    assert all(e.passed for e in repair.get_asset_check_evaluations())
    d.assert_exact(D1, D2, D3)
    assert not d.tick().run_requests

    # Two users are erased at the source: exactly the days (and tables) they had events on.
    erased, their_days, their_tables = _users_on_few_days(d)
    d.sandbox.faults.update(deleted_users=erased)
    requests = d.tick().run_requests
    assert sorted(day for r in requests for day in _days(r)) == sorted(day.isoformat() for day in their_days)
    assert {k.path[-1] for r in requests for k in r.asset_selection} == their_tables
    for request in requests:
        assert all(e.passed for e in d.run(request).get_asset_check_evaluations())
    d.assert_exact(D1, D2, D3)
    for table in EVENT_TABLES:
        gone = f"SELECT count(*) FROM aptrinsic_data.{table.name} WHERE identify_id IN (%s, %s)"
        assert d.warehouse.query(gone, *erased) == [(0,)]
    assert not d.tick().run_requests


def _users_on_few_days(d: Deployment) -> tuple[list[str], set[dt.date], set[str]]:
    """Two users whose events fall on as few of the three days as the data allows."""
    union = " UNION ALL ".join(
        f"SELECT DISTINCT '{t.name}' AS t, identify_id, _aptrinsic_day AS day FROM aptrinsic_data.{t.name}"
        for t in EVENT_TABLES
    )
    found: dict[str, tuple[set, set]] = {}
    for table, user, day in d.warehouse.query(union):
        days, tables = found.setdefault(user, (set(), set()))
        days.add(day)
        tables.add(table)
    rows = sorted(((user, days, tables) for user, (days, tables) in found.items()), key=lambda r: (len(r[1]), r[0]))
    chosen = rows[:2]
    return [r[0] for r in chosen], {day for r in chosen for day in r[1]}, {t for r in chosen for t in r[2]}


_SLOW_RUN = """
import sys, dagster as dg
from aptrinsic_dagster.definitions import defs
with dg.DagsterInstance.get() as instance:
    defs().resolve_job_def("aptrinsic_daily_events").execute_in_process(instance=instance, partition_key=sys.argv[1])
"""


@pytest.mark.slow
def test_a_tick_while_a_run_holds_the_warehouse_neither_fails_nor_asks_for_that_day(duckdb_deployment: Deployment):
    d = duckdb_deployment
    d.run(tags=_range(D1, D3))
    d.sandbox.faults.update(deleted_users=[_users_on_few_days(d)[0][0]], latency_ms=150)
    log = open(d.root / "slow-run.log", "w")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, D3.isoformat()], cwd=ROOT, env={**os.environ, **d.env}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not d.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        tick = d.tick()  # the run is loading D3 and may hold DuckDB's lock: the sensor reads neither
        assert proc.poll() is None, "the tick came after the run"
        assert D3.isoformat() not in {day for r in tick.run_requests for day in _days(r)}
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, (d.root / "slow-run.log").read_text()[-3000:]


@pytest.mark.slow
def test_under_dagster_dev_the_sensor_repairs_a_changed_day_by_itself(deploy, tmp_path, monkeypatch):
    from .dev_server import gql, running_dg_dev
    from .test_dagster_dev import _launch, _wait

    monkeypatch.setenv("APTRINSIC_DRIFT_INTERVAL_SECONDS", "5")
    deployment = deploy(users=150, events_per_day=40, end_date=TODAY, faults=Faults(late_days=(D2.isoformat(),)))
    sandbox = deployment.sandbox
    status = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
    repairs = """{ runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "aptrinsic_event_drift"}]}) {
      ... on Runs { results { runId status } } } }"""
    with running_dg_dev(tmp_path) as (url, _):
        loaded = _launch(url, D2.isoformat())
        _wait(lambda: gql(url, status, id=loaded)["runOrError"]["status"] == "SUCCESS", 300, "the load failed")
        sandbox.faults.update(late_days=[])  # the late events arrive
        results = _wait(lambda: gql(url, repairs)["runsOrError"]["results"], 240, "the sensor launched no run")
        finished = ("SUCCESS", "FAILURE", "CANCELED")
        _wait(lambda: gql(url, repairs)["runsOrError"]["results"][0]["status"] in finished, 300, "repair unfinished")
        [repair] = gql(url, repairs)["runsOrError"]["results"]
        assert repair["runId"] == results[0]["runId"] and repair["status"] == "SUCCESS"
    start = dt.datetime.combine(D2, dt.time(), dt.UTC)
    for table in EVENT_TABLES:
        sql = f"SELECT count(*) FROM aptrinsic_data.{table.name} WHERE date >= ? AND date < ?"
        landed = query(deployment.duckdb_path, sql, start, start + dt.timedelta(days=1))[0][0]
        assert landed == sandbox.count("/v1" + table.path, ms(D2), ms(D2) + DAY_MS), table.name
