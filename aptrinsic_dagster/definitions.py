"""The code location: assembles assets, checks, jobs, schedules and resources, nothing else."""

import tempfile
from pathlib import Path

import dagster as dg
from dagster_dlt import DagsterDltResource

from .alerts import ALERT_SENSORS
from .assets import build_assets
from .checks import build_checks
from .freshness import build_freshness_checks, build_freshness_sensor
from .jobs import daily_events_job, snapshots_job
from .partitions import daily_partitions
from .resources import AptrinsicResource, WarehouseResource
from .schedules import daily_events_schedule, snapshots_schedule
from .sources.aptrinsic.pipeline import make_pipeline


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded when Dagster loads the code location, not at import. dagster-dlt needs a pipeline
    # object here for the destination's name only; runs build their own (resources.py).
    pipeline = make_pipeline(pipelines_dir=str(Path(tempfile.gettempdir()) / "aptrinsic_dagster_definitions"))
    daily = daily_partitions()
    freshness = build_freshness_checks()
    return dg.Definitions(
        assets=build_assets(pipeline, daily),
        asset_checks=[*build_checks(daily), *freshness],
        jobs=[daily_events_job, snapshots_job],
        schedules=[daily_events_schedule, snapshots_schedule],
        sensors=[build_freshness_sensor(freshness), *ALERT_SENSORS],
        resources={"dlt": DagsterDltResource(), "aptrinsic": AptrinsicResource(), "warehouse": WarehouseResource()},
        # Steps share one warehouse writer (pool), so separate processes would only add start-up time.
        executor=dg.in_process_executor,
    )
