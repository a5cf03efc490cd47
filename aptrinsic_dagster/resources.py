"""Configurable resources: the Aptrinsic API (key, region, limits) and the warehouse dlt loads into."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from pydantic import Field

from .sources.aptrinsic import AptrinsicConfigError, aptrinsic_source
from .sources.aptrinsic.pipeline import DEFAULT_DUCKDB_PATH, DUCKDB_PATH_ENV, make_pipeline, warehouse_destination
from .sources.aptrinsic.settings import BASE_URL_ENV, DEFAULT_RATE_LIMIT, MAX_WINDOW_DAYS, REGIONS

DESTINATION_ENV = "APTRINSIC_DESTINATION"
PIPELINES_DIR_ENV = "APTRINSIC_PIPELINES_DIR"


class AptrinsicResource(dg.ConfigurableResource):
    """The Aptrinsic API. The key is read at run time from ``APTRINSIC_API_KEY`` or from
    ``[sources.aptrinsic] api_key`` in ``.dlt/secrets.toml``; it is never part of run config."""

    region: str = Field(default="us", description=f"Data centre: {', '.join(REGIONS)}.")
    base_url: str | None = Field(
        default=None, description=f"API root including /v1; default: {BASE_URL_ENV}, else the region's host."
    )
    page_size: int | None = Field(
        default=None, description="Upper bound for every page; default: each endpoint's maximum."
    )
    page_sizes: dict[str, int] = Field(
        default_factory=dict, description="Exact page size per table; must respect the endpoint's maximum."
    )
    rate_limit: float = Field(
        default=DEFAULT_RATE_LIMIT, description="Requests per second, retries included (the API allows ~200)."
    )
    window_days: int = Field(default=MAX_WINDOW_DAYS, description="Longest API window for events (1..190).")
    preferences_limit: int | None = Field(
        default=None, description="Load at most this many users' preferences (one request per user)."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail at run start, before any asset runs, with errors that name the setting to fix.
        try:  # building the source validates key, region, URL, window and page sizes, sending nothing
            self.source(dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 2), [])
        except AptrinsicConfigError as exc:
            raise dg.Failure(f"AptrinsicResource is misconfigured: {exc}", allow_retries=False) from exc

    def source(self, start: dt.datetime | None, end: dt.datetime | None, tables: Sequence[str]) -> DltSource:
        """The dlt source for ``tables`` and the event window ``[start, end)``."""
        source = aptrinsic_source(
            start=start,
            end=end,
            base_url=self.base_url,
            region=self.region,
            page_size=self.page_size,
            page_sizes=self.page_sizes,
            rate_limit=self.rate_limit,
            window_days=self.window_days,
            preferences="user_preferences" in tables,
            preferences_limit=self.preferences_limit,
        )
        return source.with_resources(*tables) if tables else source


class WarehouseResource(dg.ConfigurableResource):
    """Where dlt loads: DuckDB by default, any dlt destination by name (credentials from dlt config).

    Unset fields are read from the environment when a run starts, not when definitions load.
    """

    destination: str | None = Field(
        default=None, description=f"dlt destination name; default {DESTINATION_ENV}, else duckdb."
    )
    duckdb_path: str | None = Field(
        default=None, description=f"The DuckDB file; default {DUCKDB_PATH_ENV}, else aptrinsic.duckdb."
    )
    pipelines_dir: str | None = Field(
        default=None,
        description=f"dlt working dir; default {PIPELINES_DIR_ENV}, else .dlt/pipelines. Each run uses a folder of "
        "its own below it.",
    )

    def _destination(self) -> Any:
        return warehouse_destination(self.destination or os.environ.get(DESTINATION_ENV, "duckdb"), self.duckdb_path)

    def resolved_duckdb_path(self) -> str:
        """The DuckDB file the loads write (and dbt reads), relative to the working directory."""
        return self.duckdb_path or os.environ.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH

    @contextmanager
    def pipeline(self, run_id: str, step: str) -> Iterator[dlt.Pipeline]:
        """A pipeline working in a folder of its own: runs never share dlt's working folder.

        dlt restores state from the destination, so nothing is lost by starting empty. The
        folder is removed after success and kept after a failure, for inspection.
        """
        base = self.pipelines_dir or os.environ.get(PIPELINES_DIR_ENV) or str(Path(".dlt") / "pipelines")
        working = Path(base) / f"{run_id}-{step}"
        yield make_pipeline(self._destination(), pipelines_dir=str(working))
        shutil.rmtree(working, ignore_errors=True)

    @contextmanager
    def sql(self, run_id: str) -> Iterator[Any]:
        """A SQL client on the dataset, for checks; works for DuckDB and other SQL destinations."""
        with self.pipeline(run_id, "sql") as pipeline, pipeline.sql_client() as client:
            yield client
