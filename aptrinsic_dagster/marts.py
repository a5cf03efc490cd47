"""The dbt project ``aptrinsic_dbt`` as Dagster assets: every model an asset ``aptrinsic_marts/<model>``,
every dbt test an asset check, every dbt source the loaded asset ``aptrinsic/<table>``.

Daily marts (dbt tag ``daily``) share the events' daily partitions and rebuild exactly a partition's
days (the window goes to dbt as ``--vars``); the others are rebuilt whole. Both update by themselves
(declarative automation) once the raw tables they read have loaded and passed their blocking checks.
"""

import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer

from .names import SNAPSHOTS_GROUP, asset_key
from .recover import POOL
from .resources import WarehouseResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "aptrinsic_dbt"
MARTS_GROUP = "aptrinsic_marts"
MARTS_SCHEMA = "aptrinsic_marts"
DAILY_TAG = "daily"
# Outputs of aptrinsic_dbt/profiles.yml besides duckdb, by dlt destination name.
DBT_TARGETS = ("postgres",)

# A snapshot refresh (users, accounts, ...) must not rebuild every day of history; the snapshot's
# blocking checks still gate each run.
_SNAPSHOTS = dg.AssetSelection.groups(SNAPSHOTS_GROUP)
_READY = (
    ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
)
# A re-loaded event partition D (the daily load, a backfill, a drift repair) marks the mart partitions
# that read it stale: D itself, and D..D+29 for a 30-day rolling metric (the partition mapping).
DAILY_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().ignore(_SNAPSHOTS).since_last_handled() & _READY
).with_label("rebuild partitions whose events re-loaded, after their checks pass")
# Rebuilt whole whenever anything it reads updates (snapshots included), or when it goes missing.
FULL_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled() & _READY
).with_label("rebuild when an upstream table updates, after its checks pass")

# Dagster's implicit default_automation_condition_sensor starts STOPPED (checked in 1.13.27): this
# one runs as soon as the daemon does (`make dev`). Several partitions of a mart become one backfill,
# which the single-run backfill policy runs as one dbt invocation.
marts_automation_sensor = dg.AutomationConditionSensorDefinition(
    "aptrinsic_marts_automation",
    target=dg.AssetSelection.groups(MARTS_GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


# The marts update by themselves; this job is for a manual run or backfill of a day range.
marts_job = dg.define_asset_job(
    "aptrinsic_marts",
    selection=dg.AssetSelection.groups(MARTS_GROUP),
    description="Build the dbt marts: the daily ones for the run's days, the others whole; dbt tests as checks.",
)


class _ManifestPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparation (guarded against concurrent parses), run with the venv's dbt."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()


def _manifest_is_stale(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return True
    parsed = project.manifest_path.stat().st_mtime
    sources = (p for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in {".sql", ".yml"} and "target" not in p.parts)
    return any(p.stat().st_mtime > parsed for p in sources)


def dbt_project() -> DbtProject:
    """The dbt project with a current manifest. ``make setup`` parses it, so loading definitions only reads
    target/manifest.json; it is parsed here (no warehouse, ~10 s) only when missing or older than a model
    or YAML file. Unlike dagster-dbt's ``prepare_if_dev``, ``dagster dev`` does not re-parse on every load:
    each run worker loads the definitions too."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR)
    if _manifest_is_stale(project):
        _ManifestPreparer().prepare(project)
    return project


def dbt_resource(project: DbtProject) -> DbtCliResource:
    # The dbt beside this interpreter: the venv's bin/ is not on PATH under `make` or `dagster dev`.
    return DbtCliResource(project_dir=project, dbt_executable=str(Path(sys.executable).parent / "dbt"))


def _is_daily(props: Mapping[str, Any]) -> bool:
    return DAILY_TAG in props.get("config", {}).get("tags", [])


class MartsTranslator(DagsterDbtTranslator):
    """Keys, groups, automation and partition mappings of the dbt nodes, in one place."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return asset_key(dbt_resource_props["name"])
        return dg.AssetKey([MARTS_SCHEMA, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return MARTS_GROUP

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        return DAILY_AUTOMATION if _is_daily(dbt_resource_props) else FULL_AUTOMATION

    def get_partition_mapping(
        self, dbt_resource_props: Mapping[str, Any], dbt_parent_resource_props: Mapping[str, Any]
    ) -> dg.PartitionMapping | None:
        # Partition D of a rolling metric reads the events of D-lookback..D (model config meta).
        lookback = dbt_resource_props.get("config", {}).get("meta", {}).get("lookback_days", 0)
        if lookback and _is_daily(dbt_resource_props):
            return dg.TimeWindowPartitionMapping(start_offset=-lookback, allow_nonexistent_upstream_partitions=True)
        return None


def _translator() -> MartsTranslator:
    return MartsTranslator(settings=DagsterDbtTranslatorSettings(enable_code_references=True))


def _dbt_vars(warehouse: WarehouseResource, window: dg.TimeWindow | None) -> str:
    values: dict[str, str] = {}
    if not warehouse.is_server():
        # dbt runs in the project dir; a relative DuckDB path must still mean the one the loads write.
        values["duckdb_path"] = os.path.abspath(warehouse.resolved_duckdb_path())
    if window is not None:
        values |= {"start": window.start.date().isoformat(), "end": window.end.date().isoformat()}
    return json.dumps(values)


def _profile_env(warehouse: WarehouseResource) -> dict[str, str]:
    """What the profile's target reads (profiles.yml): nothing for DuckDB; for Postgres dlt's credentials,
    which must not reach a file or dbt's command line (Dagster logs it)."""
    if not warehouse.is_server():
        return {}
    if warehouse.destination_name() not in DBT_TARGETS:
        raise dg.Failure(
            f"The dbt marts run on DuckDB or {', '.join(DBT_TARGETS)}, not {warehouse.destination_name()} "
            "(APTRINSIC_DESTINATION): add its dbt adapter and a target in aptrinsic_dbt/profiles.yml.",
            allow_retries=False,
        )
    credentials = warehouse.credentials()
    return {
        "DBT_POSTGRES_HOST": credentials.host,
        "DBT_POSTGRES_PORT": str(credentials.port),
        "DBT_POSTGRES_USER": credentials.username,
        "DBT_ENV_SECRET_POSTGRES_PASSWORD": credentials.password,
        "DBT_POSTGRES_DBNAME": credentials.database,
    }


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    # dagster-dbt hands dbt's process a copy of os.environ and takes no environment of its own; the
    # process is started inside dbt.cli(), so the values are set only around that call.
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, window: dg.TimeWindow | None
) -> Iterator[Any]:
    # No .fetch_column_metadata(): its in-process DuckDB connection outlives the step and holds the
    # file's lock against the next writer, and its column lineage cannot see through ephemeral models.
    target = warehouse.destination_name() if warehouse.is_server() else "duckdb"
    args = ["build", "--target", target, "--vars", _dbt_vars(warehouse, window)]
    with _environment(_profile_env(warehouse)):
        invocation = dbt.cli(args, context=context)
    yield from invocation.stream()
    # Each invocation writes a target dir of its own (~2 MB); kept only when the build failed.
    shutil.rmtree(invocation.target_path, ignore_errors=True)


def build_marts(project: DbtProject, daily: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=f"tag:{DAILY_TAG}",
        name="build_aptrinsic_daily_marts",
        partitions_def=daily,
        # A backfill of any range is one dbt invocation over its days (~7 s of dbt start-up each).
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=_translator(),
        pool=POOL,
    )
    def daily_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        yield from _build(context, dbt, warehouse, context.partition_time_window)

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        exclude=f"tag:{DAILY_TAG}",
        name="build_aptrinsic_marts",
        dagster_dbt_translator=_translator(),
        pool=POOL,
    )
    def marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        yield from _build(context, dbt, warehouse, None)

    return [daily_marts, marts]
