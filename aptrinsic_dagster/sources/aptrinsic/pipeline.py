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


# Replaced (snapshot) tables load into a staging dataset and are swapped in one transaction, on
# every destination, so a reader never sees a half-written snapshot.
REPLACE_STRATEGY = "insert-from-staging"


def warehouse_destination(name: str = "duckdb", duckdb_path: str | Path | None = None) -> Destination:
    """The destination ``name`` (credentials from dlt config); for DuckDB, the file at ``duckdb_path``
    (default ``APTRINSIC_DUCKDB_PATH`` or ``aptrinsic.duckdb``)."""
    if name != "duckdb":
        return Destination.from_reference(name, replace_strategy=REPLACE_STRATEGY)
    path = duckdb_path or os.environ.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH
    # DuckDB's buffer manager takes up to 80% of RAM by default: merging a million events then
    # grew the process to 1.4 GB. Bounded, it spills to disk instead, at the same speed (benchmarks/;
    # 64 MB ran out of memory with twenty load workers).
    credentials = DuckDbCredentials(str(path), global_config={"memory_limit": DUCKDB_MEMORY_LIMIT})
    return dlt.destinations.duckdb(credentials, replace_strategy=REPLACE_STRATEGY)


def make_pipeline(
    destination: Destination | str | None = None,
    pipelines_dir: str | None = None,
    dataset_name: str = DATASET_NAME,
    **kwargs: Any,
) -> dlt.Pipeline:
    return dlt.pipeline(
        PIPELINE_NAME,
        destination=destination or warehouse_destination(),
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
