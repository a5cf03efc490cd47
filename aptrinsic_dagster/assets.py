"""One Dagster asset per Aptrinsic table, through dagster-dlt: keys ``aptrinsic/<table>``.

The source and pipeline handed to ``@dlt_assets`` only name the resources; the real source (key,
window) and pipeline (paths) are built in the asset body from the resources, at run time.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from . import day_counts
from .recover import POOL
from .resources import AptrinsicResource, WarehouseResource
from .sources.aptrinsic import aptrinsic_source
from .sources.aptrinsic.arrow import column_name
from .sources.aptrinsic.client import cancel_requests
from .sources.aptrinsic.replace_days import whole_days
from .sources.aptrinsic.settings import EVENT_TABLES, PREFERENCES, SNAPSHOT_TABLES, TABLES

# One warehouse writer at a time (pool POOL): DuckDB takes a file lock, and checks read the same file.
EVENTS_GROUP = "aptrinsic_events"
SNAPSHOTS_GROUP = "aptrinsic_snapshots"
EVENT_NAMES = [t.name for t in EVENT_TABLES]
SNAPSHOT_NAMES = [t.name for t in SNAPSHOT_TABLES]


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["aptrinsic", table])


class AptrinsicTranslator(DagsterDltTranslator):
    """Keys, groups, kinds, descriptions and lineage of every table, in one place."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        table = TABLES[data.resource.name]
        destination = data.destination.destination_name if data.destination else "duckdb"
        if table.windowed:
            loading = "Daily partitions load the half-open window [start, end) of `date`; merged on event_id."
        elif table is PREFERENCES:
            loading = "One request per user in the loaded users table; the table is replaced each refresh."
        else:
            loading = "A full snapshot that replaces the table atomically: records deleted at the source go."
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=asset_key(table.name),
                # The default translator invents an upstream asset per resource: none exists.
                deps=[asset_key("users")] if table is PREFERENCES else [],
                group_name=EVENTS_GROUP if table.windowed else SNAPSHOTS_GROUP,
                kinds={"dlt", destination},
                description=f"{table.description} GET /v1{table.path}. {loading}",
            )
            .merge_attributes(
                metadata={
                    "aptrinsic/endpoint": f"GET /v1{table.path}",
                    "aptrinsic/record_key": table.record_key or "(bare array)",
                    "aptrinsic/primary_key": column_name(table.primary_key),
                }
            )
        )


def _selected(context: dg.AssetExecutionContext) -> list[str]:
    return [key.path[-1] for key in context.selected_asset_keys]


def _load(
    context: dg.AssetExecutionContext,
    dlt_resource: DagsterDltResource,
    source: Any,
    warehouse: WarehouseResource,
    window: dg.TimeWindow | None = None,
) -> Iterator[dg.MaterializeResult]:
    extra = {} if window is None else {"aptrinsic/window": f"[{window.start.isoformat()}, {window.end.isoformat()})"}
    if dropped := warehouse.drop_orphan_staging(context.instance, context.run_id):
        context.log.info(f"Dropped the staging datasets of ended runs: {', '.join(dropped)}")
    try:
        with warehouse.pipeline(context.run_id, context.op_execution_context.op.name) as pipeline:
            for result in dlt_resource.run(context=context, dlt_source=source, dlt_pipeline=pipeline):
                yield result._replace(metadata={**(result.metadata or {}), **extra})
            if window is not None:  # what the drift sensor compares the API with later
                days = whole_days((window.start, window.end))
                with pipeline.sql_client() as sql:
                    for key in context.selected_asset_keys:
                        day_counts.record(context, key, day_counts.warehouse_counts(sql, key.path[-1], days))
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
        # A terminated run (SIGTERM, max runtime) interrupts this thread only: dlt's extract threads
        # and the preferences pool would go on requesting. From here each of their requests fails.
        cancel_requests()
        raise


def _dlt_assets(
    source: Any,
    pipeline: dlt.Pipeline,
    name: str,
    tables: list[str],
    daily: dg.DailyPartitionsDefinition | None = None,
) -> Any:
    @dlt_assets(
        dlt_source=source.with_resources(*tables),
        dlt_pipeline=pipeline,
        name=name,
        dagster_dlt_translator=AptrinsicTranslator(),
        partitions_def=daily,
        # One run for a whole backfill range: one process, one dlt load, API windows of up to
        # 190 days fetched by all event tables at once; DuckDB takes one writer anyway.
        backfill_policy=dg.BackfillPolicy.single_run() if daily else None,
        pool=POOL,
    )
    def _assets(
        context: dg.AssetExecutionContext,
        dlt: DagsterDltResource,
        aptrinsic: AptrinsicResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        window = context.partition_time_window if daily else None
        start, end = (window.start, window.end) if window else (None, None)
        source = aptrinsic.source(start, end, _selected(context), aptrinsic.share(context.instance))
        yield from _load(context, dlt, source, warehouse, window)

    return _assets


def build_assets(pipeline: dlt.Pipeline, daily: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The assets; ``pipeline`` only tells dagster-dlt the destination at definition time."""
    # Never used to send a request: only its resource names and hints are read here.
    source = aptrinsic_source(api_key="definition-time-only", base_url="http://127.0.0.1:9/v1")
    return [
        _dlt_assets(source, pipeline, "load_aptrinsic_events", EVENT_NAMES, daily),
        _dlt_assets(source, pipeline, "load_aptrinsic_snapshots", SNAPSHOT_NAMES),
        # Its own step, after users: it reads the identifyIds the users load left in the warehouse.
        _dlt_assets(source, pipeline, "load_aptrinsic_user_preferences", [PREFERENCES.name]),
    ]
