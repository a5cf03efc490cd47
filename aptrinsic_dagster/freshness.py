"""Freshness: the catalog shows when yesterday's events or the snapshots are overdue.

Two layers, both with thresholds from the settings (or the arguments here):

- A ``FreshnessPolicy`` on every asset, which Dagster's freshness daemon evaluates (``make dev``
  runs it) into the asset's Freshness status. Event tables: a cron policy, due by
  ``APTRINSIC_EVENTS_DEADLINE_CRON`` (default 03:00 UTC) and materialized since the 00:15 schedule
  tick. Snapshots: a time-window policy, failing once the last refresh is older than
  ``APTRINSIC_SNAPSHOTS_MAX_AGE_HOURS`` (default 26), warning at half of it.
- A ``freshness_check`` on every asset (WARN), which the sensor below runs. It is exact where the
  policy cannot be: an event table fails when the latest complete day's *partition* is missing at
  the deadline (a policy counts any partition's load, a backfill of last year's too). A failed
  check is what the check-failure alert (alerts.py) reports.
"""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from . import settings
from .sources.aptrinsic.settings import EVENT_TABLES, PREFERENCES, SNAPSHOT_TABLES

FRESHNESS_SENSOR = "aptrinsic_freshness_checks"
EVENT_KEYS = [dg.AssetKey(["aptrinsic", t.name]) for t in EVENT_TABLES]
SNAPSHOT_KEYS = [dg.AssetKey(["aptrinsic", t.name]) for t in (*SNAPSHOT_TABLES, PREFERENCES)]
# The daily schedule asks for yesterday's partition at 00:15 UTC.
EVENTS_EARLIEST = dt.time(0, 15)


def _deadline_hour_minute(cron: str) -> dt.time:
    minute, hour, *_ = cron.split()
    return dt.time(int(hour) if hour.isdigit() else 0, int(minute) if minute.isdigit() else 0)


def freshness_policy(
    windowed: bool, events_deadline_cron: str | None = None, max_age_hours: float | None = None
) -> dg.FreshnessPolicy:
    if windowed:
        cron = events_deadline_cron or settings.events_deadline_cron()
        deadline = _deadline_hour_minute(cron)
        today = dt.date(2000, 1, 1)
        delta = dt.datetime.combine(today, deadline) - dt.datetime.combine(today, EVENTS_EARLIEST)
        return dg.FreshnessPolicy.cron(
            deadline_cron=cron, lower_bound_delta=delta if delta > dt.timedelta(0) else dt.timedelta(hours=24)
        )
    hours = max_age_hours or settings.snapshots_max_age_hours()
    return dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=hours), warn_window=dt.timedelta(hours=hours / 2)
    )


def build_freshness_checks(
    events_deadline_cron: str | None = None, snapshots_max_age_hours: float | None = None
) -> list[dg.AssetChecksDefinition]:
    """Thresholds given here win over the settings."""
    # Dagster marks these builders superseded by FreshnessPolicy, which has no per-partition
    # check and no check result to alert on; the warning would print at every code location load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = dg.build_time_partition_freshness_checks(
            assets=EVENT_KEYS, deadline_cron=events_deadline_cron or settings.events_deadline_cron(), timezone="UTC"
        )
        max_age = dt.timedelta(hours=snapshots_max_age_hours or settings.snapshots_max_age_hours())
        snapshots = dg.build_last_update_freshness_checks(
            assets=SNAPSHOT_KEYS, lower_bound_delta=max_age, timezone="UTC"
        )
    return [*events, *snapshots]


def build_freshness_sensor(checks: list[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
