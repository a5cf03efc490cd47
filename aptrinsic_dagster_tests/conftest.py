from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import dlt
import pytest

from aptrinsic_dagster.sources.aptrinsic.pipeline import make_pipeline, warehouse_destination
from aptrinsic_sandbox import DataConfig, Faults, Sandbox, SandboxConfig
from aptrinsic_sandbox.postgres import PostgresServer

from .helpers import API_KEY, END_DATE, SandboxFactory, Warehouse, ms

pytest_plugins = ["aptrinsic_dagster_tests.dev_server"]  # the dagster_dev fixture: `dg dev` on a sandbox


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real key or URL from the developer's shell; quick retries so fault tests stay fast."""
    for name in (
        "APTRINSIC_API_KEY",
        "APTRINSIC_BASE_URL",
        "APTRINSIC_DUCKDB_PATH",
        "SOURCES__APTRINSIC__API_KEY",
        "SOURCES__APTRINSIC__BASE_URL",
        "APTRINSIC_DESTINATION",
        "APTRINSIC_PIPELINES_DIR",
        "APTRINSIC_START_DATE",
        "DESTINATION__POSTGRES__CREDENTIALS",
        "APTRINSIC_EVENTS_DEADLINE_CRON",
        "APTRINSIC_SNAPSHOTS_MAX_AGE_HOURS",
        "APTRINSIC_ALERT_WEBHOOK_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.5")


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Start sandboxes on ephemeral loopback ports: ``make_sandbox(users=..., faults=Faults(...))``."""
    started: list[Sandbox] = []

    def make(
        *,
        faults: Faults | None = None,
        api_keys: tuple[str, ...] = (API_KEY,),
        forbidden_keys: tuple[str, ...] = (),
        now_ms: int | None = None,
        **data: object,
    ) -> Sandbox:
        data.setdefault("end_date", END_DATE)
        config = SandboxConfig(
            data=DataConfig(**data),
            faults=faults or Faults(),
            api_keys=api_keys,
            forbidden_keys=forbidden_keys,
            now_ms=now_ms if now_ms is not None else ms(END_DATE),
        )
        sandbox = Sandbox(config).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    return tmp_path / "aptrinsic.duckdb"


@pytest.fixture
def pipeline(tmp_path: Path, duckdb_path: Path) -> dlt.Pipeline:
    """The project's pipeline, writing a DuckDB file and a working dir of its own under tmp_path."""
    return make_pipeline(warehouse_destination(duckdb_path=duckdb_path), pipelines_dir=str(tmp_path / "pipelines"))


@pytest.fixture(scope="session")
def defs() -> dg.Definitions:
    """The loads' code location (workspace.yaml's aptrinsic_dagster)."""
    from aptrinsic_dagster.definitions import defs as load_defs

    return load_defs()


@pytest.fixture(scope="session")
def marts_defs() -> dg.Definitions:
    """The marts' code location (workspace.yaml's aptrinsic_marts)."""
    from aptrinsic_dagster.marts_definitions import defs as load_defs

    return load_defs()


@pytest.fixture(scope="session")
def workspace_defs(defs: dg.Definitions, marts_defs: dg.Definitions) -> dg.Definitions:
    """Both locations as one graph, as the daemon sees the workspace: the marts' dependencies on the
    loaded tables, their partitions and blocking checks resolved."""
    marts = dg.Definitions(
        assets=marts_defs.assets,
        jobs=marts_defs.jobs,
        sensors=marts_defs.sensors,
        resources={"dbt": marts_defs.resources["dbt"]},
    )
    return dg.Definitions.merge(defs, marts)  # the loads' warehouse resource serves both


@dataclass
class Deployment:
    """A sandbox plus the environment the Dagster resources read, as an operator would set it."""

    sandbox: Sandbox
    duckdb_path: Path
    pipelines_dir: Path
    instance: dg.DagsterInstance


@pytest.fixture
def deploy(make_sandbox: SandboxFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Deployment]:
    """``deploy(users=..., faults=...)``: a sandbox, and APTRINSIC_* env pointing Dagster at it."""

    def make(**sandbox_args: object) -> Deployment:
        sandbox = make_sandbox(**sandbox_args)
        monkeypatch.setenv("APTRINSIC_API_KEY", API_KEY)
        monkeypatch.setenv("APTRINSIC_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("APTRINSIC_DUCKDB_PATH", str(tmp_path / "aptrinsic.duckdb"))
        monkeypatch.setenv("APTRINSIC_PIPELINES_DIR", str(tmp_path / "pipelines"))
        return Deployment(
            sandbox, tmp_path / "aptrinsic.duckdb", tmp_path / "pipelines", dg.DagsterInstance.ephemeral()
        )

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL 15 cluster for the session (about 4 s to start); each test that uses
    it gets a database of its own. Started only when a test asks for it; a missing server fails the
    test (.ci/run installs it), it is never skipped."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    """The test's warehouse, once per destination: a DuckDB file, or a fresh Postgres database."""
    duckdb_path = tmp_path / "aptrinsic.duckdb"
    if request.param == "duckdb":
        return Warehouse("duckdb", {"APTRINSIC_DUCKDB_PATH": str(duckdb_path)}, duckdb_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    env = {"APTRINSIC_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url}
    return Warehouse("postgres", env, duckdb_path, url)
