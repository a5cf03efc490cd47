"""The benchmark at a small scale: every path loads exactly what the sandbox holds (no timings)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_paths_load_exact_row_counts(tmp_path: Path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.bench", "--scale", "0.005", "--latency-scale", "0.005"),
            *("--scenarios", "1,2", "--json", str(out)),  # scenario 3 checks its own row counts; 3 more runs here
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["scenario1"]) == {"raw", "seed", "project"} and set(report["scenario2"]) == {"seed", "project"}
    for path in report["scenario1"].values():
        assert path["total_rows"] == report["expected_rows"] > 0
        assert path["rows"]["users"] == 500
    # The project's peak placed in the dlt phases of its two runs (benchmarks/memory.py prints them).
    project = report["scenario1"]["project"]
    phases = {f"{run} {phase}" for run in ("snapshots", "events") for phase in ("extract", "normalize", "load")}
    assert set(project["phase_peaks_mb"]) == phases
    peaks = project["phase_peaks_mb"].values()
    assert 0 < min(peaks) <= max(peaks) <= project["peak_rss_mb"]
    for path in report["scenario2"].values():
        assert path["total_rows"] == report["latency_events"] > 0
        assert "429" not in path["statuses"]
    assert "this project" in result.stdout and "seed-style, sequential" in result.stdout


@pytest.mark.slow
def test_the_merge_delete_benchmark_deletes_the_same_rows_both_ways_on_both_warehouses():
    """The benchmark exits non-zero when dlt's one statement and the key-by-key ones delete different
    rows; at this size both finish everywhere."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.merge_delete", "--per-day", "20", "--limit", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("DuckDB", "Postgres"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (warehouse, stored, reloaded)
        for warehouse in ("DuckDB", "Postgres")
        for stored in ("600", "7,300")
        for reloaded in ("20", "600")
    ]
    assert all(len(r) == 6 for r in rows), result.stdout  # both timings and the ratio: neither ran out


@pytest.mark.slow
def test_the_event_storage_benchmark_records_every_partition_on_every_instance():
    """Its four instances each hold all of the range's partitions of all 11 assets (the benchmark exits
    non-zero otherwise), the Postgres ones with and without batched writes."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.event_storage", "--days", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("in memory", "SQLite", "Postgres"))]
    assert [r[0] for r in rows] == ["in", "SQLite", "Postgres", "Postgres"], result.stdout
    assert all(r[-2] == "4" for r in rows), result.stdout  # the partitions column
