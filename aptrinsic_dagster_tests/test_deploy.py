"""deploy/: the production instance (Dagster storage on Postgres) loads, runs a job against the Postgres
warehouse, splits the API budget by its pool limit, and keeps the key out of every Postgres table."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from aptrinsic_dagster.resources import AptrinsicResource
from aptrinsic_dagster.sources.aptrinsic.settings import SNAPSHOT_TABLES

from .helpers import API_KEY, ROOT, Warehouse, failure_text, postgres_tables_holding

# Each loads or builds for real (seconds to minutes): in `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.mark.slow
def test_the_production_instance_runs_on_postgres_and_no_table_holds_the_key(
    defs, make_sandbox, postgres_server, tmp_path: Path, monkeypatch
):
    sandbox = make_sandbox(users=120, accounts=12)
    dagster_db = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(dagster_db)
    warehouse_url = postgres_server.create_database(f"w_{uuid.uuid4().hex[:8]}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        **postgres_server.dagster_storage_env(dagster_db),
        "APTRINSIC_API_KEY": API_KEY,
        "APTRINSIC_BASE_URL": sandbox.base_url,
        "APTRINSIC_DESTINATION": "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS": warehouse_url,
        "APTRINSIC_PIPELINES_DIR": str(tmp_path / "pipelines"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.global_op_concurrency_default_limit == 4
        assert AptrinsicResource().share(instance) == 180 / 4  # the API budget split by the pool

        result = defs.resolve_job_def("aptrinsic_snapshots").execute_in_process(instance=instance, raise_on_error=False)
        assert result.success, failure_text(result)
        assert all(e.passed for e in result.get_asset_check_evaluations())
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS

    warehouse = Warehouse("postgres", {}, tmp_path / "unused.duckdb", warehouse_url)
    for table in SNAPSHOT_TABLES:
        assert warehouse.count(table.name) == sandbox.count("/v1" + table.path), table.name
    assert warehouse.count("user_preferences") == 120
    assert not [s for s in warehouse.schemas() if "staging" in s], "staging dropped"
    # Run storage, event logs (every log line and metadata), schedules; the warehouse and dlt's tables.
    dagster_url = postgres_server.url(dagster_db)
    assert not postgres_tables_holding(dagster_url, API_KEY)
    assert not postgres_tables_holding(warehouse_url, API_KEY)
    # The check is real: the scan finds what is there.
    assert postgres_tables_holding(dagster_url, result.run_id)


def test_helm_values_name_the_k8s_run_launcher_the_secret_and_an_external_postgres():
    values = yaml.safe_load((ROOT / "deploy" / "helm-values.yaml").read_text())
    deployments = values["dagster-user-deployments"]["deployments"]
    # One user deployment per code location of workspace.yaml (the loads, the marts), same module each.
    local = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    modules = [d["dagsterApiGrpcArgs"] for d in deployments]
    assert modules == [["-m", entry["python_module"]["module_name"]] for entry in local]
    served = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())["load_from"]
    assert [e["grpc_server"]["location_name"] for e in served] == [e["python_module"]["location_name"] for e in local]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    for deployment in deployments:
        assert deployment["envSecrets"] == values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert values["postgresql"]["enabled"] is False
    assert API_KEY not in (ROOT / "deploy" / "helm-values.yaml").read_text()
