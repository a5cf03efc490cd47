"""``make bench``: throughput, memory and latency-bound scaling, side by side, in one run.

Scenario 1 (throughput): one sandbox with 100k users, 10k accounts and 1M events over 30 days
(times ``--scale``), loaded by three paths, each in its own process: the raw ceiling, the dlt
``rest_api`` config as the seed page writes it, and this project through Dagster.
Scenario 2 (latency-bound): the sandbox answers every request after 150 ms and caps at 200
requests/s; a 30-day event backfill (``--latency-scale`` of scenario 1's events) by the seed-style
config, one resource after another, and by this project.

    .venv/bin/python -m benchmarks.bench [--scale 1.0] [--latency-scale 0.25] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES

KEY = "bench-key"
START, END = "2026-01-30", "2026-03-01"  # 30 days of events, the sandbox's whole range


def spawn_sandbox(*args: str) -> tuple[subprocess.Popen, str]:
    """The sandbox in a process of its own (its CLI), so it never competes for a path's GIL."""
    command = [sys.executable, "-m", "aptrinsic_sandbox", "--api-key", KEY, "--end-date", END, *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def _sandbox(users: int, events: int, *extra: str) -> tuple[subprocess.Popen, str]:
    per_day = max(1, round(events / (len(EVENT_TABLES) * 30)))
    accounts = max(1, users // 10)
    return spawn_sandbox(
        "--users", str(users), "--accounts", str(accounts), "--events-per-day", str(per_day), "--days", "30", *extra
    )


def _stats(base_url: str, reset: bool = False) -> dict:
    root = base_url.removesuffix("/v1")
    stats = requests.get(root + "/_sandbox/stats", timeout=10).json()
    if reset:
        requests.post(root + "/_sandbox/reset", timeout=10)
    return stats


def _fresh(tmp: str, scenario: str) -> Path:
    """Each scenario loads into files of its own (a DuckDB file per path inside)."""
    folder = Path(tmp) / scenario
    folder.mkdir(exist_ok=True)
    return folder


def _run_path(path: str, base_url: str, workdir: Path, *extra: str) -> dict:
    # The previous path's DuckDB file may still be flushing to disk: not this path's cost.
    os.sync()
    time.sleep(2)
    _stats(base_url, reset=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.paths",
            path,
            "--base-url",
            base_url,
            "--key",
            KEY,
            "--workdir",
            str(workdir),
            "--start",
            START,
            "--end",
            END,
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"path {path} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stats = _stats(base_url)
    result.update(requests=stats["total_requests"], peak_rps=stats["peak_rps"], statuses=stats["statuses"])
    result["total_rows"] = sum(result["rows"].values())
    print(f"{path}: {result['wall']:.1f} s, {result['total_rows']:,} rows, {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def _expected(base_url: str, events_only: bool) -> int:
    root = base_url.removesuffix("/v1")
    total = 0
    for table in (*EVENT_TABLES, *(() if events_only else SNAPSHOT_TABLES)):
        params = {"endpoint": "/v1" + table.path, "start": START, "end": END}
        total += requests.get(root + "/_sandbox/count", params=params, timeout=30).json()["count"]
    return total


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 100k users, 10k accounts, 1M events")
    parser.add_argument("--latency-scale", type=float, default=0.25, help="scenario 2 events, as a share of 1M")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    users, events = int(100_000 * args.scale), int(1_000_000 * args.scale)
    report: dict = {"date": dt.date.today().isoformat(), "commit": _commit(), "machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="aptrinsic-bench-") as tmp:
        proc, base_url = _sandbox(users, events, "--rate-cap", "0")
        try:
            expected = _expected(base_url, events_only=False)
            s1 = {name: _run_path(name, base_url, _fresh(tmp, "s1")) for name in ("raw", "seed", "project")}
        finally:
            proc.terminate()
        latency_events = int(1_000_000 * args.latency_scale)
        proc, base_url = _sandbox(max(1, users // 10), latency_events, "--latency-ms", "150", "--rate-cap", "200")
        try:
            expected2 = _expected(base_url, events_only=True)
            s2 = {name: _run_path(name, base_url, _fresh(tmp, "s2"), "--events-only") for name in ("seed", "project")}
        finally:
            proc.terminate()
    report.update(scale=args.scale, expected_rows=expected, scenario1=s1, latency_events=expected2, scenario2=s2)
    print(_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if any(r["total_rows"] != expected for r in s1.values()) or any(r["total_rows"] != expected2 for r in s2.values()):
        raise SystemExit("row counts differ from what the sandbox holds")


def _machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def _table(r: dict) -> str:
    s1, s2 = r["scenario1"], r["scenario2"]
    raw, seed = s1["raw"]["wall"], s1["seed"]["wall"]
    lines = [
        f"date {r['date']}  commit {r['commit']}  machine {r['machine']}",
        f"scenario 1: {r['expected_rows']:,} rows (scale {r['scale']}: users, accounts, 1M-scale events over 30 days "
        "and the small snapshot tables; no user_preferences)",
        f"{'path':<14}{'wall s':>9}{'rows':>11}{'rows/s':>10}{'peak RSS MB':>13}{'requests':>10}"
        f"{'vs ceiling':>12}{'vs seed':>9}",
    ]
    names = {"raw": "raw ceiling", "seed": "seed-style", "project": "this project"}
    for key, res in s1.items():
        lines.append(
            f"{names[key]:<14}{res['wall']:>9.1f}{res['total_rows']:>11,}{res['total_rows'] / res['wall']:>10,.0f}"
            f"{res['peak_rss_mb']:>13.0f}{res['requests']:>10,}{res['wall'] / raw:>11.2f}x{seed / res['wall']:>8.1f}x"
        )
    lines += [
        "",
        f"scenario 2: 150 ms per request, cap 200 requests/s, 30-day backfill of {r['latency_events']:,} events",
        f"{'path':<24}{'wall s':>9}{'requests':>10}{'peak req/s':>12}{'429s':>6}{'peak RSS MB':>13}{'speed-up':>10}",
    ]
    names2 = {"seed": "seed-style, sequential", "project": "this project"}
    for key, res in s2.items():
        lines.append(
            f"{names2[key]:<24}{res['wall']:>9.1f}{res['requests']:>10,}{res['peak_rps']:>12}"
            f"{res['statuses'].get('429', 0):>6}{res['peak_rss_mb']:>13.0f}{s2['seed']['wall'] / res['wall']:>9.1f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
