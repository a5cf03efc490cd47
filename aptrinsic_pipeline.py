"""Load every Aptrinsic table for one event window with plain dlt (no Dagster), into aptrinsic.duckdb.

    APTRINSIC_API_KEY=... python aptrinsic_pipeline.py --start 2026-01-01 --end 2026-02-01

Afterwards: `dlt pipeline aptrinsic_pipeline info`, or in Python
`import aptrinsic_pipeline; aptrinsic_pipeline.pipeline().dataset().users.df()`.
"""

from __future__ import annotations

import argparse
from typing import Any

import dlt

from aptrinsic_dagster import settings
from aptrinsic_dagster.sources.aptrinsic import aptrinsic_source
from aptrinsic_dagster.sources.aptrinsic.pipeline import load, make_pipeline, tune_process, warehouse_destination


def _progress(name: str) -> Any:
    """dlt's progress collector by name; "log" without memory stats (they need psutil, not installed)."""
    if name == "none":
        return None
    return dlt.progress.log(log_period=2.0, dump_system_stats=False) if name == "log" else name


def pipeline(progress: Any = None) -> dlt.Pipeline:
    """The project's pipeline on the warehouse the settings name (APTRINSIC_DUCKDB_PATH, ...).

    dlt's own ``dlt.pipeline("aptrinsic_pipeline")`` cannot find the DuckDB file: dlt reads a
    destination's credentials from secrets only, and the project keeps none in files.
    """
    return make_pipeline(warehouse_destination(settings.destination(), settings.duckdb_path()), progress=progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", help="first instant of the event window (UTC date or ISO); default: yesterday")
    parser.add_argument("--end", help="end of the window, exclusive; default: today 00:00 UTC")
    parser.add_argument("--no-preferences", action="store_true", help="skip user_preferences (one request per user)")
    parser.add_argument(
        "--progress",
        default="log",
        help="dlt's progress collector: log (a status line a second, the default), tqdm (bars), or none",
    )
    args = parser.parse_args()
    tune_process()
    source = aptrinsic_source(
        start=args.start, end=args.end, preferences=not args.no_preferences, **settings.api_arguments()
    )
    for info in load(pipeline(_progress(args.progress)), source):
        print(info)


if __name__ == "__main__":
    main()
