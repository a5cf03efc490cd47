"""Asset jobs: yesterday's events (partitioned) and the snapshot refresh; checks ride along."""

import dagster as dg

from .assets import EVENTS_GROUP, SNAPSHOTS_GROUP

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
