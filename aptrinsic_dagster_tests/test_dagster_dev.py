"""Smoke test of what people use: `dg dev` as `make dev` starts it (webserver + daemon), over GraphQL."""

import datetime as dt
import time

import pytest

from .dev_server import ASSET_NODES, LAUNCH, STATUS, Dev, gql
from .helpers import API_KEY, DAY_MS, ms, row_count

PARTITIONS = [f"2026-03-{day:02d}" for day in range(5, 12)]


@pytest.mark.slow
def test_dagster_dev_shows_lineage_and_runs_concurrent_partitions(dagster_dev: Dev):
    url, deployment = dagster_dev.url, dagster_dev.deployment
    started = dagster_dev.log.read_text()
    assert "Serving dagster-webserver" in started
    # The two warnings `dagster dev` used to print at every start: neither is left.
    assert "Found a dagster instance configuration" not in started and "superseded" not in started
    nodes = gql(url, ASSET_NODES)["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert len(keys) == 22 and "aptrinsic/events_page_view" in keys
    edges = {("/".join(d["path"]), "/".join(n["assetKey"]["path"])) for n in nodes for d in n["dependencyKeys"]}
    assert edges == {("aptrinsic/users", "aptrinsic/user_preferences")}

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
        launched = gql(url, LAUNCH, p=params)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_ids.append(launched["run"]["runId"])
    deadline, statuses = time.monotonic() + 420, {}
    while time.monotonic() < deadline:
        statuses = {r: gql(url, STATUS, id=r)["runOrError"]["status"] for r in run_ids}
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()):
            break
        time.sleep(2)
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    start, end = ms(dt.date.fromisoformat(PARTITIONS[0])), ms(dt.date.fromisoformat(PARTITIONS[-1])) + DAY_MS
    expected = deployment.sandbox.count("/v1/events/session", start, end)
    assert row_count(deployment.duckdb_path, "events_session") == expected
    assert row_count(deployment.duckdb_path, "users") == 150
    # Compute logs, run storage and event logs of all three runs: no trace of the key.
    stored = (p.read_bytes() for p in (deployment.duckdb_path.parent / "dagster_home").rglob("*") if p.is_file())
    assert not any(API_KEY.encode() in blob for blob in stored)
