"""What ``make demo`` shows while Dagster works: one line per step (what loads, rows, checks, time),
a live count of the records fetched so far, and nothing of Dagster's own log, which goes to a file.

    with log_to(path), StepProgress(instance, sandbox, "snapshots") as progress:
        job.execute_in_process(instance=instance)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES

from . import Sandbox

POLL_SECONDS = 0.5
# Without a terminal to redraw a line on, a progress line every few seconds is enough.
PLAIN_EVERY_SECONDS = 5.0

STEP_LABELS = {
    "load_aptrinsic_snapshots": f"loading {len(SNAPSHOT_TABLES)} snapshot tables (users, accounts, features, ...)",
    "load_aptrinsic_user_preferences": "loading user_preferences (one request per loaded user)",
    "load_aptrinsic_events": f"loading {len(EVENT_TABLES)} event tables (page views, sessions, ...)",
    "aptrinsic_snapshot_checks": "checking snapshot tables against the API's counts",
    "aptrinsic_user_preferences_checks": "checking user_preferences",
    "aptrinsic_event_checks": "checking event tables against the API's counts",
}


@contextlib.contextmanager
def log_to(path: Path) -> Iterator[Path]:
    """Everything written to standard error (Dagster's console log, dlt's and Python's warnings) goes
    to ``path`` instead; the descriptor is swapped, so loggers that hold ``sys.stderr`` follow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield path
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _fmt(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


class StepProgress:
    """Follows the newest run of ``job`` in ``instance`` from a thread, printing as steps go."""

    def __init__(self, instance: dg.DagsterInstance, sandbox: Sandbox | None, job: str, out: TextIO = sys.stdout):
        self.instance, self.sandbox, self.job, self.out = instance, sandbox, job, out
        self.tty = out.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo-progress", daemon=True)
        self._since = time.time()
        self._steps: dict[str, dict[str, Any]] = {}
        self._live = ""

    def __enter__(self) -> StepProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _records(self) -> int:
        return self.sandbox.stats.snapshot()["records_served"] if self.sandbox else 0

    def _print(self, line: str) -> None:
        if self.tty and self._live:
            self.out.write("\r\x1b[2K")
            self._live = ""
        self.out.write(line + "\n")
        self.out.flush()

    def _show_live(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
            self._live = line
        else:
            self._print(line)

    def _run_id(self) -> str | None:
        runs = self.instance.get_runs(filters=RunsFilter(job_name=self.job), limit=1)
        if runs and (
            self.instance.get_run_record_by_id(runs[0].run_id).create_timestamp.timestamp() >= self._since - 1
        ):
            return runs[0].run_id
        return None

    def _follow(self) -> None:
        run_id, cursor, last_live = None, None, 0.0
        while True:
            stopping = self._stop.is_set()
            run_id = run_id or self._run_id()
            if run_id:
                connection = self.instance.get_records_for_run(run_id, cursor=cursor)
                cursor = connection.cursor
                for record in connection.records:
                    self._handle(record.event_log_entry)
            running = [s for s in self._steps.values() if "end" not in s and s["name"].startswith("load_")]
            now = time.monotonic()
            if running and now - last_live >= (POLL_SECONDS if self.tty else PLAIN_EVERY_SECONDS):
                step = running[0]
                fetched = self._records() - step["records0"]
                self._show_live(f"         {fetched:>10,} records fetched so far, {_fmt(now - step['live0'])} elapsed")
                last_live = now
            if stopping:
                break
            self._stop.wait(POLL_SECONDS)

    def _handle(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None or not event.step_key:
            return
        key, kind = event.step_key, event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            # Steps are timed by their events' timestamps: this thread polls, and may see them late.
            self._steps[key] = {"name": key, "t0": entry.timestamp, "records0": self._records(), "rows": 0}
            self._steps[key].update(tables=set(), checks=[], live0=time.monotonic())
            label = STEP_LABELS.get(key, "evaluating freshness" if key.startswith("freshness") else key)
            self._print(f"  {_fmt(entry.timestamp - self._since)}  {label}")
            return
        step = self._steps.get(key)
        if step is None:  # planned materializations and checks come before their step starts
            return
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            meta = materialization.metadata
            step["tables"].add(materialization.asset_key.path[-1])
            rows = meta.get("dagster/partition_row_count") or meta.get("dagster/row_count")
            step["rows"] += int(rows.value) if rows is not None else 0
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            step["checks"].append(event.event_specific_data)
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            step["end"] = entry.timestamp
            self._print(self._summary(step, kind == dg.DagsterEventType.STEP_SUCCESS))

    def _summary(self, step: dict[str, Any], ok: bool) -> str:
        took = f"{step['end'] - step['t0']:.1f} s"
        mark = "ok  " if ok else "FAIL"
        if step["tables"]:
            fetched = self._records() - step["records0"]
            tables = f"{len(step['tables'])} table{'s' if len(step['tables']) > 1 else ''}"
            what = f"{tables}, {step['rows']:,} rows loaded ({fetched:,} records fetched)"
        elif step["checks"]:
            checks = step["checks"]
            failed = [c for c in checks if not c.passed]
            what = f"{len(checks)} checks, {len(checks) - len(failed)} passed" + "".join(
                f"\n           failed: {c.asset_key.to_user_string()} {c.check_name} ({c.severity.value})"
                for c in failed
            )
        else:
            what = "done" if ok else "failed"
        return f"         {mark} {what} in {took}"
