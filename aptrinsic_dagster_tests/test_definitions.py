"""The code location as Dagster sees it: keys, lineage, groups, checks, jobs, schedules, automation."""

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
DAILY_MARTS = ["account_usage_daily", "active_users_daily", "feature_adoption_daily", "nps_daily"]
MARTS = [*DAILY_MARTS, "account_health", "retention_weekly"]
MARTS_KEY = dg.AssetKey(["aptrinsic_marts", "retention_weekly"])
# Lineage from the API tables to the marts, as the dbt sources declare it.
MART_PARENTS = {
    "active_users_daily": ["events_session", "users"],
    "account_usage_daily": ["events_custom", "events_feature_match", "events_page_view", "events_session"],
    "feature_adoption_daily": ["events_feature_match", "events_session", "feature_flags"],
    "nps_daily": ["engagements", "survey_responses"],
    "retention_weekly": ["events_session", "users"],
    "account_health": ["accounts", "events_feature_match", "events_session", "survey_responses"],
}


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


def test_one_asset_per_table_and_per_mart_with_lineage_from_the_api_tables(workspace_defs: dg.Definitions):
    graph = workspace_defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        *(f"aptrinsic/{t}" for t in EVENTS + SNAPSHOTS),
        *(f"aptrinsic_marts/{m}" for m in MARTS),
    }
    edges = {
        (p.to_user_string(), k.to_user_string()) for k in graph.get_all_asset_keys() for p in graph.get(k).parent_keys
    }
    # No phantom upstream assets: the only edges are users -> preferences and API table -> mart.
    assert edges == {("aptrinsic/users", "aptrinsic/user_preferences")} | {
        (f"aptrinsic/{table}", f"aptrinsic_marts/{mart}") for mart, tables in MART_PARENTS.items() for table in tables
    }


def test_marts_groups_partitions_automation_and_pool(workspace_defs: dg.Definitions):
    graph = workspace_defs.resolve_asset_graph()
    for mart in MARTS:
        node = graph.get(dg.AssetKey(["aptrinsic_marts", mart]))
        assert node.group_name == "aptrinsic_marts"
        assert {"dbt", "duckdb"} <= set(node.kinds)
        assert node.automation_condition is not None
        assert (node.partitions_def is not None) == (mart in DAILY_MARTS)
        if mart in DAILY_MARTS:
            assert node.partitions_def == graph.get(dg.AssetKey(["aptrinsic", "events_session"])).partitions_def
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
    # The definitions the issue asks for are in the descriptions the UI shows.
    assert "at least one session event" in graph.get(dg.AssetKey(["aptrinsic_marts", "active_users_daily"])).description
    assert "IN_APP_SURVEY_NPS" in graph.get(dg.AssetKey(["aptrinsic_marts", "nps_daily"])).description
    # MAU of day D reads the sessions of D-29..D.
    mapping = graph.get_partition_mapping(
        dg.AssetKey(["aptrinsic_marts", "active_users_daily"]), dg.AssetKey(["aptrinsic", "events_session"])
    )
    assert isinstance(mapping, dg.TimeWindowPartitionMapping) and mapping.start_offset == -29
    sensor = workspace_defs.get_repository_def().get_sensor_def("aptrinsic_marts_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    mart_checks = {k for k in graph.asset_check_keys if k.asset_key.path[0] == "aptrinsic_marts"}
    assert len(mart_checks) == 28


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
    keys = {(k.asset_key.path[-1], k.name) for k in graph.asset_check_keys if k.asset_key.path[0] == "aptrinsic"}
    on_load = {
        (t, c)
        for t in EVENTS + SNAPSHOTS
        for c in ("rows_match_api", "no_duplicate_keys", "not_empty", "freshness_check")
    }
    assert keys == on_load | {(t, "still_matches_api") for t in EVENTS}
    blocking = {spec.key.name for checks_def in defs.asset_checks for spec in checks_def.check_specs if spec.blocking}
    assert blocking == {"rows_match_api"}


def test_jobs_and_schedules_of_each_code_location(defs: dg.Definitions, marts_defs: dg.Definitions):
    assert {j.name for j in defs.jobs} == {
        "aptrinsic_daily_events",
        "aptrinsic_snapshots",
        "aptrinsic_still_matches_api",
    }
    assert {s.name for s in defs.sensors} == {
        "aptrinsic_event_drift",
        "aptrinsic_freshness_checks",
        "aptrinsic_run_failure_alert",
        "aptrinsic_check_failure_alert",
    }
    assert {s.name for s in defs.schedules} == {"aptrinsic_daily_events_schedule", "aptrinsic_snapshots_schedule"}
    events_job = defs.resolve_job_def("aptrinsic_daily_events")
    assert {k.path[-1] for k in events_job.asset_layer.selected_asset_keys} == set(EVENTS)
    snapshots_job = defs.resolve_job_def("aptrinsic_snapshots")
    assert {k.path[-1] for k in snapshots_job.asset_layer.selected_asset_keys} == set(SNAPSHOTS)
    # The marts' location: the dbt assets, their automation sensor and job, nothing of the loads.
    assert {j.name for j in marts_defs.jobs} == {"aptrinsic_marts"}
    assert {s.name for s in marts_defs.sensors} == {"aptrinsic_marts_automation"}
    assert {k.path[0] for k in marts_defs.resolve_asset_graph().materializable_asset_keys} == {"aptrinsic_marts"}
    marts_job = marts_defs.resolve_job_def("aptrinsic_marts")
    assert {k.path[-1] for k in marts_job.asset_layer.selected_asset_keys} == set(MARTS)


def test_the_daily_schedule_asks_for_yesterday_shortly_after_midnight_utc(defs: dg.Definitions):
    schedule = defs.resolve_schedule_def("aptrinsic_daily_events_schedule")
    assert schedule.cron_schedule == "15 0 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2026, 3, 15, 0, 15, tzinfo=dt.UTC)
    result = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert [r.partition_key for r in result.run_requests] == ["2026-03-14"]
    snapshots = defs.resolve_schedule_def("aptrinsic_snapshots_schedule")
    assert snapshots.cron_schedule == "45 0 * * *" and snapshots.default_status == dg.DefaultScheduleStatus.RUNNING


def test_loading_either_location_touches_no_network_and_no_duckdb_and_the_loads_never_import_dbt(tmp_path: Path):
    # A fresh interpreter with no key, an unreachable API and a DuckDB path that must not appear. The
    # loads' location (every daily load's run loads it) must not pay for dbt: dbt-core is the heaviest import.
    code = (
        "import sys, aptrinsic_dagster.definitions as d; d.defs(); "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('dbt', 'dagster_dbt')})); "
        "import aptrinsic_dagster.marts_definitions as m; m.defs(); print('ok')"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "APTRINSIC_BASE_URL": "http://127.0.0.1:9/v1",
        "APTRINSIC_DUCKDB_PATH": str(tmp_path / "never.duckdb"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["[]", "ok"], result.stderr[-2000:]
    assert not (tmp_path / "never.duckdb").exists()


def test_the_drift_sensor_is_on_and_hourly_and_the_recount_runs_on_demand_only(defs: dg.Definitions):
    sensor = defs.resolve_sensor_def("aptrinsic_event_drift")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 3600
    assert "77 per tick" in sensor.description  # 7 days x 11 event tables
    loads = defs.resolve_job_def("aptrinsic_daily_events").asset_layer.asset_graph.asset_check_keys
    recount = defs.resolve_job_def("aptrinsic_still_matches_api").asset_layer.asset_graph.asset_check_keys
    assert {k.name for k in loads} == {"rows_match_api", "no_duplicate_keys", "not_empty", "freshness_check"}
    assert {k.name for k in recount} == {"still_matches_api"} and len(recount) == len(EVENTS)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APTRINSIC_DESTINATION": "postgres"}, "DESTINATION__POSTGRES__CREDENTIALS"),
        ({"APTRINSIC_DESTINATION": "bigquery"}, "bigquery (APTRINSIC_DESTINATION)"),
    ],
)
def test_the_marts_on_a_warehouse_dbt_cannot_reach_fail_before_dbt_starts_naming_the_setting(
    marts_defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], named: str
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .dlt/secrets.toml of the developer's
    job = marts_defs.resolve_job_def("aptrinsic_marts")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, asset_selection=[MARTS_KEY]
    )
    assert not result.success
    failures = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert named in failures
    assert not any(e.event_type_value == "ASSET_MATERIALIZATION" for e in result.all_events)
