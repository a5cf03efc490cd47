"""The three load paths the benchmark compares, each run in a process of its own.

    python -m benchmarks.paths {raw,seed,project,source} --base-url URL --key KEY --workdir DIR
        --start 2026-01-30 --end 2026-03-01 [--events-only] [--page-size N]

Prints one JSON line: wall seconds, rows loaded per table, peak RSS, and for the project's path the
peak RSS within each dlt phase of its two runs (resident memory sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# First, as in the project's own processes: it sets Arrow's allocator before pyarrow loads (arrow_memory.py).
import aptrinsic_dagster  # noqa: F401

# isort: split
import duckdb
import pyarrow as pa
import requests

from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, MAX_WINDOW_DAYS, SNAPSHOT_TABLES, Table

HEADER = "X-APTRINSIC-API-KEY"


class _RssSampler:
    """This process's resident memory every 0.1 s (Linux's /proc), so a run's peak can be placed in a phase."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        threading.Thread(target=self._sample, daemon=True, name="rss-sampler").start()

    def _sample(self) -> None:
        while True:
            status = Path("/proc/self/status").read_text()
            self.samples.append((time.time(), int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024))
            time.sleep(0.1)

    def peak(self, start: float, end: float) -> float:
        """The highest sample within [start, end], or the first after it (a phase shorter than 0.1 s)."""
        within = [rss for t, rss in self.samples if start <= t <= end]
        return max(within) if within else next((rss for t, rss in self.samples if t > end), 0.0)


def _tables(events_only: bool) -> list[Table]:
    # user_preferences (one request per user) is left out of every path: 100k users would be
    # 100k requests, which measures the rate cap rather than the load.
    return list(EVENT_TABLES) + ([] if events_only else list(SNAPSHOT_TABLES))


def _ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


# -- raw ceiling: requests + json + pyarrow + duckdb, nothing else -------------------------------


def _fetch_raw(base_url: str, key: str, table: Table, start: int, end: int) -> pa.Table | None:
    session = requests.Session()
    session.headers[HEADER] = key
    url, size = base_url + table.path, table.max_page_size
    params: dict = {"pageSize": size} if size else {}
    if table.windowed:
        params.update(filter=f"date>={start};date<{end}", sort="date")
    pages, number = [], 0
    while True:
        if table.paging == "page":
            params["pageNumber"] = number
        body = session.get(url, params=params, timeout=60).json()
        records = body if table.record_key is None else body[table.record_key]
        if records:
            pages.append(pa.Table.from_pylist(records))
        if table.paging == "none" or len(records) < size or body.get("isLastPage"):
            break
        if table.paging == "scroll":
            params = {"pageSize": size, "scrollId": body["scrollId"]}
        number += 1
    return pa.concat_tables(pages, promote_options="permissive") if pages else None


def run_raw(args: argparse.Namespace) -> dict[str, int]:
    start, end = _ms(args.start), _ms(args.end)
    tables = _tables(args.events_only)
    with ThreadPoolExecutor(8) as pool:
        fetched = list(pool.map(lambda t: _fetch_raw(args.base_url, args.key, t, start, end), tables))
    rows = {}
    with duckdb.connect(str(Path(args.workdir) / "raw.duckdb")) as con:
        for table, data in zip(tables, fetched, strict=True):
            if data is not None:
                con.register("page", data)
                con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT * FROM page")
                con.unregister("page")
            rows[table.name] = 0 if data is None else data.num_rows
    return rows


# -- seed-style: dlt rest_api as the seed page writes it, with the right record keys -------------


def run_seed(args: argparse.Namespace) -> dict[str, int]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    pipeline = dlt.pipeline(
        "seed_style",
        destination=dlt.destinations.duckdb(str(Path(args.workdir) / "seed.duckdb")),
        dataset_name="seed_data",
        pipelines_dir=str(Path(args.workdir) / "seed_pipelines"),
    )
    # The API refuses windows over 190 days: a longer backfill is one run per window.
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    while start < end:
        stop = min(start + dt.timedelta(days=MAX_WINDOW_DAYS), end)
        info = pipeline.run(_seed_source(args, rest_api_source, start.isoformat(), stop.isoformat()))
        info.raise_on_failed_jobs()
        start = stop
    with duckdb.connect(str(Path(args.workdir) / "seed.duckdb"), read_only=True) as con:
        return {t.name: _count(con, f"seed_data.{t.name}") for t in _tables(args.events_only)}


def _seed_source(args: argparse.Namespace, rest_api_source: Any, start: str, end: str) -> Any:
    scroll = {"type": "cursor", "cursor_path": "scrollId", "cursor_param": "scrollId", "stop_after_empty_page": True}
    numbered = {"type": "page_number", "base_page": 0, "page_param": "pageNumber", "total_path": None}
    window = f"date>={_ms(start)};date<{_ms(end)}"
    resources = []
    for table in _tables(args.events_only):
        endpoint: dict = {"path": table.path.lstrip("/"), "data_selector": table.record_key or "$"}
        size = _page_size(args, table)
        if table.paging == "scroll":
            endpoint.update(paginator=scroll, params={"pageSize": size})
        elif table.paging == "page":
            endpoint.update(paginator={**numbered, "stop_after_empty_page": True}, params={"pageSize": size})
        else:
            endpoint["paginator"] = "single_page"
        if table.windowed:
            endpoint["params"] = {**endpoint["params"], "filter": window, "sort": "date"}
        resources.append({"name": table.name, "primary_key": table.primary_key, "endpoint": endpoint})
    return rest_api_source(
        {
            "client": {
                "base_url": args.base_url,
                "auth": {"type": "api_key", "name": HEADER, "api_key": args.key, "location": "header"},
            },
            "resource_defaults": {"write_disposition": "merge"},
            "resources": resources,
        }
    )


def _page_size(args: argparse.Namespace, table: Table) -> int:
    return min(args.page_size or table.max_page_size, table.max_page_size)


# -- this project, through Dagster, as a user materializes it ------------------------------------


def run_project(args: argparse.Namespace) -> dict[str, int]:
    import dagster as dg

    duckdb_path = Path(args.workdir) / "project.duckdb"
    os.environ.update(
        APTRINSIC_API_KEY=args.key,
        APTRINSIC_BASE_URL=args.base_url,
        APTRINSIC_DUCKDB_PATH=str(duckdb_path),
        APTRINSIC_PIPELINES_DIR=str(Path(args.workdir) / "project_pipelines"),
        APTRINSIC_START_DATE=min(args.start, os.environ.get("APTRINSIC_START_DATE", args.start)),
    )
    from aptrinsic_dagster.definitions import defs

    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    if not args.events_only:
        snapshots = [dg.AssetKey(["aptrinsic", t.name]) for t in SNAPSHOT_TABLES]
        result = definitions.resolve_job_def("aptrinsic_snapshots").execute_in_process(
            instance=instance, asset_selection=snapshots, raise_on_error=False
        )
        if not result.success:
            raise SystemExit("the project's snapshot run failed")
        _record_phases("snapshots", instance, result.run_id)
    last = (dt.date.fromisoformat(args.end) - dt.timedelta(days=1)).isoformat()
    tags = {"dagster/asset_partition_range_start": args.start, "dagster/asset_partition_range_end": last}
    config = {"resources": {"aptrinsic": {"config": {"page_size": args.page_size}}}} if args.page_size else None
    result = definitions.resolve_job_def("aptrinsic_daily_events").execute_in_process(
        run_config=config, instance=instance, tags=tags, raise_on_error=False
    )
    _record_phases("events", instance, result.run_id)
    # Freshness checks judge the calendar (the benchmark's days are not yesterday), not the load.
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed and e.check_name != "freshness_check"]
    if failed or not result.success:
        details = "; ".join(f"{e.asset_key.path[-1]} {e.check_name} {e.metadata.get('detail')}" for e in failed)
        raise SystemExit(f"the project's event run failed: {details}")
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        return {t.name: _count(con, f"aptrinsic_data.{t.name}") for t in _tables(args.events_only)}


PHASE_SPANS: dict[str, tuple[float, float]] = {}  # "<run> <dlt phase>": (start, end), of the project's runs


def _record_phases(run: str, instance: Any, run_id: str) -> None:
    from benchmarks.run_phases import dlt_phases

    end, seconds = dlt_phases(instance.all_logs(run_id))
    for phase, duration in reversed(seconds.items()):
        PHASE_SPANS[f"{run} {phase}"] = (end - duration, end)
        end -= duration


# -- this project's dlt source alone, under plain dlt (no Dagster run around it) -----------------


def run_source(args: argparse.Namespace) -> dict[str, int]:
    from aptrinsic_dagster.sources.aptrinsic import aptrinsic_source
    from aptrinsic_dagster.sources.aptrinsic.pipeline import load, make_pipeline, warehouse_destination

    duckdb_path = Path(args.workdir) / "source.duckdb"
    pipeline = make_pipeline(warehouse_destination(duckdb_path=duckdb_path), str(Path(args.workdir) / "source_dlt"))
    tables = [t.name for t in _tables(args.events_only)]
    source = aptrinsic_source(
        start=args.start, end=args.end, api_key=args.key, base_url=args.base_url, page_size=args.page_size
    )
    load(pipeline, source.with_resources(*tables))
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        return {name: _count(con, f"aptrinsic_data.{name}") for name in tables}


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except duckdb.CatalogException:
        return 0


PATHS = {"raw": run_raw, "seed": run_seed, "project": run_project, "source": run_source}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--events-only", action="store_true")
    parser.add_argument("--page-size", type=int, help="event pages of this size (default: the maximum, 1000)")
    args = parser.parse_args()
    sampler = _RssSampler()
    started = time.perf_counter()
    rows = PATHS[args.path](args)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    phases = {name: sampler.peak(*span) for name, span in sorted(PHASE_SPANS.items(), key=lambda item: item[1])}
    print(json.dumps({"wall": wall, "rows": rows, "peak_rss_mb": peak_mb, "phase_peaks_mb": phases}))


if __name__ == "__main__":
    main()
