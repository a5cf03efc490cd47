"""The code location as Dagster sees it: keys, lineage, groups, checks, jobs, schedules."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = [
    "events_custom",
    "events_email",
    "events_engagement_view",
    "events_feature_match",
    "events_form_submit",
    "events_identify",
    "events_lead",
    "events_page_view",
    "events_segment_match",
    "events_session",
    "survey_responses",
]
SNAPSHOTS = [
    "account_attributes",
    "accounts",
    "admin_integrations",
    "articles",
    "engagements",
    "feature_flags",
    "kcbot",
    "segments",
    "user_attributes",
    "user_preferences",
    "users",
]


@pytest.mark.slow
def test_dagster_definitions_validate_passes():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_exactly_one_asset_per_table_and_no_phantom_lineage(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {f"aptrinsic/{t}" for t in EVENTS + SNAPSHOTS}
    edges = {
        (p.to_user_string(), k.to_user_string()) for k in graph.get_all_asset_keys() for p in graph.get(k).parent_keys
    }
    assert edges == {("aptrinsic/users", "aptrinsic/user_preferences")}


def test_groups_kinds_descriptions_partitions_and_pools(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    for table in EVENTS + SNAPSHOTS:
        node = graph.get(dg.AssetKey(["aptrinsic", table]))
        assert node.group_name == ("aptrinsic_events" if table in EVENTS else "aptrinsic_snapshots")
        assert {"dlt", "duckdb"} <= set(node.kinds)
        assert "GET /v1/" in node.description
        assert (node.partitions_def is not None) == (table in EVENTS)
        if table in EVENTS:
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
    for assets_def in defs.assets:
        assert assets_def.op.pool == "aptrinsic_warehouse"
    for checks_def in defs.asset_checks:
        # Freshness checks read only Dagster's own records, never the warehouse: no pool needed.
        freshness = {spec.name for spec in checks_def.check_specs} == {"freshness_check"}
        assert checks_def.op.pool == (None if freshness else "aptrinsic_warehouse")


def test_four_checks_per_table_and_reconciliation_blocks(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    keys = {(k.asset_key.path[-1], k.name) for k in graph.asset_check_keys}
    assert keys == {
        (t, c)
        for t in EVENTS + SNAPSHOTS
        for c in ("rows_match_api", "no_duplicate_keys", "not_empty", "freshness_check")
    }
    blocking = {spec.key.name for checks_def in defs.asset_checks for spec in checks_def.check_specs if spec.blocking}
    assert blocking == {"rows_match_api"}


def test_jobs_and_schedules(defs: dg.Definitions):
    assert {j.name for j in defs.jobs} == {"aptrinsic_daily_events", "aptrinsic_snapshots"}
    assert {s.name for s in defs.schedules} == {"aptrinsic_daily_events_schedule", "aptrinsic_snapshots_schedule"}
    events_job = defs.resolve_job_def("aptrinsic_daily_events")
    assert {k.path[-1] for k in events_job.asset_layer.selected_asset_keys} == set(EVENTS)
    snapshots_job = defs.resolve_job_def("aptrinsic_snapshots")
    assert {k.path[-1] for k in snapshots_job.asset_layer.selected_asset_keys} == set(SNAPSHOTS)


def test_the_daily_schedule_asks_for_yesterday_shortly_after_midnight_utc(defs: dg.Definitions):
    schedule = defs.resolve_schedule_def("aptrinsic_daily_events_schedule")
    assert schedule.cron_schedule == "15 0 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2026, 3, 15, 0, 15, tzinfo=dt.UTC)
    result = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert [r.partition_key for r in result.run_requests] == ["2026-03-14"]
    snapshots = defs.resolve_schedule_def("aptrinsic_snapshots_schedule")
    assert snapshots.cron_schedule == "45 0 * * *" and snapshots.default_status == dg.DefaultScheduleStatus.RUNNING


def test_importing_definitions_touches_no_network_and_no_duckdb(tmp_path: Path):
    # A fresh interpreter with no key, an unreachable API and a DuckDB path that must not appear.
    code = "import aptrinsic_dagster.definitions as d; d.defs(); print('ok')"
    env = {
        "PATH": "/usr/bin:/bin",
        "APTRINSIC_BASE_URL": "http://127.0.0.1:9/v1",
        "APTRINSIC_DUCKDB_PATH": str(tmp_path / "never.duckdb"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
    assert not (tmp_path / "never.duckdb").exists()
