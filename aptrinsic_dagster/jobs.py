"""Asset jobs: yesterday's events (partitioned), the snapshot refresh and the marts; checks ride along."""

import dagster as dg

from .assets import EVENTS_GROUP, SNAPSHOTS_GROUP
from .marts import MARTS_GROUP

daily_events_job = dg.define_asset_job(
    "aptrinsic_daily_events",
    selection=dg.AssetSelection.groups(EVENTS_GROUP),
    description="Load one day (or a backfill range) of every event table, then check it against the API.",
)

snapshots_job = dg.define_asset_job(
    "aptrinsic_snapshots",
    selection=dg.AssetSelection.groups(SNAPSHOTS_GROUP),
    description="Refresh every snapshot table (users before their preferences), then check it.",
)

# The marts update by themselves (marts.py); this job is for a manual run or backfill of a day range.
marts_job = dg.define_asset_job(
    "aptrinsic_marts",
    selection=dg.AssetSelection.groups(MARTS_GROUP),
    description="Build the dbt marts: the daily ones for the run's days, the others whole; dbt tests as checks.",
)
