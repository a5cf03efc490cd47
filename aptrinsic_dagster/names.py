"""Names both code locations use: the loaded tables' asset keys and groups. The marts location reads
them without importing the loads' modules (dlt's assets), so its load stays light."""

import dagster as dg

EVENTS_GROUP = "aptrinsic_events"
SNAPSHOTS_GROUP = "aptrinsic_snapshots"


def asset_key(table: str) -> dg.AssetKey:
    """The loaded table ``table``, in both locations: the marts depend on these keys across locations."""
    return dg.AssetKey(["aptrinsic", table])
