"""``make bench``: throughput, memory and latency-bound scaling, side by side, in one run.

Scenario 1 (throughput): one sandbox with 100k users, 10k accounts and 1M events over 30 days
(times ``--scale``), loaded by three paths, each in its own process: the raw ceiling, the dlt
``rest_api`` config as the seed page writes it, and this project through Dagster.
Scenario 2 (latency-bound): the sandbox answers every request after 150 ms and caps at 200
requests/s; a 30-day event backfill (``--latency-scale`` of scenario 1's events) by the seed-style
config, one resource after another, and by this project.
Scenario 3 (a backfill at the rate cap): the same latency and cap, a 365-day backfill of a skewed
mix (events_page_view holds 60% of the events) in about 10,300 pages of 50 records at scale 1.0 (the
sandbox serves any pageSize from 1, so 10,000 pages need 500k events, not 10M), by the seed-style
config (sequential), by this project (through Dagster, and its dlt source alone under plain dlt),
and the floor: the fewest pages (ceil(total / pageSize) per table and API window) / the cap. Pages
are compared with that minimum and with one scroll per table and day (computed from the sandbox's
per-day counts); the project's run start is measured as the same run for one day.

    .venv/bin/python -m benchmarks.bench [--scale 1.0] [--latency-scale 0.25] [--json out.json]
        [--scenarios 1,2,3] [--backfill-days 365] [--backfill-pages N] [--no-sequential]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES, Table
from aptrinsic_dagster.sources.aptrinsic.windows import instant, split_windows
from aptrinsic_sandbox import spawn

KEY = "bench-key"
START, END = "2026-01-30", "2026-03-01"  # 30 days of events, the sandbox's whole range
LATENCY_MS, CAP = 150, 200  # scenarios 2 and 3: the real API's cap, a slow answer
BACKFILL_PAGE_SIZE = 50
BACKFILL_PAGES = 10_300
BIG_TABLE, BIG_WEIGHT = "events_page_view", 15.0  # 15 / (15 + 10 other tables) = 60% of the events


def spawn_sandbox(*args: str) -> tuple[subprocess.Popen, str]:
    """The sandbox in a process of its own, so it never competes for a path's GIL."""
    return spawn("--api-key", KEY, "--end-date", END, *args)


def _sandbox(users: int, events: int, *extra: str, days: int = 30, weight: float = 1.0) -> tuple[subprocess.Popen, str]:
    per_day = max(1, round(events / ((len(EVENT_TABLES) - 1 + weight) * days)))
    accounts = max(1, users // 10)
    return spawn_sandbox(
        "--users", str(users), "--accounts", str(accounts), "--events-per-day", str(per_day), "--days", str(days),
        *extra,
    )  # fmt: skip


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


def _run_path(path: str, base_url: str, workdir: Path, *extra: str, start: str = START) -> dict:
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
            start,
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
    result.update(
        requests=stats["total_requests"],
        peak_rps=stats["peak_rps"],
        statuses=stats["statuses"],
        peak_in_flight=stats["peak_in_flight"],
    )
    result["total_rows"] = sum(result["rows"].values())
    print(f"{path}: {result['wall']:.1f} s, {result['total_rows']:,} rows, {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def _count(base_url: str, table: Table, start: str = START, end: str = END) -> int:
    params = {"endpoint": "/v1" + table.path, "start": start, "end": end}
    return requests.get(base_url.removesuffix("/v1") + "/_sandbox/count", params=params, timeout=30).json()["count"]


def _expected(base_url: str, events_only: bool, start: str = START) -> int:
    return sum(_count(base_url, t, start) for t in (*EVENT_TABLES, *(() if events_only else SNAPSHOT_TABLES)))


def _pages(base_url: str, start: str, size: int) -> dict:
    """Event pages at ``size``: the fewest (one scroll per table and API window) and with one scroll
    per table and day (a scroll of n records takes floor(n / size) + 1 pages: it ends on a short one)."""
    windows = split_windows(instant(start), instant(END))
    fewest = by_day = big = events = 0
    for table in EVENT_TABLES:
        for w_start, w_end in windows:
            total = _count(base_url, table, w_start.isoformat(), w_end.isoformat())
            fewest += math.ceil(total / size)
            events += total
            big += total if table.name == BIG_TABLE else 0
        day = instant(start)
        while day < instant(END):
            following = day + dt.timedelta(days=1)
            by_day += _count(base_url, table, day.isoformat(), following.isoformat()) // size + 1
            day = following
    return {"fewest": fewest, "by_day": by_day, "events": events, "big_share": big / max(1, events)}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 100k users, 10k accounts, 1M events")
    parser.add_argument("--latency-scale", type=float, default=0.25, help="scenario 2 events, as a share of 1M")
    parser.add_argument("--scenarios", default="1,2,3", help="which scenarios to run, e.g. 3 or 2,3 (default: all)")
    parser.add_argument("--backfill-days", type=int, default=365, help="scenario 3: days of the backfill")
    parser.add_argument(
        "--backfill-pages",
        type=int,
        help=f"scenario 3: about this many pages of {BACKFILL_PAGE_SIZE} records (sets the events per day). "
        f"Default: {BACKFILL_PAGES:,} x --scale (day counts vary; {BACKFILL_PAGES:,} gives at least 10,000)",
    )
    parser.add_argument(
        "--no-sequential",
        action="store_true",
        help="scenarios 2 and 3 without the sequential seed-style path (for iteration: 10,000 pages at 150 ms "
        "take 25 minutes one after another)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scenarios = {int(x) for x in args.scenarios.split(",")}
    users, events = int(100_000 * args.scale), int(1_000_000 * args.scale)
    report: dict = {"date": dt.date.today().isoformat(), "commit": commit(), "machine": machine()}
    latency = ("--latency-ms", str(LATENCY_MS), "--rate-cap", str(CAP))
    sequential = () if args.no_sequential else ("seed",)
    wrong = []
    with tempfile.TemporaryDirectory(prefix="aptrinsic-bench-") as tmp:
        if 1 in scenarios:
            proc, base_url = _sandbox(users, events, "--rate-cap", "0")
            try:
                expected = _expected(base_url, events_only=False)
                s1 = {name: _run_path(name, base_url, _fresh(tmp, "s1")) for name in ("raw", "seed", "project")}
            finally:
                proc.terminate()
            report.update(scale=args.scale, expected_rows=expected, scenario1=s1)
            wrong += [name for name, r in s1.items() if r["total_rows"] != expected]
        if 2 in scenarios:
            proc, base_url = _sandbox(max(1, users // 10), int(1_000_000 * args.latency_scale), *latency)
            try:
                expected2 = _expected(base_url, events_only=True)
                s2 = {
                    name: _run_path(name, base_url, _fresh(tmp, "s2"), "--events-only")
                    for name in (*sequential, "project")
                }
            finally:
                proc.terminate()
            report.update(latency_events=expected2, scenario2=s2)
            wrong += [name for name, r in s2.items() if r["total_rows"] != expected2]
        if 3 in scenarios:
            report["scenario3"] = s3 = _backfill(args, tmp, sequential, latency)
            wrong += [name for name, r in s3["paths"].items() if r["total_rows"] != s3["pages"]["events"]]
    print(_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if wrong:
        raise SystemExit(f"row counts differ from what the sandbox holds: {', '.join(wrong)}")


def _backfill(args: argparse.Namespace, tmp: str, sequential: tuple[str, ...], latency: tuple[str, ...]) -> dict:
    days = args.backfill_days
    target = args.backfill_pages or round(BACKFILL_PAGES * args.scale)
    start = (dt.date.fromisoformat(END) - dt.timedelta(days=days)).isoformat()
    weight = ("--event-weight", f"pageView={BIG_WEIGHT:g}")
    proc, base_url = _sandbox(100, target * BACKFILL_PAGE_SIZE, *latency, *weight, days=days,
                              weight=BIG_WEIGHT)  # fmt: skip
    try:
        pages = _pages(base_url, start, BACKFILL_PAGE_SIZE)
        extra = ("--events-only", "--page-size", str(BACKFILL_PAGE_SIZE))
        paths = {name: _run_path(name, base_url, _fresh(tmp, "s3"), *extra, start=start) for name in sequential}
        paths["project"] = _run_path("project", base_url, _fresh(tmp, "s3"), *extra, start=start)
        paths["source"] = _run_path("source", base_url, _fresh(tmp, "s3"), *extra, start=start)
        # The run start: the same run for the last day alone (11 requests, one per table).
        last = (dt.date.fromisoformat(END) - dt.timedelta(days=1)).isoformat()
        one_day = _run_path("project", base_url, _fresh(tmp, "s3-day"), *extra, start=last)
    finally:
        proc.terminate()
    return {"days": days, "page_size": BACKFILL_PAGE_SIZE, "pages": pages, "paths": paths, "run_start": one_day["wall"]}


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def _table(r: dict) -> str:
    lines = [f"date {r['date']}  commit {r['commit']}  machine {r['machine']}"]
    if "scenario1" in r:
        s1 = r["scenario1"]
        raw, seed = s1["raw"]["wall"], s1["seed"]["wall"]
        lines += [
            f"scenario 1: {r['expected_rows']:,} rows (scale {r['scale']}: users, accounts, 1M-scale events over 30 "
            "days and the small snapshot tables; no user_preferences)",
            f"{'path':<14}{'wall s':>9}{'rows':>11}{'rows/s':>10}{'peak RSS MB':>13}{'requests':>10}"
            f"{'vs ceiling':>12}{'vs seed':>9}",
        ]
        names = {"raw": "raw ceiling", "seed": "seed-style", "project": "this project"}
        for key, res in s1.items():
            lines.append(
                f"{names[key]:<14}{res['wall']:>9.1f}{res['total_rows']:>11,}"
                f"{res['total_rows'] / res['wall']:>10,.0f}{res['peak_rss_mb']:>13.0f}{res['requests']:>10,}"
                f"{res['wall'] / raw:>11.2f}x{seed / res['wall']:>8.1f}x"
            )
    if "scenario2" in r:
        s2 = r["scenario2"]
        lines += [
            "",
            f"scenario 2: {LATENCY_MS} ms per request, cap {CAP} requests/s, 30-day backfill of "
            f"{r['latency_events']:,} events",
            *_latency_rows(s2, s2.get("seed", {}).get("wall")),
        ]
    if "scenario3" in r:
        s3 = r["scenario3"]
        p, paths = s3["pages"], s3["paths"]
        floor = p["fewest"] / CAP
        lines += [
            "",
            f"scenario 3: {LATENCY_MS} ms per request, cap {CAP} requests/s, {s3['days']}-day backfill of "
            f"{p['events']:,} events ({BIG_TABLE} {p['big_share']:.0%}), pages of {s3['page_size']}",
            f"pages: fewest {p['fewest']:,} (ceil(total / pageSize) per table and API window); one scroll per table "
            f"and day {p['by_day']:,} ({p['by_day'] / p['fewest']:.2f}x); this project "
            f"{paths['project']['requests']:,} ({paths['project']['requests'] / p['fewest']:.2f}x)",
            *_latency_rows(paths, paths.get("seed", {}).get("wall")),
            f"{'floor (fewest / cap)':<24}{floor:>9.1f}{p['fewest']:>10,}{CAP:>12}",
            f"run start (the run for one day): {s3['run_start']:.1f} s; this project / (floor + run start): "
            f"{paths['project']['wall'] / (floor + s3['run_start']):.2f}x; its dlt source alone (plain dlt, no "
            f"Dagster) / floor: {paths['source']['wall'] / floor:.2f}x",
        ]
    return "\n".join(lines)


def _latency_rows(paths: dict, sequential: float | None) -> list[str]:
    lines = [
        f"{'path':<24}{'wall s':>9}{'requests':>10}{'peak req/s':>12}{'429s':>6}{'in flight':>11}"
        f"{'peak RSS MB':>13}{'speed-up':>10}"
    ]
    names = {"seed": "seed-style, sequential", "project": "this project", "source": "its dlt source alone"}
    for key, res in paths.items():
        speedup = f"{sequential / res['wall']:>9.1f}x" if sequential else f"{'':>10}"
        lines.append(
            f"{names[key]:<24}{res['wall']:>9.1f}{res['requests']:>10,}{res['peak_rps']:>12}"
            f"{res['statuses'].get('429', 0):>6}{res['peak_in_flight']:>11}{res['peak_rss_mb']:>13.0f}{speedup}"
        )
    return lines


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
