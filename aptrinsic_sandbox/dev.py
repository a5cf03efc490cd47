"""``make dev``: the sandbox on loopback plus ``dg dev`` wired to it (UI, daemon, schedules, sensors).

    .venv/bin/python -m aptrinsic_sandbox.dev [--port 3000]

``dg dev`` runs in the Dagster home (``.dagster_home``, holding a copy of ``dagster.yaml``): started in
the project folder, Dagster warns that the ``dagster.yaml`` there is not the instance's. The runs still
see the project: the workspace loads it from its folder, dlt reads ``.dlt/`` there (DLT_PROJECT_DIR),
and the DuckDB file and dlt working folders stay where ``make demo`` puts them.

With ``--real-api``, no sandbox starts and the definitions load the real API with your
``APTRINSIC_API_KEY`` (and ``APTRINSIC_BASE_URL`` or the US host).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from aptrinsic_dagster import settings
from aptrinsic_dagster.sources.aptrinsic.pipeline import DEFAULT_DUCKDB_PATH

from . import DataConfig, Sandbox, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_KEY = "sandbox-demo-key"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
_LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def prepare_dagster_home(home: Path) -> Path:
    """A Dagster home with the project's instance settings (pool limits) in it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def sandbox_for_demo(users: int = 2000, events_per_day: int = 300) -> Sandbox:
    """A sandbox whose data covers the last 14 complete UTC days, as the daily partitions do."""
    data = DataConfig(users=users, accounts=max(1, users // 10), events_per_day=events_per_day, days=14)
    return Sandbox(SandboxConfig(data=data, api_keys=(SANDBOX_KEY,)))


def dev_command(port: int) -> list[str]:
    """``dg dev`` on the project's workspace file, from any folder."""
    dg = str(Path(sys.executable).parent / "dg")
    return [dg, "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]


def dev_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``dev_command`` run in ``home``: paths that would be relative to the
    project folder are made absolute, since the processes run in the Dagster home."""
    env = {**(os.environ if base is None else base), "DAGSTER_HOME": str(home), "DLT_PROJECT_DIR": str(ROOT)}
    env.setdefault(settings.DUCKDB_PATH, str(ROOT / DEFAULT_DUCKDB_PATH))
    env.setdefault(settings.PIPELINES_DIR, str(ROOT / settings.DEFAULT_PIPELINES_DIR))
    return env


def gql(url: str, query: str, **variables: object) -> dict:
    """The ``data`` of a GraphQL query to the Dagster webserver at ``url``."""
    response = requests.post(url + "/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


@contextlib.contextmanager
def started_dg_dev(home: Path, env: dict[str, str], log: Path, port: int, bound_s: float) -> Iterator[str]:
    """``dev_command(port)`` run in ``home`` with ``env`` (see ``dev_env``), its output to ``log``: its
    URL once every code location of the workspace has loaded (``TimeoutError`` after ``bound_s``);
    stopped with its process group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            dev_command(port),
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # dg dev ignores a plain SIGTERM from a non-interactive parent
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + bound_s
        while not _all_locations_loaded(url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"dg dev did not load its code locations within {bound_s:g} s (output: {log})")
            time.sleep(1)
        yield url
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 5) -> None:
    """Stop a process started with ``start_new_session`` and everything in its group: SIGTERM, up to
    ``grace_s`` for it to exit, then SIGKILL for whatever is left (run workers included). With runs
    still going, dg dev and the code servers did not exit within 30 s of a SIGTERM: the suite spent
    30 s on each dg dev teardown and 62 s on the production deployment's."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _all_locations_loaded(url: str) -> bool:
    """Every code location of workspace.yaml (the loads, the marts) loaded, not just the first."""
    try:
        entries = gql(url, _LOCATIONS)["workspaceOrError"]["locationEntries"]
    except (requests.ConnectionError, requests.HTTPError, KeyError, TypeError):
        return False
    return len(entries) == 2 and all(e["loadStatus"] == "LOADED" for e in entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI on 127.0.0.1")
    parser.add_argument("--real-api", action="store_true", help="no sandbox: use APTRINSIC_API_KEY against the API")
    args = parser.parse_args()
    home = prepare_dagster_home(ROOT / ".dagster_home")
    env = dev_env(home)
    sandbox = None
    if not args.real_api:
        sandbox = sandbox_for_demo().start()
        env.update(APTRINSIC_API_KEY=SANDBOX_KEY, APTRINSIC_BASE_URL=sandbox.base_url)
        print(f"sandbox serving {sandbox.base_url}", flush=True)
    try:
        return subprocess.call(dev_command(args.port), cwd=home, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        if sandbox:
            sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
