"""A dlt source for the Aptrinsic (Gainsight PX) REST API. It knows nothing of Dagster.

Event tables load the half-open window ``[start, end)`` of the event ``date`` (an event at exactly
``end`` belongs to the next window), split into API windows of at most ``window_days`` (the API
allows 190). Snapshot tables load everything the API has and replace the table atomically, so a
record deleted at the source is gone after the next refresh.

    source = aptrinsic_source(start="2026-01-01", end="2026-02-01")
    dlt.pipeline("aptrinsic_pipeline", destination="duckdb", dataset_name="aptrinsic_data").run(source)

Reloads of loaded days merge fastest through ``pipeline.warehouse_destination()``, which deletes key by
key (merges.py); dlt's own ``duckdb`` and ``postgres`` compare every stored event with every staged one.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.paginators import BasePaginator, SinglePagePaginator

from . import replace_days
from .api_counts import API_COUNTS_KEY, API_COUNTS_TABLE, ApiCounts
from .arrow import TypeKeeper, column_name, to_arrow
from .client import (
    DEFAULT_MAX_RUN_SECONDS,
    DEFAULT_RESPONSE_DEADLINE,
    AptrinsicClient,
    IsLastPagePaginator,
    RateLimiter,
    RunBudget,
    ScrollPaginator,
)
from .column_docs import COLUMN_DOCS
from .errors import (
    AptrinsicAuthError,
    AptrinsicConfigError,
    AptrinsicDeadlineError,
    AptrinsicError,
    AptrinsicPagingError,
)
from .seen_keys import SeenKeys
from .settings import (
    DEFAULT_PREFERENCE_WORKERS,
    DEFAULT_RATE_LIMIT,
    EVENT_TABLES,
    MAX_WINDOW_DAYS,
    PREFERENCES,
    REGIONS,
    SNAPSHOT_TABLES,
    TABLES,
    Table,
    page_sizes_by_table,
)
from .subwindows import DEFAULT_MAX_IN_FLIGHT, ScrollPool
from .windows import Window, date_filter, event_window, split_windows

__all__ = [
    "API_COUNTS_TABLE",
    "TABLES",
    "AptrinsicAuthError",
    "AptrinsicConfigError",
    "AptrinsicDeadlineError",
    "AptrinsicError",
    "AptrinsicPagingError",
    "aptrinsic_source",
    "count_events",
    "resolve_base_url",
]


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
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
    max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Sequence[DltResource]:
    """Every Aptrinsic table, one dlt resource each (resource name = table name).

    Args:
        start, end: the event window ``[start, end)`` (UTC; dates, datetimes or ISO strings).
            Default: yesterday, ``[today - 1 day, today)``.
        api_key: injected by dlt from ``[sources.aptrinsic] api_key`` in ``.dlt/secrets.toml`` (or
            ``SOURCES__APTRINSIC__API_KEY``); the project's entry points pass ``APTRINSIC_API_KEY``.
        base_url: the API root including ``/v1``; default: the region's.
        region: ``us``, ``eu`` or ``us2``.
        page_size: an upper bound for every endpoint's page (each endpoint uses its own maximum
            by default); ``page_sizes`` sets one table's page exactly and must respect its maximum.
        rate_limit: requests per second across the whole load, retries included (API cap: ~200).
        window_days: the longest API window events are fetched in (1..190).
        preferences: load ``user_preferences``: one request per user already loaded into ``users``.
        preferences_limit: at most this many users' preferences; ``preference_workers`` in flight.
        response_deadline: seconds one attempt may take, headers and body (dlt's ``request_timeout``
            bounds each socket read only); a miss is retried as a timeout.
        max_run_seconds: the load's budget; after it no request is sent and the load fails.
        max_in_flight: event requests at once, over all tables: each API window is fetched as
            sub-windows scrolled concurrently (subwindows.py), all under ``rate_limit``.
    """
    validate_api_key(api_key)
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise AptrinsicConfigError(f"window_days must be 1..{MAX_WINDOW_DAYS} (the API's limit), got {window_days}")
    sizes = page_sizes_by_table(page_size, page_sizes or {})
    if max_in_flight < 1:
        raise AptrinsicConfigError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if response_deadline <= 0 or max_run_seconds <= 0:
        raise AptrinsicConfigError("response_deadline and max_run_seconds must be positive (seconds)")
    client = AptrinsicClient(
        resolve_base_url(base_url, region),
        str(api_key),
        RateLimiter(rate_limit),
        response_deadline=response_deadline,
        budget=RunBudget(max_run_seconds),
        # One pool serves every walk of the load: the event scrolls, and dlt's snapshot walks or the
        # preference workers beside them. Slots cost nothing until used; a full pool drops connections.
        max_connections=max_in_flight + 32,
    )
    window = event_window(start, end)
    replace_days.whole_days(window)  # before any request
    windows = split_windows(*window, window_days)
    scrolls = ScrollPool(max_in_flight)
    resources = [_event_resource(client, scrolls, t, sizes[t.name], windows) for t in EVENT_TABLES]
    resources += [_snapshot_resource(client, t, sizes[t.name]) for t in SNAPSHOT_TABLES]
    if preferences:
        resources.append(_preferences_resource(client, preferences_limit, preference_workers))
    return resources


BATCH_ROWS = 5000  # five of an endpoint's largest pages: dlt's schema work per item (benchmarks/)

_KEY_SETTINGS = (
    "APTRINSIC_API_KEY (or api_key under [sources.aptrinsic] in .dlt/secrets.toml, or the variable dg.EnvVar names)"
)


def validate_api_key(api_key: Any) -> None:
    """The key must be printable ASCII without surrounding whitespace: a header value that is not
    fails inside requests with an error quoting it. The errors name the setting, never the value."""
    if not api_key:
        raise AptrinsicConfigError(
            "No Aptrinsic API key: set APTRINSIC_API_KEY, or api_key under [sources.aptrinsic] in .dlt/secrets.toml."
        )
    key = str(api_key)
    problem = None
    if key != key.strip():
        problem = "leading or trailing whitespace (a line break from a copied file?)"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        problem = "a control character (a line break or tab)"
    elif not key.isascii():
        problem = "a non-ASCII character"
    if problem:
        raise AptrinsicConfigError(
            f"The Aptrinsic API key in {_KEY_SETTINGS} holds {problem}; keys are printable ASCII. Copy it again "
            "from Gainsight PX (Administration > REST API) and set it without quotes or a trailing newline. "
            "The value is not shown here."
        )


def resolve_base_url(base_url: str | None = None, region: str = "us") -> str:
    if region not in REGIONS:
        raise AptrinsicConfigError(f"Unknown region {region!r}: use one of {', '.join(REGIONS)}.")
    url = (base_url or REGIONS[region]).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AptrinsicConfigError(f"base_url must be an http(s) URL ending in /v1, got {url!r}")
    return url


def _resource(gen: Any, table: Table, write_disposition: Any, parallelized: bool = True, **hints: Any) -> DltResource:
    resource = dlt.resource(gen, name=table.name, parallelized=parallelized)
    # The facts table is a variant of every resource. It must be declared before the resource's own
    # column hints: a variant starts from the resource's hints and would inherit its JSON columns.
    resource.apply_hints(
        table_name=API_COUNTS_TABLE,
        write_disposition="merge",
        primary_key=API_COUNTS_KEY,
        create_table_variant=True,
    )
    # Descriptions from the vendor contract (column_docs.py) land in dlt's schema; a described
    # column the API never sends stays a hint (dlt creates no column without a type).
    columns: dict[str, dict[str, Any]] = {name: {"description": d} for name, d in COLUMN_DOCS[table.name].items()}
    for field in table.json_fields:
        columns.setdefault(column_name(field), {})["data_type"] = "json"
    for name, hint in hints.pop("columns", {}).items():
        columns.setdefault(name, {}).update(hint)
    resource.apply_hints(
        write_disposition=write_disposition,
        primary_key=column_name(table.primary_key),
        columns=columns,
        **hints,
    )
    return resource


def _type_keeper(table: Table) -> TypeKeeper:
    """Seeded with the column types earlier loads gave the table, so drift never fails a load."""
    try:
        return TypeKeeper(dlt.current.source_schema().get_table(table.name).get("columns", {}))
    except Exception:  # no schema yet (first load) or no pipeline context
        return TypeKeeper()


def _where(table: Table, window: Window | None = None) -> str:
    if window is None:
        return f"{table.name} (snapshot)"
    return f"{table.name}, window [{window[0].isoformat()}, {window[1].isoformat()})"


def _pages(
    client: AptrinsicClient,
    table: Table,
    page_size: int,
    window: Window | None = None,
    params: dict[str, Any] | None = None,
    counts: ApiCounts | None = None,
    convert: Callable[[list[dict]], Any] | None = None,
) -> Iterator[Any]:
    """The table's pages, each checked to hold records with a primary key; ``convert``ed if given,
    while the page holds its parse slot (client.py), so its parsed records are gone before the next."""
    where = _where(table, window)
    numbers = itertools.count()

    def checked(records: list) -> Any:
        number = next(numbers)
        missing = sum(1 for r in records if not isinstance(r, dict) or r.get(table.primary_key) in (None, ""))
        if missing:
            raise AptrinsicError(
                f"{where} (GET /v1{table.path}): {missing} record(s) on page {number} have no {table.primary_key} "
                f"(the primary key, column {column_name(table.primary_key)}), so they cannot be merged or "
                "reconciled; nothing from this load was committed. Re-run; if it persists, report the records "
                "to Gainsight with the window above."
            )
        if convert is None or not records:
            return records
        converted = convert(records)
        # dlt's suspended walk still refers to these records: emptied once converted, a walk waiting
        # for its next page (or parked, subwindows.py) holds next to nothing.
        for record in records:
            record.clear()
        return converted

    return client.pages(table.path, table.record_key, _paginator(table, page_size), params, counts, where, checked)


def _event_resource(
    client: AptrinsicClient, scrolls: ScrollPool, table: Table, page_size: int, windows: list[Window]
) -> DltResource:
    def fetch(window: Window, counts: ApiCounts) -> Iterator[pa.Table]:
        params = {"filter": date_filter(window), "sort": "date"}
        return _pages(client, table, page_size, window, params, counts, lambda r: to_arrow(r, table.json_fields))

    def events() -> Iterator[Any]:
        keeper = _type_keeper(table)
        for window in windows:
            yield replace_days.day_markers(replace_days.whole_days(window), column_name(table.primary_key))
        # dlt computes and validates the table's schema for every Arrow item (~7 ms with the described
        # columns): pages are handed over BATCH_ROWS records at a time, not one by one.
        batch: list[pa.Table] = []
        for i, item in scrolls.pages(windows, page_size, fetch):
            if isinstance(item, ApiCounts):
                yield item.row(table.name, *windows[i])
                continue
            batch.append(replace_days.with_day(keeper.conform(item)))
            if sum(page.num_rows for page in batch) >= BATCH_ROWS:
                yield pa.concat_tables(batch, promote_options="default")
                batch = []
        if batch:
            yield pa.concat_tables(batch, promote_options="default")

    # `date` typed up front: a first load whose days hold no events (marker rows only) still creates it,
    # and the checks count by it.
    columns = {**replace_days.COLUMN_HINTS, "date": {"data_type": "timestamp", "timezone": True, "precision": 6}}
    return _resource(events, table, replace_days.WRITE_DISPOSITION, merge_key=replace_days.DAY_COLUMN, columns=columns)


def count_events(client: AptrinsicClient, table: Table, window: Window) -> int:
    """What the API holds now for one event table and window: one request, ``pageSize=1``."""
    return client.total_hits(table.path, {"filter": date_filter(window)}, where=table.name)


def _paginator(table: Table, page_size: int) -> BasePaginator:
    if table.paging == "scroll":
        return ScrollPaginator(page_size)
    if table.paging == "page":
        return IsLastPagePaginator(page_size)
    return SinglePagePaginator()


def _snapshot_resource(client: AptrinsicClient, table: Table, page_size: int) -> DltResource:
    def snapshot() -> Iterator[Any]:
        keeper, counts, seen = _type_keeper(table), ApiCounts(), SeenKeys()
        for records in _pages(client, table, page_size, counts=counts):
            # The API has been seen to repeat records across scroll pages: each loads once.
            fresh = list(itertools.compress(records, seen.fresh([r[table.primary_key] for r in records])))
            counts.duplicates += len(records) - len(fresh)
            if records and not fresh:
                raise AptrinsicPagingError(
                    f"{_where(table)} (GET /v1{table.path}): page {counts.pages} repeats {len(records)} records "
                    "already fetched and brings none new: the API does not advance. The table was left as it was."
                )
            if fresh:
                yield keeper.conform(to_arrow(fresh, table.json_fields))
        _verify_snapshot(table, counts)
        yield counts.row(table.name)

    # Atomic on every destination: pipeline.py sets the insert-from-staging replace strategy.
    return _resource(snapshot, table, "replace")


def _verify_snapshot(table: Table, counts: ApiCounts) -> None:
    """Exact or untouched: raised before the resource ends, so dlt's extract fails and the staging
    swap that would replace the table never runs; the previous snapshot stays."""
    unique = counts.records - counts.duplicates
    if counts.total_hits is not None and unique != counts.total_hits:
        raise AptrinsicPagingError(
            f"{_where(table)} (GET /v1{table.path}): fetched {unique} distinct records ({counts.records} with "
            f"{counts.duplicates} repeats) where field totalHits promised {counts.total_hits}. The snapshot "
            "would be wrong, so the table was left as it was. Re-run; if it persists, the API's count and "
            "its pages disagree: compare them for the endpoint with curl."
        )


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
                answers = list(pool.map(lambda i: client.get(f"/user/preferences/{i}", table.name), chunk))
                records = [{"identifyId": i, **a} for i, a in zip(chunk, answers, strict=True) if a is not None]
                counts.pages += len(chunk)
                counts.records += len(records)
                if records:
                    yield keeper.conform(to_arrow(records, ()))
        counts.total_hits = len(ids)
        yield counts.row(table.name)

    # Not parallelized: it reads the destination first, then fans out over its own threads.
    return _resource(user_preferences, table, "replace", parallelized=False)
