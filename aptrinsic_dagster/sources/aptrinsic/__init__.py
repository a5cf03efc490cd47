"""A dlt source for the Aptrinsic (Gainsight PX) REST API. It knows nothing of Dagster.

Event tables load the half-open window ``[start, end)`` of the event ``date`` (an event at exactly
``end`` belongs to the next window), split into API windows of at most ``window_days`` (the API
allows 190). Snapshot tables load everything the API has and replace the table atomically, so a
record deleted at the source is gone after the next refresh.

    source = aptrinsic_source(start="2026-01-01", end="2026-02-01")
    dlt.pipeline("aptrinsic_pipeline", destination="duckdb", dataset_name="aptrinsic_data").run(source)
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.paginators import BasePaginator, SinglePagePaginator

from .arrow import TypeKeeper, column_name, to_arrow
from .client import (
    ApiCounts,
    AptrinsicClient,
    AptrinsicError,
    PageNumberPaginator,
    RateLimiter,
    ScrollPaginator,
)
from .settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    COUNTS_TABLE,
    DEFAULT_PREFERENCE_WORKERS,
    DEFAULT_RATE_LIMIT,
    EVENT_TABLES,
    MAX_WINDOW_DAYS,
    PREFERENCES,
    REGIONS,
    SNAPSHOT_TABLES,
    TABLES,
    Table,
)

__all__ = [
    "COUNTS_TABLE",
    "TABLES",
    "AptrinsicConfigError",
    "AptrinsicError",
    "aptrinsic_source",
    "resolve_base_url",
    "split_windows",
    "window_key",
]

SNAPSHOT_WINDOW = "snapshot"


class AptrinsicConfigError(ValueError):
    """Settings that cannot work; raised before any request is sent."""


class _JsonHintNotice(logging.Filter):
    """JSON columns travel as Arrow text and the JSON hint wins, as intended: dlt warns on every page."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "dlt schema hints were kept" not in record.getMessage()


_JSON_HINT_NOTICE = _JsonHintNotice()


def _fewer_malloc_arenas() -> None:
    """glibc gives each busy thread a malloc arena of its own, and pages freed in one linger.

    With a dozen extract threads that alone kept ~90 MB of a 1M-event load's peak RSS
    (benchmarks/: 590 -> 496 MB, same speed). Applies to arenas created from now on; a no-op
    where the C library is not glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX = 2


@dlt.source(name="aptrinsic", section="aptrinsic")
def aptrinsic_source(
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    api_key: TSecretStrValue | None = dlt.secrets.value,
    base_url: str | None = None,
    region: str = "us",
    page_size: int | None = None,
    page_sizes: dict[str, int] | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    window_days: int = MAX_WINDOW_DAYS,
    preferences: bool = True,
    preferences_limit: int | None = None,
    preference_workers: int = DEFAULT_PREFERENCE_WORKERS,
) -> Sequence[DltResource]:
    """Every Aptrinsic table, one dlt resource each (resource name = table name).

    Args:
        start, end: the event window ``[start, end)`` (UTC; dates, datetimes or ISO strings).
            Default: yesterday, ``[today - 1 day, today)``.
        api_key: ``[sources.aptrinsic] api_key`` in ``.dlt/secrets.toml``, or ``APTRINSIC_API_KEY``.
        base_url: the API root including ``/v1``; default ``APTRINSIC_BASE_URL`` or the region's.
        region: ``us``, ``eu`` or ``us2``.
        page_size: an upper bound for every endpoint's page (each endpoint uses its own maximum
            by default); ``page_sizes`` sets one table's page exactly and must respect its maximum.
        rate_limit: requests per second across the whole load, retries included (API cap: ~200).
        window_days: the longest API window events are fetched in (1..190).
        preferences: load ``user_preferences``: one request per user already loaded into ``users``.
        preferences_limit: at most this many users' preferences; ``preference_workers`` in flight.
    """
    logging.getLogger("dlt").addFilter(_JSON_HINT_NOTICE)  # a set: adding twice keeps one
    _fewer_malloc_arenas()
    api_key = api_key or os.environ.get(API_KEY_ENV)
    if not api_key:
        raise AptrinsicConfigError(
            f"No Aptrinsic API key: set {API_KEY_ENV}, or api_key under [sources.aptrinsic] in .dlt/secrets.toml."
        )
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise AptrinsicConfigError(f"window_days must be 1..{MAX_WINDOW_DAYS} (the API's limit), got {window_days}")
    sizes = _page_sizes(page_size, page_sizes or {})
    start_at, end_at = _window(start, end)
    client = AptrinsicClient(resolve_base_url(base_url, region), api_key, RateLimiter(rate_limit))
    windows = split_windows(start_at, end_at, window_days)
    resources = [_event_resource(client, t, sizes[t.name], windows) for t in EVENT_TABLES]
    resources += [_snapshot_resource(client, t, sizes[t.name]) for t in SNAPSHOT_TABLES]
    if preferences:
        resources.append(_preferences_resource(client, preferences_limit, preference_workers))
    return resources


def resolve_base_url(base_url: str | None = None, region: str = "us") -> str:
    if region not in REGIONS:
        raise AptrinsicConfigError(f"Unknown region {region!r}: use one of {', '.join(REGIONS)}.")
    url = (base_url or os.environ.get(BASE_URL_ENV) or REGIONS[region]).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AptrinsicConfigError(f"base_url must be an http(s) URL ending in /v1, got {url!r}")
    return url


def _page_sizes(page_size: int | None, page_sizes: dict[str, int]) -> dict[str, int]:
    unknown = set(page_sizes) - set(TABLES)
    if unknown:
        raise AptrinsicConfigError(f"page_sizes names unknown tables: {', '.join(sorted(unknown))}")
    if page_size is not None and page_size < 1:
        raise AptrinsicConfigError(f"page_size must be at least 1, got {page_size}")
    sizes = {}
    for t in TABLES.values():
        size = page_sizes.get(t.name)
        if size is not None and t.max_page_size and not 1 <= size <= t.max_page_size:
            raise AptrinsicConfigError(
                f"page_sizes[{t.name!r}] = {size}, but the API allows 1..{t.max_page_size} on {t.path} "
                "(it answers 400 above the maximum)."
            )
        sizes[t.name] = size or min(page_size or t.max_page_size, t.max_page_size)
    return sizes


def _instant(value: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _window(start: Any, end: Any) -> tuple[dt.datetime, dt.datetime]:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_at = _instant(end) if end is not None else today
    start_at = _instant(start) if start is not None else end_at - dt.timedelta(days=1)
    if start_at >= end_at:
        raise AptrinsicConfigError(f"start ({start_at.isoformat()}) must be before end ({end_at.isoformat()})")
    return start_at, end_at


def split_windows(
    start: dt.datetime, end: dt.datetime, days: int = MAX_WINDOW_DAYS
) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[start, end)`` as consecutive half-open windows of at most ``days``: no gap, no overlap."""
    windows, step = [], dt.timedelta(days=days)
    while start < end:
        windows.append((start, min(start + step, end)))
        start += step
    return windows


def window_key(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return SNAPSHOT_WINDOW
    return f"{start.astimezone(dt.UTC).isoformat()}/{end.astimezone(dt.UTC).isoformat()}"


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


_COUNTS_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("window_key", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("total_hits", pa.int64()),
        ("records_fetched", pa.int64()),
        ("pages_fetched", pa.int64()),
        ("duplicates_skipped", pa.int64()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _resource(gen: Any, table: Table, write_disposition: str, parallelized: bool = True) -> DltResource:
    resource = dlt.resource(gen, name=table.name, parallelized=parallelized)
    # The facts table is a variant of every resource. It must be declared before the resource's own
    # column hints: a variant starts from the resource's hints and would inherit its JSON columns.
    resource.apply_hints(
        table_name=COUNTS_TABLE,
        write_disposition="merge",
        primary_key=["table_name", "window_key"],
        create_table_variant=True,
    )
    resource.apply_hints(
        write_disposition=write_disposition,
        primary_key=column_name(table.primary_key),
        columns={column_name(f): {"data_type": "json"} for f in table.json_fields},
    )
    return resource


def _counts_row(
    table: Table,
    counts: ApiCounts,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    duplicates: int = 0,
) -> Any:
    """A row of the facts table: what the API reported for one table and window."""
    row = {
        "table_name": table.name,
        "window_key": window_key(start, end),
        "window_start": start,
        "window_end": end,
        "total_hits": counts.total_hits,
        "records_fetched": counts.records,
        "pages_fetched": counts.pages,
        "duplicates_skipped": duplicates,
        "fetched_at": dt.datetime.now(dt.UTC),
    }
    return dlt.mark.with_table_name(pa.Table.from_pylist([row], schema=_COUNTS_SCHEMA), COUNTS_TABLE)


def _type_keeper(table: Table) -> TypeKeeper:
    """Seeded with the column types earlier loads gave the table, so drift never fails a load."""
    try:
        return TypeKeeper(dlt.current.source_schema().get_table(table.name).get("columns", {}))
    except Exception:  # no schema yet (first load) or no pipeline context
        return TypeKeeper()


def _event_resource(
    client: AptrinsicClient, table: Table, page_size: int, windows: list[tuple[dt.datetime, dt.datetime]]
) -> DltResource:
    def events() -> Iterator[Any]:
        keeper = _type_keeper(table)
        for start, end in windows:
            counts = ApiCounts()
            params = {"filter": f"date>={_ms(start)};date<{_ms(end)}", "sort": "date"}
            for records in client.pages(table.path, table.record_key, _paginator(table, page_size), params, counts):
                if records:
                    yield keeper.conform(to_arrow(records, table.json_fields))
            yield _counts_row(table, counts, start, end)

    return _resource(events, table, "merge")


def _paginator(table: Table, page_size: int) -> BasePaginator:
    if table.paging == "scroll":
        return ScrollPaginator(page_size)
    if table.paging == "page":
        return PageNumberPaginator(page_size)
    return SinglePagePaginator()


def _snapshot_resource(client: AptrinsicClient, table: Table, page_size: int) -> DltResource:
    def snapshot() -> Iterator[Any]:
        keeper, counts, seen, duplicates = _type_keeper(table), ApiCounts(), set(), 0
        for records in client.pages(table.path, table.record_key, _paginator(table, page_size), counts=counts):
            fresh = []
            for record in records:
                key = record.get(table.primary_key)
                if key in seen:
                    duplicates += 1  # the API has been seen to repeat records across scroll pages
                    continue
                seen.add(key)
                fresh.append(record)
            if fresh:
                yield keeper.conform(to_arrow(fresh, table.json_fields))
        yield _counts_row(table, counts, duplicates=duplicates)

    # Atomic on every destination: pipeline.py sets the insert-from-staging replace strategy.
    return _resource(snapshot, table, "replace")


def _loaded_user_ids(limit: int | None) -> list[str]:
    pipeline = dlt.current.pipeline()
    try:
        with pipeline.sql_client() as sql:
            table = sql.make_qualified_table_name("users")
            limit_clause = "" if limit is None else f" LIMIT {int(limit)}"
            rows = sql.execute_sql(f"SELECT identify_id FROM {table} ORDER BY identify_id{limit_clause}")
    except Exception as exc:
        raise AptrinsicError(
            "user_preferences reads the identifyIds of the users already loaded, and the users table "
            f"could not be read ({type(exc).__name__}: {exc}). Load the users table first."
        ) from exc
    return [row[0] for row in rows or []]


def _preferences_resource(client: AptrinsicClient, limit: int | None, workers: int) -> DltResource:
    table = PREFERENCES

    def user_preferences() -> Iterator[Any]:
        ids, keeper, counts = _loaded_user_ids(limit), _type_keeper(table), ApiCounts()
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="aptrinsic-prefs") as pool:
            for offset in range(0, len(ids), 1000):
                chunk = ids[offset : offset + 1000]
                answers = list(pool.map(lambda i: client.get(f"/user/preferences/{i}"), chunk))
                records = [{"identifyId": i, **a} for i, a in zip(chunk, answers, strict=True) if a is not None]
                counts.pages += len(chunk)
                counts.records += len(records)
                if records:
                    yield keeper.conform(to_arrow(records, ()))
        counts.total_hits = len(ids)
        yield _counts_row(table, counts)

    # Not parallelized: it reads the destination first, then fans out over its own threads.
    return _resource(user_preferences, table, "replace", parallelized=False)
