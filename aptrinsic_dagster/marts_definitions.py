"""The marts code location: the dbt models as assets (dbt tests as checks), their automation sensor and
the marts job. The loads are the other location (definitions.py), so neither a daily load's run nor
its code server imports dbt. Lineage crosses the two by asset key: each dbt source is the loaded asset
``aptrinsic/<table>``, and the automation sensor, evaluated by the daemon over the whole workspace, sees
its partitions re-load and its blocking checks pass."""

import dagster as dg

from .marts import build_marts, dbt_project, dbt_resource, marts_automation_sensor, marts_job
from .partitions import daily_partitions
from .resources import WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded when Dagster loads the code location, not at import: reads the prepared dbt manifest.
    project = dbt_project()
    return dg.Definitions(
        assets=build_marts(project, daily_partitions()),
        jobs=[marts_job],
        sensors=[marts_automation_sensor],
        resources={"dbt": dbt_resource(project), "warehouse": WarehouseResource()},
        # Both dbt steps are in the warehouse pool; separate processes would only add start-up time.
        executor=dg.in_process_executor,
    )
