"""The phases of one daily run, read back after it ended (benchmarks/daily_cost.py runs this in the
run's environment): Dagster's event log of the run under ``DAGSTER_HOME`` (the given run id, else
the latest run), including the line where the load logs dlt's phases, and the rows the warehouse holds for the day.

    DAGSTER_HOME=... APTRINSIC_PIPELINES_DIR=... python -m benchmarks.run_phases [RUN_ID]

Prints one JSON line of epoch seconds (run_start, run_end) and durations in seconds.
"""

from __future__ import annotations

import json
import re
import sys

import dagster as dg
import duckdb

from aptrinsic_dagster import settings
from aptrinsic_dagster.assets import PHASES_LINE
from aptrinsic_dagster.sources.aptrinsic.pipeline import DATASET_NAME
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES


def main() -> None:
    instance = dg.DagsterInstance.get()
    run = instance.get_run_by_id(sys.argv[1]) if len(sys.argv) > 1 else instance.get_runs(limit=1)[0]
    entries = instance.all_logs(run.run_id)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for entry in entries:
        if entry.dagster_event is not None:
            kind = entry.dagster_event.event_type_value
            first.setdefault(kind, entry.timestamp)
            last[kind] = entry.timestamp
    load_logged, phases = dlt_phases(entries)
    loaded = last["ASSET_MATERIALIZATION"]
    result = {
        "run_start": first["PIPELINE_START"],
        "run_end": last["PIPELINE_SUCCESS"],
        "step_start": load_logged - sum(phases.values()) - first["PIPELINE_START"],
        **phases,
        "metadata": loaded - load_logged,
        "checks": last["ASSET_CHECK_EVALUATION"] - loaded,
        "run_end_after_checks": last["PIPELINE_SUCCESS"] - last["ASSET_CHECK_EVALUATION"],
        "rows": _rows(run.tags["dagster/partition"]),
    }
    if "PIPELINE_ENQUEUED" in first:
        result["queued"] = first["PIPELINE_STARTING"] - first["PIPELINE_ENQUEUED"]
        result["worker_start"] = first["PIPELINE_START"] - first["PIPELINE_STARTING"]
    print(json.dumps(result))


def dlt_phases(entries: list[dg.EventLogEntry]) -> tuple[float, dict[str, float]]:
    """When a run's load logged its dlt phases (assets.PHASES_LINE, just after the load ended), and
    each phase's seconds, in order."""
    line = next(e for e in entries if e.user_message.startswith(PHASES_LINE))
    phases = re.findall(r"(\w+) ([\d.]+) s", line.user_message)
    return line.timestamp, {name: float(seconds) for name, seconds in phases}


def _rows(day: str) -> int:
    with duckdb.connect(settings.duckdb_path(), read_only=True) as con:
        return sum(
            con.execute(f"SELECT count(*) FROM {DATASET_NAME}.{t.name} WHERE _aptrinsic_day = ?", [day]).fetchone()[0]
            for t in EVENT_TABLES
        )


if __name__ == "__main__":
    main()
