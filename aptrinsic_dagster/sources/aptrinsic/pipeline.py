"""The dlt pipeline the project loads with: one name end to end, DuckDB by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.source import DltSource

from .settings import PREFERENCES

PIPELINE_NAME = "aptrinsic_pipeline"
DATASET_NAME = "aptrinsic_data"
DUCKDB_PATH_ENV = "APTRINSIC_DUCKDB_PATH"
DEFAULT_DUCKDB_PATH = "aptrinsic.duckdb"
DUCKDB_MEMORY_LIMIT = "80MB"


def duckdb_destination(path: str | Path | None = None) -> Destination:
    """DuckDB at ``path`` (default ``APTRINSIC_DUCKDB_PATH`` or ``aptrinsic.duckdb``).

    Replaced tables are loaded into a staging schema and swapped in one transaction
    (``insert-from-staging``), so a reader never sees a half-written snapshot.
    """
    path = path or os.environ.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH
    # DuckDB's buffer manager takes up to 80% of RAM by default: merging a million events then
    # grew the process to 1.4 GB. Bounded, it spills to disk instead, at the same speed (benchmarks/;
    # 64 MB ran out of memory with twenty load workers).
    credentials = DuckDbCredentials(str(path), global_config={"memory_limit": DUCKDB_MEMORY_LIMIT})
    return dlt.destinations.duckdb(credentials, replace_strategy="insert-from-staging")


def make_pipeline(
    destination: Destination | str | None = None,
    pipelines_dir: str | None = None,
    dataset_name: str = DATASET_NAME,
    **kwargs: Any,
) -> dlt.Pipeline:
    return dlt.pipeline(
        PIPELINE_NAME,
        destination=destination or duckdb_destination(),
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,
        **kwargs,
    )


def load(pipeline: dlt.Pipeline, source: DltSource) -> list[LoadInfo]:
    """Load every selected table; ``user_preferences`` after ``users``, since it reads the loaded users."""
    selected = list(source.selected_resources)
    first = [name for name in selected if name != PREFERENCES.name]
    infos = []
    if first:
        infos.append(pipeline.run(source.with_resources(*first)))
    if PREFERENCES.name in selected:
        infos.append(pipeline.run(source.with_resources(PREFERENCES.name)))
    for info in infos:
        info.raise_on_failed_jobs()
    return infos
