"""The `dg` CLI on the project ([tool.dg] in pyproject.toml), and the older `dagster` commands beside it."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from .helpers import DAY_MS, ROOT, ms, query, row_count

BIN = Path(sys.executable).parent
DAY = "2026-03-10"


def _run(*command: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_dg_check_and_list_defs(defs: dg.Definitions):
    checked = _run("dg", "check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = json.loads(_run("dg", "list", "defs", "--json").stdout)
    # dg's project is the loads' code location, exactly as Python loads it: every table, check, job and
    # sensor (the marts are workspace.yaml's second location: `dg dev -w workspace.yaml` serves both).
    graph = defs.resolve_asset_graph()
    assert {a["asset_key"] for a in listed["assets"]} == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert len(listed["assets"]) == 22 and "aptrinsic/events_session" in {a["asset_key"] for a in listed["assets"]}
    assert len(listed["asset_checks"]) == len(graph.asset_check_keys)
    assert {j["name"] for j in listed["jobs"]} == {j.name for j in defs.jobs}
    assert len(listed["schedules"]) == 2 and len(listed["sensors"]) == len(list(defs.sensors))


@pytest.mark.slow
def test_dg_launch_one_partition_of_one_asset_loads_exactly_that_day(deploy, tmp_path: Path):
    deployment = deploy(users=60, events_per_day=50)
    home = tmp_path / "dagster_home"
    home.mkdir()
    _run("dg", "launch", "--assets", "aptrinsic/events_session", "--partition", DAY, home=home)
    start = ms(dt.date.fromisoformat(DAY))
    assert row_count(deployment.duckdb_path, "events_session") == deployment.sandbox.count(
        "/v1/events/session", start, start + DAY_MS
    )
    tables = {t for (t,) in query(deployment.duckdb_path, "SELECT table_name FROM information_schema.tables")}
    assert "events_page_view" not in tables  # only the selected asset of the multi-asset loaded


@pytest.mark.slow
def test_dagster_asset_materialize_still_works(deploy, tmp_path: Path):
    deployment = deploy(users=60)
    home = tmp_path / "dagster_home"
    home.mkdir()
    _run(
        "dagster",
        "asset",
        "materialize",
        "-m",
        "aptrinsic_dagster.definitions",
        "--select",
        "aptrinsic/segments",
        home=home,
    )
    assert row_count(deployment.duckdb_path, "segments") == deployment.sandbox.count("/v1/segment")
