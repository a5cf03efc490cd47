"""The cost of the daily job, which every user pays every day: one daily partition of the event
tables at scenario 1's scale, from launch to its checks done, broken down.

Three launches, each against the same sandbox and a Dagster home of its own:
- the CLI: ``dagster asset materialize --select group:aptrinsic_events --partition DAY``, one process,
  into an empty warehouse;
- the same command into a warehouse that already holds the 29 days before DAY (loaded by one
  ``--partition-range`` run, not timed): what the merge costs a user whose history is stored;
- the daemon: ``dg dev`` as ``make dev`` starts it, the ``aptrinsic_daily_events`` job launched over
  GraphQL, as the schedule launches it (queued, dequeued, a run worker process started).

Phases come from Dagster's event log (run and step events) and dlt's trace of the load (extract,
normalize, load). The code location load (import + definitions) is measured apart, in fresh
processes, for each code location (benchmarks/load_time.py).

    .venv/bin/python -m benchmarks.daily_cost [--scale 1.0] [--day 2026-02-28] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from aptrinsic_dagster.jobs import daily_events_job
from aptrinsic_dagster.names import EVENTS_GROUP
from aptrinsic_sandbox.dev import LAUNCH, STATUS, dev_env, gql, prepare_dagster_home, started_dg_dev
from aptrinsic_sandbox.postgres import free_port
from benchmarks import load_time
from benchmarks.bench import KEY, spawn_sandbox
from benchmarks.load_time import LOCATIONS

ROOT = Path(__file__).resolve().parents[1]
DAILY_JOB = daily_events_job.name
STORED_DAYS = 29  # the history loaded before the third launch: the rest of the sandbox's 30 days


def measure_locations(runs: int) -> dict:
    """Process start, then each code location's load (benchmarks/load_time.py), medians of ``runs``."""
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - started)
    return {
        "python_start": statistics.median(walls),
        **{name: load_time.measure(module, runs) for name, module in LOCATIONS.items()},
    }


def _environment(workdir: Path, base_url: str, name: str) -> dict:
    home = prepare_dagster_home(workdir / name / "dagster_home")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "APTRINSIC_API_KEY": KEY,
        "APTRINSIC_BASE_URL": base_url,
        "APTRINSIC_DUCKDB_PATH": str(workdir / name / "aptrinsic.duckdb"),
        "APTRINSIC_PIPELINES_DIR": str(workdir / name / "pipelines"),
    }


def _run_phases(env: dict, run_id: str | None = None) -> dict:
    """Seconds between the run's events (Dagster's event log) and dlt's load phases (its trace)."""
    probe = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_phases", *([run_id] if run_id else [])],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        raise SystemExit(f"could not read the run's events:\n{probe.stderr[-3000:]}")
    return json.loads(probe.stdout.strip().splitlines()[-1])


def via_cli(workdir: Path, base_url: str, day: str, name: str = "cli", stored: str | None = None) -> dict:
    """One partition through ``dagster asset materialize``; ``stored`` is a partition range loaded first."""
    env = _environment(workdir, base_url, name)
    if stored:
        _materialize(env, workdir / name / "stored.log", "--partition-range", stored)
    launched = time.time()
    usage = _materialize(env, workdir / name / "materialize.log", "--partition", day)
    ended = time.time()
    phases = _run_phases(env)
    return {
        "total": ended - launched,
        "to_run_start": phases["run_start"] - launched,
        "after_run_end": ended - phases["run_end"],
        "peak_rss_mb": usage.ru_maxrss / 1024,
        **phases,
    }


def _materialize(env: dict, log: Path, *partitions: str) -> os.struct_rusage:
    module = LOCATIONS["aptrinsic_dagster"]
    command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", module]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--select", f"group:{EVENTS_GROUP}", *partitions],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"dagster asset materialize {' '.join(partitions)} failed:\n{log.read_text()[-4000:]}")
    return usage


def via_daemon(workdir: Path, base_url: str, day: str) -> dict:
    env = _environment(workdir, base_url, "daemon")
    home = Path(env["DAGSTER_HOME"])
    env = dev_env(home, env)  # as `make dev` runs it: from the Dagster home, dlt's settings from the project
    log = workdir / "daemon" / "dg_dev.log"
    with started_dg_dev(home, env, log, free_port(), bound_s=180) as url:
        launched = time.time()
        run_id = _launch(url, day)
        while _status(url, run_id) not in {"SUCCESS", "FAILURE", "CANCELED"}:
            time.sleep(0.2)
        ended = time.time()
        if _status(url, run_id) != "SUCCESS":
            tail = log.read_text(errors="replace")[-4000:]
            raise SystemExit(f"the daemon's run {run_id} did not succeed; the end of dg dev's output:\n{tail}")
        phases = _run_phases(env, run_id)
    return {"total": ended - launched, "to_run_start": phases["run_start"] - launched, **phases}


def _launch(url: str, day: str) -> str:
    repositories = (
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } jobs { name } } } } }"
    )
    nodes = gql(url, repositories)["repositoriesOrError"]["nodes"]
    repository = next(n for n in nodes if any(j["name"] == DAILY_JOB for j in n["jobs"]))
    params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "jobName": DAILY_JOB,
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }
    answer = gql(url, LAUNCH, p=params)["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise SystemExit(f"launchRun: {answer}")
    return answer["run"]["runId"]


def _status(url: str, run_id: str) -> str:
    return gql(url, STATUS, id=run_id)["runOrError"]["status"]


def _table(report: dict) -> str:
    loc = report["code_locations"]
    lines = [
        f"daily job cost: one partition ({report['day']}, {report['rows']:,} event rows, scale {report['scale']})",
        f"python start {loc['python_start']:.2f} s; code location load (median of {report['runs']} fresh processes):",
    ]
    for name, figures in loc.items():
        if name != "python_start":
            lines.append(
                f"  {name:<20} import {figures['import_wall']:.2f} s, with definitions"
                f" {figures['total_wall']:.2f} s (CPU {figures['total_cpu']:.2f} s)"
            )
    phases = ["to_run_start", "queued", "worker_start", "step_start", "extract", "normalize", "load", "metadata",
              "checks", "run_end_after_checks", "after_run_end", "total"]  # fmt: skip
    paths, widths = ("cli", "cli_stored", "daemon"), (20, 20, 18)
    lines.append(f"{'':<24}{'dagster asset materialize':>40}")
    stored = f"{STORED_DAYS} days stored"
    lines.append(f"{'phase, seconds':<24}{'empty warehouse':>20}{stored:>20}{'daemon (dg dev)':>18}")
    show = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
    for phase in phases:
        figures = [report[path].get(phase) for path in paths]
        if any(f is not None for f in figures):
            lines.append(f"{phase:<24}" + "".join(f"{show(f):>{w}}" for f, w in zip(figures, widths, strict=True)))
    lines.append(
        f"peak RSS of the CLI process: {report['cli']['peak_rss_mb']:.0f} MB empty,"
        f" {report['cli_stored']['peak_rss_mb']:.0f} MB with {report['stored_rows']:,} rows stored"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: scenario 1's 1M events over 30 days")
    parser.add_argument(
        "--day",
        default="2026-02-28",
        help="the partition to load (the sandbox holds 30 days: this one and the 29 before)",
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per code-location measurement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    events = int(1_000_000 * args.scale)
    per_day = max(1, round(events / (11 * 30)))
    proc, base_url = spawn_sandbox("--users", "1000", "--events-per-day", str(per_day), "--days", "30")
    try:
        end = (dt.date.fromisoformat(args.day) + dt.timedelta(days=1)).isoformat()
        rows = _sandbox_rows(base_url, args.day, end)
        first = (dt.date.fromisoformat(args.day) - dt.timedelta(days=STORED_DAYS)).isoformat()
        last = (dt.date.fromisoformat(args.day) - dt.timedelta(days=1)).isoformat()
        with tempfile.TemporaryDirectory(prefix="aptrinsic-daily-") as tmp:
            report = {
                "scale": args.scale,
                "day": args.day,
                "rows": rows,
                "runs": args.runs,
                "code_locations": measure_locations(args.runs),
                "stored_rows": _sandbox_rows(base_url, first, args.day),
                "cli": via_cli(Path(tmp), base_url, args.day),
                "cli_stored": via_cli(Path(tmp), base_url, args.day, "cli_stored", f"{first}...{last}"),
                "daemon": via_daemon(Path(tmp), base_url, args.day),
            }
            for path in ("cli", "cli_stored", "daemon"):
                if report[path]["rows"] != rows:
                    raise SystemExit(f"{path}: loaded {report[path]['rows']} rows, the sandbox holds {rows}")
    finally:
        proc.terminate()
    print(_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _sandbox_rows(base_url: str, start: str, end: str) -> int:
    from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES

    root = base_url.removesuffix("/v1")
    return sum(
        requests.get(
            root + "/_sandbox/count", params={"endpoint": "/v1" + t.path, "start": start, "end": end}, timeout=30
        ).json()["count"]
        for t in EVENT_TABLES
    )


if __name__ == "__main__":
    main()
