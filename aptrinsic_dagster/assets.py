"""One Dagster asset per Aptrinsic table, through dagster-dlt: keys ``aptrinsic/<table>``.

The source and pipeline handed to ``@dlt_assets`` only name the resources; the real source (key,
window) and pipeline (paths) are built in the asset body from the resources, at run time.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import dlt
from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from . import day_counts
from .freshness import freshness_policy
from .names import EVENTS_GROUP, SNAPSHOTS_GROUP, asset_key
from .recover import POOL
from .resources import AptrinsicResource, WarehouseResource
from .sources.aptrinsic import aptrinsic_source
from .sources.aptrinsic.arrow import column_name
from .sources.aptrinsic.client import cancel_requests
from .sources.aptrinsic.settings import EVENT_TABLES, PREFERENCES, SNAPSHOT_TABLES, TABLES
from .table_metadata import EVERY_PARTITION, WINDOW, table_metadata

# One warehouse writer at a time (pool POOL): DuckDB takes a file lock, and checks read the same file.
EVENT_NAMES = [t.name for t in EVENT_TABLES]
SNAPSHOT_NAMES = [t.name for t in SNAPSHOT_TABLES]
DLT_PHASES = ("extract", "normalize", "load")
PHASES_LINE = "dlt phases: "  # the run-log line where a load says where its time went


class AptrinsicTranslator(DagsterDltTranslator):
    """Keys, groups, kinds, descriptions and lineage of every table, in one place."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        table = TABLES[data.resource.name]
        destination = data.destination.destination_name if data.destination else "duckdb"
        if table.windowed:
            loading = (
                "Daily partitions load the half-open window [start, end) of `date`; each load replaces its UTC days."
            )
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
                freshness_policy=freshness_policy(table.windowed),
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
    extra = {} if window is None else {WINDOW: f"[{window.start.isoformat()}, {window.end.isoformat()})"}
    partitions = list(context.partition_keys) if window is not None else []
    if dropped := warehouse.drop_orphan_staging(context.instance, context.run_id):
        context.log.info(f"Dropped the staging datasets of ended runs: {', '.join(dropped)}")
    try:
        with warehouse.pipeline(context.run_id, context.op_execution_context.op.name) as pipeline:
            # dagster-dlt yields its results once the whole load is done: count the rows then.
            results = list(dlt_resource.run(context=context, dlt_source=source, dlt_pipeline=pipeline))
            context.log.info(_phases(pipeline))
            with pipeline.sql_client() as sql:
                for result in results:
                    table, metadata = result.asset_key.path[-1], result.metadata or {}
                    counts, per_partition = table_metadata(sql, table, metadata, partitions)
                    shared = {**metadata, **counts, **extra}
                    # Each day's rows: also what the drift sensor compares the API with (day_counts.recorded).
                    per_key: dict[str, dict[str, Any]] = {k: {day_counts.ROWS: n} for k, n in per_partition.items()}
                    if per_key:
                        # What describes the load, not the day (dlt's jobs and timings, the table's columns), on
                        # the range's last partition: the asset's latest materialization, which the catalog shows.
                        # On each partition it made every event of a range about 3x as costly to store (a 365-day
                        # range is 4,015 events: benchmarks, scenario 3).
                        load_facts = [name for name in shared if name not in EVERY_PARTITION]
                        per_key[partitions[-1]].update((name, shared.pop(name)) for name in load_facts)
                        _add_partition_metadata(context, result.asset_key, per_key)
                    yield result._replace(metadata=shared)
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
        # A terminated run (SIGTERM, max runtime) interrupts this thread only: dlt's extract threads
        # and the preferences pool would go on requesting. From here each of their requests fails.
        cancel_requests()
        raise


def _add_partition_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey, per_partition: dict[str, dict[str, Any]]
) -> None:
    """``context.add_asset_metadata(metadata, asset_key=key, partition_key=k)`` for every partition at once.

    Each call of Dagster's copies and re-checks all the metadata added before it, so a range's calls cost
    O(partitions²): 5.6 s for a 365-day range of the 11 event tables. This adds them in one copy, to the
    accumulator Dagster reads each partition's materialization from (the keys are the run's own, which is
    all the public call checks). Private to Dagster, pinned in uv.lock; the catalog tests fail if it moves.
    """
    step = context.op_execution_context._step_execution_context
    accumulated = dict(step._metadata_accumulator.per_output_metadata)
    for partition, metadata in per_partition.items():
        handle = AssetMetadataHandle(asset_key=key, partition_key=partition)
        accumulated[handle] = {**accumulated.get(handle, {}), **metadata}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=accumulated)


def _phases(pipeline: dlt.Pipeline) -> str:
    """Where the load's time went, for the run's log (and benchmarks/daily_cost.py, which reads it)."""
    steps = {step.step: (step.finished_at - step.started_at).total_seconds() for step in pipeline.last_trace.steps}
    return PHASES_LINE + ", ".join(f"{name} {steps[name]:.2f} s" for name in DLT_PHASES if name in steps)


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
