"""``make dev``: the sandbox on loopback plus ``dagster dev`` wired to it (UI, daemon, schedules).

    .venv/bin/python -m aptrinsic_sandbox.dev [--port 3000]

With ``--real-api``, no sandbox starts and the definitions load the real API with your
``APTRINSIC_API_KEY`` (and ``APTRINSIC_BASE_URL`` or the US host).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import DataConfig, Sandbox, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_KEY = "sandbox-demo-key"


def prepare_dagster_home(home: Path) -> Path:
    """A Dagster home with the project's instance settings (pool limits) in it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def sandbox_for_demo(users: int = 2000, events_per_day: int = 300) -> Sandbox:
    """A sandbox whose data covers the last 14 complete UTC days, as the daily partitions do."""
    data = DataConfig(users=users, accounts=max(1, users // 10), events_per_day=events_per_day, days=14)
    return Sandbox(SandboxConfig(data=data, api_keys=(SANDBOX_KEY,)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI on 127.0.0.1")
    parser.add_argument("--real-api", action="store_true", help="no sandbox: use APTRINSIC_API_KEY against the API")
    args = parser.parse_args()
    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home(ROOT / ".dagster_home"))}
    sandbox = None
    if not args.real_api:
        sandbox = sandbox_for_demo().start()
        env.update(APTRINSIC_API_KEY=SANDBOX_KEY, APTRINSIC_BASE_URL=sandbox.base_url)
        print(f"sandbox serving {sandbox.base_url}", flush=True)
    dagster = str(Path(sys.executable).parent / "dagster")
    try:
        return subprocess.call(
            [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)], cwd=ROOT, env=env
        )
    except KeyboardInterrupt:
        return 0
    finally:
        if sandbox:
            sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
