"""``aptrinsic_event_drift``: loaded days that changed at the source are loaded again.

Each tick asks the API how many events every event table holds now for each of the last
``drift_days`` UTC days that have been loaded (``totalHits`` of a one-record page: one request per
table and day), compares that with the rows the load recorded for the day (``day_counts``, read from
Dagster's storage, never from the warehouse a run may be writing), and requests a run of exactly the
days whose count changed, for exactly the tables that changed: one range run per run of consecutive
days. A day already queued or being loaded is left for the next tick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from . import day_counts
from .assets import EVENT_NAMES
from .checks import DRIFT_REPAIR_CHECKS
from .names import asset_key
from .resources import AptrinsicResource, DayKey

DRIFT_SENSOR = "aptrinsic_event_drift"
# Requests/s of the sensor's counts, beside the loads' budget (rate_limit, 180/s for all steps in the
# pool together): under the API's ~200/s per subscription.
COUNT_RATE = 10.0
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def days_being_loaded(instance: dg.DagsterInstance, job_name: str) -> set[dt.date]:
    """Days of the event job's runs that are queued or running."""
    busy: set[dt.date] = set()
    for run in instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=_ACTIVE)):
        tags = run.tags
        first = tags.get("dagster/asset_partition_range_start", tags.get("dagster/partition"))
        last = tags.get("dagster/asset_partition_range_end", tags.get("dagster/partition"))
        if first and last:
            day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
            while day <= end:
                busy.add(day)
                day += dt.timedelta(days=1)
    return busy


def changed_runs(changed: dict[DayKey, int]) -> Iterator[dg.RunRequest]:
    """One run per run of consecutive changed days, selecting the tables that changed in it."""
    days = sorted({day for _, day in changed})
    blocks: list[list[dt.date]] = []
    for day in days:
        if blocks and day - blocks[-1][-1] == dt.timedelta(days=1):
            blocks[-1].append(day)
        else:
            blocks.append([day])
    for block in blocks:
        tables = sorted({table for table, day in changed if day in block})
        first, last = block[0].isoformat(), block[-1].isoformat()
        # The same change asks once: Dagster skips a run key it has launched before.
        digest = hashlib.sha1(repr(sorted((k, v) for k, v in changed.items() if k[1] in block)).encode()).hexdigest()
        range_tags = (
            {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
            if first != last
            else {}
        )
        yield dg.RunRequest(
            run_key=f"{DRIFT_SENSOR}:{first}:{last}:{digest[:16]}",
            partition_key=first if first == last else None,
            tags={**range_tags, "aptrinsic/reason": f"{DRIFT_SENSOR}: the API's counts changed"},
            asset_selection=[asset_key(t) for t in tables],
            asset_check_keys=[dg.AssetCheckKey(asset_key(t), name) for t in tables for name in DRIFT_REPAIR_CHECKS],
        )


def build_drift_sensor(
    job: Any, daily: dg.DailyPartitionsDefinition, drift_days: int, interval_seconds: int
) -> dg.SensorDefinition:
    @dg.sensor(
        name=DRIFT_SENSOR,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Re-counts the last {drift_days} loaded days of every event table at the API (one request per table "
            f"and day: {drift_days * len(EVENT_NAMES)} per tick) and loads again the days whose count changed "
            "(late-arriving events, deletions at the source)."
        ),
    )
    def aptrinsic_event_drift(context: dg.SensorEvaluationContext, aptrinsic: AptrinsicResource):
        today = dt.datetime.now(dt.UTC).date()
        first = dt.date.fromisoformat(daily.start.strftime("%Y-%m-%d")) if daily.start else today
        window = [d for d in (today - dt.timedelta(days=k) for k in range(1, drift_days + 1)) if d >= first]
        recorded = day_counts.recorded(context.instance, [asset_key(t) for t in EVENT_NAMES], window)
        busy = days_being_loaded(context.instance, job.name)
        keys = sorted(key for key in recorded if key[1] not in busy)
        if not keys:
            return dg.SkipReason(f"No loaded day in the last {drift_days} days to re-count (or all are loading).")
        now = aptrinsic.count_days(keys, COUNT_RATE)
        changed = {key: n for key, n in now.items() if n != recorded[key]}
        if not changed:
            days = len({day for _, day in keys})
            return dg.SkipReason(f"The API's {len(keys)} counts for {days} loaded days match what was loaded.")
        context.log.info(
            "Changed at the source: "
            + ", ".join(f"{t} {d}: {recorded[(t, d)]} -> {n}" for (t, d), n in sorted(changed.items()))
        )
        return list(changed_runs(changed))

    return aptrinsic_event_drift
