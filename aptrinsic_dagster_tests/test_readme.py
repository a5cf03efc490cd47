"""The README's commands, run as printed, so documentation cannot drift from behaviour."""

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import API_KEY, ROOT, SandboxFactory, ms, query


def bash_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", body, re.S)


def fresh_folder(tmp_path: Path) -> Path:
    """The project's tracked files in a new folder, sharing only the built virtual environment."""
    folder = tmp_path / "project"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    return folder


@pytest.mark.slow
def test_the_plain_dlt_block_runs_as_printed_in_a_fresh_folder(make_sandbox: SandboxFactory, tmp_path: Path):
    # The README's window is January 2026: the sandbox holds exactly that month.
    sandbox = make_sandbox(users=120, accounts=12, events_per_day=15, days=31, end_date=dt.date(2026, 2, 1))
    folder = fresh_folder(tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "DLT_DATA_DIR": str(tmp_path / "home" / "dlt"),
        "APTRINSIC_API_KEY": API_KEY,
        "APTRINSIC_BASE_URL": sandbox.base_url,
    }
    [block] = bash_blocks("Plain dlt")
    outputs = []
    for command in block.strip().splitlines():
        done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    _, info, users = outputs
    assert "aptrinsic_data" in info and "users" in info
    assert "[120 rows x" in users
    window = (ms(dt.date(2026, 1, 1)), ms(dt.date(2026, 2, 1)))
    warehouse = folder / "aptrinsic.duckdb"
    [(events,)] = query(warehouse, "SELECT count(*) FROM aptrinsic_data.events_custom")
    assert events == sandbox.count("/v1/events/custom", *window) > 0
