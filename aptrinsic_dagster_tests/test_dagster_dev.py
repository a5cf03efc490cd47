"""Smoke test of what people use: `dagster dev` (webserver + daemon) over its GraphQL API."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import API_KEY, DAY_MS, Deployment, ms, row_count

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = [f"2026-03-{day:02d}" for day in range(5, 12)]

ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_dev(deploy, tmp_path: Path) -> Iterator[tuple[str, Deployment]]:
    deployment = deploy(users=150, events_per_day=40)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # dagster dev ignores a plain SIGTERM from a non-interactive parent
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/server_info", timeout=2).ok and _gql(url, ASSET_NODES)["assetNodes"]:
                    break
            except (requests.ConnectionError, KeyError, TypeError):
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not come up within 120 s")
        yield url, deployment
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _gql(url: str, query: str, **variables: object) -> dict:
    response = requests.post(url + "/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


@pytest.mark.slow
def test_dagster_dev_shows_lineage_and_runs_concurrent_partitions(dagster_dev):
    url, deployment = dagster_dev
    nodes = _gql(url, ASSET_NODES)["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert len(keys) == 28 and {"aptrinsic/events_page_view", "aptrinsic_marts/active_users_daily"} <= keys
    edges = {("/".join(d["path"]), "/".join(n["assetKey"]["path"])) for n in nodes for d in n["dependencyKeys"]}
    assert ("aptrinsic/users", "aptrinsic/user_preferences") in edges
    assert ("aptrinsic/events_session", "aptrinsic_marts/active_users_daily") in edges

    # Seven partition runs and a snapshot refresh launched at once: the pool serializes their
    # loads and checks, so no writer trips over DuckDB's file lock or a reader, and no two runs
    # share dlt's working folder.
    run_ids = []
    for job, partition in [("aptrinsic_snapshots", None)] + [("aptrinsic_daily_events", p) for p in PARTITIONS]:
        tags = [{"key": "dagster/partition", "value": partition}] if partition else []
        params = {
            "selector": {
                "repositoryLocationName": "aptrinsic_dagster",
                "repositoryName": "__repository__",
                "jobName": job,
            },
            "executionMetadata": {"tags": tags},
        }
        launched = _gql(url, LAUNCH, p=params)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_ids.append(launched["run"]["runId"])
    deadline, statuses = time.monotonic() + 420, {}
    while time.monotonic() < deadline:
        statuses = {r: _gql(url, STATUS, id=r)["runOrError"]["status"] for r in run_ids}
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()):
            break
        time.sleep(2)
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    start, end = ms(dt.date.fromisoformat(PARTITIONS[0])), ms(dt.date.fromisoformat(PARTITIONS[-1])) + DAY_MS
    expected = deployment.sandbox.count("/v1/events/session", start, end)
    assert row_count(deployment.duckdb_path, "events_session") == expected
    assert row_count(deployment.duckdb_path, "users") == 150
    # Compute logs, run storage and event logs of all runs: no trace of the key.
    stored = (p.read_bytes() for p in (deployment.duckdb_path.parent / "dagster_home").rglob("*") if p.is_file())
    assert not any(API_KEY.encode() in blob for blob in stored)
