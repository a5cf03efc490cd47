"""Asset jobs of the loads: yesterday's events (partitioned), the snapshot refresh, the on-demand re-count."""

import dagster as dg

from .assets import EVENT_NAMES
from .checks import STILL_MATCHES_API
from .names import EVENTS_GROUP, SNAPSHOTS_GROUP, asset_key

_STILL_MATCHES = dg.AssetSelection.checks(*(dg.AssetCheckKey(asset_key(t), STILL_MATCHES_API) for t in EVENT_NAMES))

# A run whose worker died (kill -9, OOM, eviction) is re-launched by the daemon up to twice
# (`run_retries` in dagster.yaml; crashes only, never asset failures). Once covers an eviction or a
# node restart; a second covers a rolling restart. A load that dies every time (a deterministic OOM)
# then stops and fails visibly instead of holding the warehouse pool all night. Re-running is safe:
# each load replaces the days it covers and snapshots are swapped atomically.
CRASH_RETRIES = {"dagster/max_retries": "2"}

# Run timeouts, enforced by the daemon's run monitoring (dagster.yaml): a run still going after
# them is terminated, which releases its pool slot. A day of events takes about a minute
# (benchmarks/); snapshots with user_preferences need one request per user at 180/s (100k users:
# 9 minutes). Backfills and runs without these tags get run_monitoring's max_runtime_seconds.
EVENTS_MAX_RUNTIME_S = 2 * 3600
SNAPSHOTS_MAX_RUNTIME_S = 6 * 3600

daily_events_job = dg.define_asset_job(
    "aptrinsic_daily_events",
    selection=dg.AssetSelection.groups(EVENTS_GROUP) - _STILL_MATCHES,
    description="Load one day (or a backfill range) of every event table, then check it against the API.",
    tags={**CRASH_RETRIES, "dagster/max_runtime": str(EVENTS_MAX_RUNTIME_S)},
)

snapshots_job = dg.define_asset_job(
    "aptrinsic_snapshots",
    selection=dg.AssetSelection.groups(SNAPSHOTS_GROUP),
    description="Refresh every snapshot table (users before their preferences), then check it.",
    tags={**CRASH_RETRIES, "dagster/max_runtime": str(SNAPSHOTS_MAX_RUNTIME_S)},
)


still_matches_job = dg.define_asset_job(
    "aptrinsic_still_matches_api",
    selection=_STILL_MATCHES,
    description=(
        "Re-count the API now and compare with the warehouse, per day: the days of a dagster/partition tag (or "
        "dagster/asset_partition_range_start/_end), else the last loaded days the drift sensor watches."
    ),
)
