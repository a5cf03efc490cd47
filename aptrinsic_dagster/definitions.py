"""The loads' code location: assembles the API tables' assets, their checks, jobs, schedules, sensors and
resources, nothing else. The dbt marts are a location of their own (marts_definitions.py), so loading
this one (every run of a daily load does) never imports dbt."""

import tempfile
from pathlib import Path

import dagster as dg
from dagster_dlt import DagsterDltResource

from . import settings
from .alerts import ALERT_SENSORS
from .assets import build_assets
from .checks import build_checks
from .freshness import build_freshness_checks, build_freshness_sensor
from .jobs import daily_events_job, snapshots_job, still_matches_job
from .partitions import daily_partitions
from .resources import AptrinsicResource, WarehouseResource
from .schedules import daily_events_schedule, snapshots_schedule
from .sensors import build_drift_sensor
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
        asset_checks=[*build_checks(daily, settings.drift_days()), *freshness],
        jobs=[daily_events_job, snapshots_job, still_matches_job],
        schedules=[daily_events_schedule, snapshots_schedule],
        sensors=[
            build_drift_sensor(daily_events_job, daily, settings.drift_days(), settings.drift_interval_seconds()),
            build_freshness_sensor(freshness),
            *ALERT_SENSORS,
        ],
        resources={
            "dlt": DagsterDltResource(),
            "aptrinsic": AptrinsicResource(),
            "warehouse": WarehouseResource(),
        },
        # Steps share one warehouse writer (pool), so separate processes would only add start-up time.
        executor=dg.in_process_executor,
    )
