"""Real materializations through Dagster against the sandbox, into a real DuckDB file."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES
from aptrinsic_sandbox import Faults

from .conftest import Deployment
from .helpers import API_KEY, failure_text, ms, query, row_count

RANGE = {"dagster/asset_partition_range_start": "2026-03-12", "dagster/asset_partition_range_end": "2026-03-13"}
RANGE_MS = (ms(dt.date(2026, 3, 12)), ms(dt.date(2026, 3, 14)))


def run(defs: dg.Definitions, deployment: Deployment, job: str, **kwargs) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=deployment.instance, raise_on_error=False, **kwargs)


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
def test_every_asset_materializes_with_the_api_counts_and_checks_pass(defs, deploy):
    deployment = deploy(users=400, accounts=30, events_per_day=60)
    snapshots = run(defs, deployment, "aptrinsic_snapshots")
    assert snapshots.success
    events = run(defs, deployment, "aptrinsic_daily_events", tags=RANGE)
    assert events.success
    sandbox, path = deployment.sandbox, deployment.duckdb_path
    for table in SNAPSHOT_TABLES:
        assert row_count(path, table.name) == sandbox.count("/v1" + table.path), table.name
    assert row_count(path, "user_preferences") == 400
    for table in EVENT_TABLES:
        assert row_count(path, table.name) == sandbox.count("/v1" + table.path, *RANGE_MS), table.name
    # Freshness checks judge the calendar, not this load: test_freshness.py covers them.
    evaluations = {k: e for k, e in {**checks(snapshots), **checks(events)}.items() if k[1] != "freshness_check"}
    assert len(evaluations) == 66 and all(e.passed for e in evaluations.values())
    users_check = evaluations[("users", "rows_match_api")].metadata
    assert users_check["expected"].value == users_check["actual"].value == 400
    window = evaluations[("events_lead", "rows_match_api")].metadata["window"].value
    assert window == "[2026-03-12T00:00:00+00:00, 2026-03-14T00:00:00+00:00)"
    materialized = events.asset_materializations_for_node("load_aptrinsic_events")
    assert {m.partition for m in materialized} == {"2026-03-12", "2026-03-13"}
    # The table's columns once per table: on the range's last day, the asset's latest materialization.
    described = [m.partition for m in materialized if "dagster/column_schema" in m.metadata]
    assert described == ["2026-03-13"] * len(EVENT_TABLES)


def _contents(path: Path, table: str) -> list[tuple]:
    return query(path, f"SELECT * EXCLUDE (_dlt_load_id) FROM aptrinsic_data.{table} ORDER BY event_id")


@pytest.mark.slow
def test_rerunning_a_partition_leaves_identical_rows(defs, deploy):
    deployment = deploy(users=100, events_per_day=80)
    assert run(defs, deployment, "aptrinsic_daily_events", partition_key="2026-03-10").success
    before = {t.name: _contents(deployment.duckdb_path, t.name) for t in EVENT_TABLES}
    assert run(defs, deployment, "aptrinsic_daily_events", partition_key="2026-03-10").success
    assert {t.name: _contents(deployment.duckdb_path, t.name) for t in EVENT_TABLES} == before
    assert all(before.values())


@pytest.mark.slow
def test_a_first_day_without_events_of_a_type_creates_its_table_and_checks_pass(defs, deploy):
    # A fresh warehouse, and no session events that day: the table gets only the day's marker row,
    # which never lands. The table must still have `date`, which the checks count by.
    deployment = deploy(users=100, events_per_day=40, event_weights={"session": 0.0})
    result = run(defs, deployment, "aptrinsic_daily_events", partition_key="2026-03-10")
    assert result.success, failure_text(result)
    evaluations = {k: e for k, e in checks(result).items() if k[1] != "freshness_check"}
    assert evaluations[("events_session", "rows_match_api")].passed
    assert all(e.passed for e in evaluations.values())
    assert row_count(deployment.duckdb_path, "events_session") == 0
    assert row_count(deployment.duckdb_path, "events_custom") > 0
    columns = query(deployment.duckdb_path, "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'events_session' AND column_name = 'date'")  # fmt: skip
    assert columns == [("date", "TIMESTAMP WITH TIME ZONE")]


@pytest.mark.slow
def test_records_the_api_drops_fail_the_load_and_block_downstream(defs, deploy):
    deployment = deploy(users=3000, events_per_day=300, faults=Faults(drop_rate=0.02))
    snapshots = run(defs, deployment, "aptrinsic_snapshots")
    assert not snapshots.success
    # A short page before totalHits is reached fails the extract: nothing is swapped in.
    assert "records totalHits promised" in failure_text(snapshots)
    assert not snapshots.asset_materializations_for_node("load_aptrinsic_user_preferences")
    events = run(defs, deployment, "aptrinsic_daily_events", partition_key="2026-03-10")
    assert not events.success and "records totalHits promised" in failure_text(events)


def test_without_a_key_the_run_fails_at_start_and_sends_nothing(defs, deploy, monkeypatch: pytest.MonkeyPatch):
    deployment = deploy(users=10)
    monkeypatch.delenv("APTRINSIC_API_KEY")
    result = run(defs, deployment, "aptrinsic_snapshots")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "No Aptrinsic API key" in str(failure.event_specific_data) and "APTRINSIC_API_KEY" in str(
        failure.event_specific_data
    )
    assert deployment.sandbox.stats.snapshot()["total_requests"] == 0


def test_the_key_appears_in_no_event_log_record(defs, deploy):
    deployment = deploy(users=50, events_per_day=10)
    result = run(defs, deployment, "aptrinsic_snapshots")
    assert result.success
    records = deployment.instance.get_records_for_run(result.run_id).records
    assert records and not any(API_KEY in str(r.event_log_entry) for r in records)
    assert API_KEY not in str(deployment.instance.get_run_by_id(result.run_id).run_config)
