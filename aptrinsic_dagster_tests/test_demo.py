"""`make demo` as a person sees it: a short progress report and summary, Dagster's log in a file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT


@pytest.mark.slow
def test_the_demo_prints_steps_and_a_summary_and_logs_dagster_to_a_file(tmp_path: Path):
    # Like `make demo`, it records its runs in the project's .dagster_home (git-ignored).
    env = {**os.environ, "APTRINSIC_DUCKDB_PATH": str(tmp_path / "demo.duckdb")}
    done = subprocess.run(
        [sys.executable, "-m", "aptrinsic_sandbox.demo"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    lines = done.stdout.splitlines()
    assert len(lines) < 120 and not [line for line in lines if " - DEBUG - " in line or "dbt=" in line]
    assert done.stderr == ""
    for step in ("loading 10 snapshot tables", "loading 11 event tables", "checking event tables"):
        assert any(step in line for line in lines), step
    assert any(line.strip().startswith("ok   11 tables,") and "rows loaded" in line for line in lines)
    assert "rows_match_api       22 passed" in done.stdout
    log = Path(lines[-1].split("Dagster's full log: ", 1)[1].split(";", 1)[0])
    assert log == ROOT / ".dagster_home" / "demo.log"
    assert log.read_text().count(" - DEBUG - ") > 200
