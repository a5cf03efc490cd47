"""Freshness: overdue events and snapshots show as failed freshness checks (and policy thresholds
follow the settings); the sensor the daemon runs asks for them; the loads make them pass."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.freshness import CronFreshnessPolicy

from aptrinsic_dagster.freshness import FRESHNESS_SENSOR

from .helpers import ms

FRESHNESS = "freshness_check"


def _load_defs() -> dg.Definitions:
    from aptrinsic_dagster.definitions import defs

    return defs()


def test_thresholds_follow_the_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("APTRINSIC_EVENTS_DEADLINE_CRON", "30 5 * * *")
    monkeypatch.setenv("APTRINSIC_SNAPSHOTS_MAX_AGE_HOURS", "6")
    graph = _load_defs().resolve_asset_graph()
    events = graph.get(dg.AssetKey(["aptrinsic", "events_custom"])).freshness_policy
    users = graph.get(dg.AssetKey(["aptrinsic", "users"])).freshness_policy
    assert isinstance(events, CronFreshnessPolicy) and events.deadline_cron == "30 5 * * *"
    assert events.lower_bound_delta == dt.timedelta(hours=5, minutes=15)  # since the 00:15 schedule tick
    assert users.fail_window.to_timedelta() == dt.timedelta(hours=6)
    specs = {(s.key.asset_key.path[-1], s.key.name): s for c in _load_defs().asset_checks for s in c.check_specs}
    params = specs[("events_custom", FRESHNESS)].metadata["dagster/freshness_params"].value
    assert params["deadline_cron"] == "30 5 * * *"
    params = specs[("users", FRESHNESS)].metadata["dagster/freshness_params"].value
    assert params["lower_bound_delta_seconds"] == 6 * 3600


@pytest.mark.slow
def test_overdue_until_loaded_then_fresh(deploy, monkeypatch: pytest.MonkeyPatch):
    # A deadline at midnight: yesterday's partition is due whatever the hour the test runs at.
    monkeypatch.setenv("APTRINSIC_EVENTS_DEADLINE_CRON", "0 0 * * *")
    defs = _load_defs()
    today = dt.datetime.now(dt.UTC).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    deployment = deploy(users=40, accounts=5, events_per_day=20, end_date=today, now_ms=ms(today))
    with dg.instance_for_test() as instance:
        # What the daemon does each minute: the sensor asks for every freshness check never run.
        sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR)
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        (request,) = tick.run_requests
        assert {k.name for k in request.asset_check_keys} == {FRESHNESS} and len(request.asset_check_keys) == 22
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_check_selection=set(request.asset_check_keys)
        )
        before = job.execute_in_process(instance=instance, raise_on_error=False)
        evaluations = {e.asset_key.path[-1]: e for e in before.get_asset_check_evaluations()}
        assert len(evaluations) == 22 and not any(e.passed for e in evaluations.values())
        overdue = evaluations["events_session"]
        assert overdue.severity == dg.AssetCheckSeverity.WARN
        assert f"expect partition {yesterday} to have arrived" in overdue.description

        # The daily load of yesterday and the snapshot refresh run the checks of what they load.
        runs = [
            defs.resolve_job_def("aptrinsic_daily_events").execute_in_process(
                instance=instance, partition_key=yesterday, raise_on_error=False
            ),
            defs.resolve_job_def("aptrinsic_snapshots").execute_in_process(instance=instance, raise_on_error=False),
        ]
        assert all(r.success for r in runs)
        after = {
            e.asset_key.path[-1]: e for r in runs for e in r.get_asset_check_evaluations() if e.check_name == FRESHNESS
        }
        assert len(after) == 22 and all(e.passed for e in after.values())
    assert deployment.sandbox.stats.snapshot()["total_requests"] > 0
