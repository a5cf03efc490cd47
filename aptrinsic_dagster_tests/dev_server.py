"""`dg dev` as `make dev` starts it, on a free port against a sandbox: the `dagster_dev` fixture
(registered in conftest.py) and the GraphQL helpers the tests that drive it share."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aptrinsic_sandbox.dev import dev_command, dev_env, prepare_dagster_home
from aptrinsic_sandbox.postgres import free_port

from .conftest import Deployment

ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STARTUP_BOUND_S = 300
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


@dataclass
class Dev:
    url: str
    deployment: Deployment
    log: Path


@contextlib.contextmanager
def running_dg_dev(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`dg dev` as `make dev` starts it, with the test's environment: its URL once both code locations
    have loaded, and the file its output goes to."""
    home = prepare_dagster_home(tmp_path / "dagster_home")
    port = free_port()
    log = tmp_path / "dg_dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            dev_command(port),
            cwd=home,
            env=dev_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # dg dev ignores a plain SIGTERM from a non-interactive parent
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Loading the code location takes ~30 s alone, several minutes on a 2-core machine shared by
        # other test runs.
        deadline = time.monotonic() + STARTUP_BOUND_S
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/server_info", timeout=2).ok and _all_locations_loaded(url):
                    break
            except (requests.ConnectionError, KeyError, TypeError):
                pass
            time.sleep(1)
        else:
            pytest.fail(f"dagster dev did not come up within {STARTUP_BOUND_S} s")
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def dagster_dev(deploy, tmp_path: Path) -> Iterator[Dev]:
    deployment = deploy(users=150, events_per_day=40)
    with running_dg_dev(tmp_path) as (url, log):
        yield Dev(url, deployment, log)


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def _all_locations_loaded(url: str) -> bool:
    """Both code locations of workspace.yaml (the loads, the marts) loaded, not just the first."""
    entries = gql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
    return len(entries) == 2 and all(e["loadStatus"] == "LOADED" for e in entries)


def gql(url: str, query: str, **variables: object) -> dict:
    response = requests.post(url + "/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]
