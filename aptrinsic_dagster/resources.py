"""Configurable resources: the Aptrinsic API (key, region, limits) and the warehouse dlt loads into."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from pydantic import Field

from . import settings
from .recover import POOL
from .sources.aptrinsic import (
    TABLES,
    AptrinsicConfigError,
    aptrinsic_source,
    count_events,
    resolve_base_url,
    validate_api_key,
)
from .sources.aptrinsic.client import DEFAULT_MAX_RUN_SECONDS, DEFAULT_RESPONSE_DEADLINE, AptrinsicClient, RateLimiter
from .sources.aptrinsic.pipeline import (
    DATASET_NAME,
    STAGING_PREFIX,
    make_pipeline,
    staging_layout,
    tune_process,
    warehouse_destination,
)
from .sources.aptrinsic.settings import DEFAULT_RATE_LIMIT, MAX_WINDOW_DAYS, REGIONS
from .sources.aptrinsic.subwindows import DEFAULT_MAX_IN_FLIGHT

DayKey = tuple[str, dt.date]  # (event table, UTC day)


class AptrinsicResource(dg.ConfigurableResource):
    """The Aptrinsic API. The key is read when a run starts, from ``api_key`` if set (use
    ``dg.EnvVar``, never a literal), else ``APTRINSIC_API_KEY``, else ``[sources.aptrinsic] api_key``
    in ``.dlt/secrets.toml``; it is never part of run config."""

    api_key: str | None = Field(
        default=None,
        description=f"Set only as dg.EnvVar('NAME'); default: {settings.API_KEY}, else .dlt/secrets.toml.",
    )
    region: str = Field(default="us", description=f"Data centre: {', '.join(REGIONS)}.")
    base_url: str | None = Field(
        default=None, description=f"API root including /v1; default: {settings.BASE_URL}, else the region's host."
    )
    page_size: int | None = Field(
        default=None, description="Upper bound for every page; default: each endpoint's maximum."
    )
    page_sizes: dict[str, int] = Field(
        default_factory=dict, description="Exact page size per table; must respect the endpoint's maximum."
    )
    rate_limit: float = Field(
        default=DEFAULT_RATE_LIMIT,
        description="Requests per second for all runs together, retries included (the API allows ~200 per "
        f"subscription). Each step in pool {POOL} gets rate_limit / the pool's limit.",
    )
    window_days: int = Field(default=MAX_WINDOW_DAYS, description="Longest API window for events (1..190).")
    preferences_limit: int | None = Field(
        default=None, description="Load at most this many users' preferences (one request per user)."
    )
    response_deadline: float = Field(
        default=DEFAULT_RESPONSE_DEADLINE,
        description="Seconds one attempt may take, headers and body together; a miss is retried as a timeout.",
    )
    max_run_seconds: float = Field(
        default=DEFAULT_MAX_RUN_SECONDS,
        description="Seconds one load may spend on the API; after it no request is sent and the step fails.",
    )

    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        description="Event requests at once in one step: each API window is fetched as sub-windows scrolled "
        "concurrently, all under the step's share of rate_limit.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        tune_process()  # the step's process runs the load
        # Fail at run start, before any asset runs, with errors that name the setting to fix.
        try:  # building the source validates key, region, URL, window and page sizes, sending nothing
            self.source(dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 2), [])
        except AptrinsicConfigError as exc:
            raise dg.Failure(f"AptrinsicResource is misconfigured: {exc}", allow_retries=False) from exc

    def share(self, instance: dg.DagsterInstance) -> float:
        """One step's share of the API budget: ``rate_limit`` / the limit of pool ``aptrinsic_warehouse``.

        Every step that calls the API (loads, checks that re-count) is in that pool, and Dagster runs at
        most its limit of them at once, across all runs and machines: their shares together stay
        within ``rate_limit``, with nothing shared between processes but Dagster's own slots. The
        limit is the pool's own (``dagster instance concurrency set``), else the instance's
        ``concurrency.pools.default_limit``; with neither, steps are not limited and one step gets all.
        """
        info = instance.event_log_storage.get_concurrency_info(POOL)
        limit = (
            info.slot_count if info.slot_count and info.slot_count > 0 else instance.global_op_concurrency_default_limit
        )
        return self.rate_limit / max(1, limit or 1)

    def source(
        self, start: dt.datetime | None, end: dt.datetime | None, tables: Sequence[str], rate_limit: float | None = None
    ) -> DltSource:
        """The dlt source for ``tables`` and the event window ``[start, end)``, at ``rate_limit``
        requests/s (default: all of ``rate_limit``; a step passes its ``share``)."""
        source = aptrinsic_source(
            start=start,
            end=end,
            **settings.api_arguments(self.api_key, self.base_url),
            region=self.region,
            page_size=self.page_size,
            page_sizes=self.page_sizes,
            rate_limit=rate_limit or self.rate_limit,
            window_days=self.window_days,
            preferences="user_preferences" in tables,
            preferences_limit=self.preferences_limit,
            response_deadline=self.response_deadline,
            max_run_seconds=self.max_run_seconds,
            max_in_flight=self.max_in_flight,
        )
        return source.with_resources(*tables) if tables else source

    def client(self, rate_limit: float) -> AptrinsicClient:
        """A client of its own at ``rate_limit`` requests/s, for what runs outside a load."""
        given = settings.api_arguments(self.api_key, self.base_url)
        key = given.get("api_key") or dlt.secrets.get("sources.aptrinsic.api_key")
        if not key:
            raise dg.Failure(
                f"No Aptrinsic API key: set {settings.API_KEY}, or api_key under [sources.aptrinsic] in "
                ".dlt/secrets.toml.",
                allow_retries=False,
            )
        try:
            validate_api_key(key)
            base_url = resolve_base_url(given.get("base_url"), self.region)
        except AptrinsicConfigError as exc:
            raise dg.Failure(f"AptrinsicResource is misconfigured: {exc}", allow_retries=False) from exc
        return AptrinsicClient(base_url, str(key), RateLimiter(rate_limit), response_deadline=self.response_deadline)

    def count_days(self, keys: Sequence[DayKey], rate_limit: float) -> dict[DayKey, int]:
        """What the API holds now per (event table, UTC day): one request each, ``rate_limit`` per second."""
        client = self.client(rate_limit)

        def count(key: DayKey) -> int:
            table, day = key
            start = dt.datetime.combine(day, dt.time(), dt.UTC)
            return count_events(client, TABLES[table], (start, start + dt.timedelta(days=1)))

        with ThreadPoolExecutor(4, thread_name_prefix="aptrinsic-count") as pool:
            return dict(zip(keys, pool.map(count, keys), strict=True))


class WarehouseResource(dg.ConfigurableResource):
    """Where dlt loads: DuckDB by default, any dlt destination by name (credentials from dlt config).

    Unset fields are read from the environment when a run starts, not when definitions load.
    """

    destination: str | None = Field(
        default=None,
        description=f"dlt destination name; default {settings.DESTINATION}, else {settings.DEFAULT_DESTINATION}.",
    )
    duckdb_path: str | None = Field(
        default=None, description=f"The DuckDB file; default {settings.DUCKDB_PATH}, else aptrinsic.duckdb."
    )
    pipelines_dir: str | None = Field(
        default=None,
        description=f"dlt working dir; default {settings.PIPELINES_DIR}, else {settings.DEFAULT_PIPELINES_DIR}. "
        "Each run uses a folder of its own below it.",
    )

    def _destination(self, staging_suffix: str | None = None) -> Any:
        return warehouse_destination(
            self.destination or settings.destination(), self.resolved_duckdb_path(), staging_suffix
        )

    def resolved_duckdb_path(self) -> str:
        """The DuckDB file the loads write (and dbt reads), relative to the working directory."""
        return self.duckdb_path or settings.duckdb_path()

    def destination_name(self) -> str:
        return self.destination or settings.destination()

    def is_server(self) -> bool:
        """A warehouse that takes concurrent writers (anything but the DuckDB file)."""
        return self.destination_name() != "duckdb"

    def credentials(self) -> Any:
        """The destination's credentials as dlt resolves them (env, ``.dlt/secrets.toml``), for readers
        beside dlt (the dbt marts). Fails naming dlt's variable when they are incomplete."""
        destination = self._destination()
        credentials = destination.configuration(destination.spec(), accept_partial=True).credentials
        if credentials is None or not credentials.is_resolved():
            variable = f"DESTINATION__{self.destination_name().upper()}__CREDENTIALS"
            raise dg.Failure(
                f"No complete credentials for the {self.destination_name()} warehouse: set {variable} "
                f"(a URL with user and password) or [destination.{self.destination_name()}.credentials] "
                "in .dlt/secrets.toml.",
                allow_retries=False,
            )
        return credentials

    @contextmanager
    def pipeline(self, run_id: str, step: str) -> Iterator[dlt.Pipeline]:
        """A pipeline of the run's own: its own working folder and its own staging dataset
        (``<dataset>_staging_<run id>``), so runs at once share neither (pipeline.STAGING_PREFIX).

        dlt restores state from the destination, so nothing is lost by starting empty. The staging
        dataset is dropped when the step ends, however it ends; the folder is removed after success
        and kept after a failure, for inspection. A killed run's staging dataset is dropped by the
        next load (``drop_orphan_staging``).
        """
        working = Path(self.pipelines_dir or settings.pipelines_dir()) / f"{run_id}-{step}"
        pipeline = make_pipeline(self._destination(run_id), pipelines_dir=str(working))
        try:
            yield pipeline
        finally:
            _drop_staging(pipeline, [staging_layout(run_id) % DATASET_NAME])
        shutil.rmtree(working, ignore_errors=True)

    def drop_orphan_staging(self, instance: dg.DagsterInstance, run_id: str) -> list[str]:
        """Drops the staging datasets of runs that are no longer running (killed mid-load), never
        one of a run in progress; returns their names."""
        working = Path(self.pipelines_dir or settings.pipelines_dir()) / f"{run_id}-staging"
        pipeline = make_pipeline(self._destination(), pipelines_dir=str(working))
        with pipeline.sql_client() as sql:
            names = [
                name
                for (name,) in sql.execute_sql("SELECT schema_name FROM information_schema.schemata") or []
                if name.startswith(STAGING_PREFIX)
            ]
        ended = []
        for name in names:
            suffix = name[len(STAGING_PREFIX) :]
            try:
                owner = instance.get_run_by_id(str(uuid.UUID(suffix)))
            except ValueError:  # not a run's: leave it alone
                continue
            if owner is None or owner.is_finished:
                ended.append(name)
        _drop_staging(pipeline, ended)
        shutil.rmtree(working, ignore_errors=True)
        return ended

    @contextmanager
    def sql(self, run_id: str) -> Iterator[Any]:
        """A SQL client on the dataset, for checks; works for DuckDB and other SQL destinations."""
        with self.pipeline(run_id, "sql") as pipeline, pipeline.sql_client() as client:
            yield client


def _drop_staging(pipeline: dlt.Pipeline, names: Sequence[str]) -> None:
    """Drops the datasets ``names`` if they exist. Best effort: a warehouse that cannot be reached now
    fails the load on its own, and the next load drops what is left (``drop_orphan_staging``)."""
    if not names:
        return
    try:
        with pipeline.sql_client() as sql:
            for name in names:
                sql.execute_sql(f"DROP SCHEMA IF EXISTS {sql.escape_column_name(name)} CASCADE")
    except Exception as exc:
        logging.getLogger(__name__).warning("Could not drop staging dataset(s) %s: %s", ", ".join(names), exc)
