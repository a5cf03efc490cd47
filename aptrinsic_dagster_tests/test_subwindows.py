"""Event windows fetched as concurrent sub-window scrolls, against the sandbox over real HTTP."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from aptrinsic_dagster.sources.aptrinsic import API_COUNTS_TABLE, AptrinsicDeadlineError, aptrinsic_source
from aptrinsic_dagster.sources.aptrinsic.api_counts import ApiCounts
from aptrinsic_dagster.sources.aptrinsic.client import cancel_requests
from aptrinsic_dagster.sources.aptrinsic.pipeline import load
from aptrinsic_dagster.sources.aptrinsic.subwindows import ScrollPool
from aptrinsic_sandbox import Faults, Sandbox

from .helpers import API_KEY, DAY_MS, END_DATE, SandboxFactory, cause, ms, query

SESSION = "/v1/events/session"


def source(sandbox: Sandbox, start: dt.date, **kwargs: object):
    return aptrinsic_source(
        start=start, end=END_DATE, api_key=API_KEY, base_url=sandbox.base_url, preferences=False, **kwargs
    ).with_resources("events_session")


def scroll_windows(sandbox: Sandbox, endpoint: str = SESSION) -> list[tuple[int, int]]:
    """The window of every scroll the sandbox saw started (requests without a scrollId), in order sent."""
    return [
        tuple(int(n) for n in re.fullmatch(r"date>=(\d+);date<(\d+)", entry["query"]["filter"][0]).groups())
        for entry in sandbox.stats.requests()
        if entry["endpoint"] == endpoint and "scrollId" not in entry["query"]
    ]


def load_in_sub_windows(
    make_sandbox: SandboxFactory, pipeline, days: int, max_in_flight: int, latency_ms: int
) -> tuple[Sandbox, dt.date, tuple[int, int], list[tuple[int, int]]]:
    """~50 session events a day over ``days`` days, loaded in pages of 10: the sandbox, the start, the
    first scroll (the whole window's probe) and the sub-window scrolls, in the order they started."""
    sandbox = make_sandbox(users=40, days=days, events_per_day=50, faults=Faults(latency_ms=latency_ms))
    start = END_DATE - dt.timedelta(days=days)
    load(pipeline, source(sandbox, start, page_size=10, max_in_flight=max_in_flight))
    probe, *parts = scroll_windows(sandbox)
    return sandbox, start, probe, parts


def assert_tiled(parts: list[tuple[int, int]], start: dt.date) -> None:
    """The sub-windows cover [start, END_DATE) in whole UTC days, with no gap and no overlap."""
    parts = sorted(parts)
    assert parts[0][0] == ms(start) and parts[-1][1] == ms(END_DATE)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts)), "no gap, no overlap"
    assert all(b % DAY_MS == 0 for part in parts for b in part), "whole UTC days"


def exact_rows(duckdb_path, sandbox: Sandbox, start: dt.date) -> int:
    """Rows loaded, asserted to be every event of the window once."""
    [(rows, distinct)] = query(
        duckdb_path, "SELECT count(*), count(DISTINCT event_id) FROM aptrinsic_data.events_session"
    )
    assert rows == distinct == sandbox.count(SESSION, ms(start), ms(END_DATE))
    return rows


def test_a_window_of_many_pages_loads_exactly_as_concurrent_sub_windows(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    # 12 days of ~50 session events in pages of 10: about 60 pages, split in 2 at day 6, which opens with
    # an event at 00:00:00.000 (the sandbox puts one on every third day), and the halves split again
    # as the load nears its end.
    sandbox, start, probe, parts = load_in_sub_windows(make_sandbox, pipeline, 12, max_in_flight=3, latency_ms=40)
    assert probe == (ms(start), ms(END_DATE))  # the first page of the whole window tells its size
    assert len(parts) >= 3
    assert_tiled(parts, start)
    parts.sort()

    per_day = dict(query(duckdb_path, "SELECT _aptrinsic_day, count(*) FROM aptrinsic_data.events_session GROUP BY 1"))
    for i in range(12):
        day = start + dt.timedelta(days=i)
        assert per_day.get(day, 0) == sandbox.count(SESSION, ms(day), ms(day) + DAY_MS), day
    rows = exact_rows(duckdb_path, sandbox, start)
    # One fact row per API window, the sub-windows summed: what the checks reconcile against.
    facts = query(
        duckdb_path,
        f"SELECT total_hits, records_fetched, pages_fetched, duplicates_skipped FROM aptrinsic_data.{API_COUNTS_TABLE} "
        "WHERE table_name = 'events_session'",
    )
    pages = sandbox.stats.snapshot()["requests"][SESSION] - 1  # all but the first page of the whole window
    assert facts == [(rows, rows, pages, 0)]

    # A sub-window boundary at 00:00:00.000 with an event exactly there: it lands once, in the later one.
    boundaries = [b for _, b in parts[:-1]]
    at_boundary = query(
        duckdb_path,
        "SELECT count(*) FROM aptrinsic_data.events_session WHERE epoch_ms(date) IN "
        f"({', '.join(map(str, boundaries))})",
    )[0][0]
    assert at_boundary == sum(sandbox.count(SESSION, b, b + 1) for b in boundaries) > 0

    in_flight = sandbox.stats.snapshot()["peak_in_flight_by_endpoint"][SESSION]
    assert 1 < in_flight <= 3, "sub-windows overlapped in time, never above max_in_flight"


def test_a_cancelled_load_stops_every_sub_window_scroll(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=40, days=12, events_per_day=40, faults=Faults(latency_ms=30))
    start = END_DATE - dt.timedelta(days=12)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            load(pipeline, source(sandbox, start, page_size=2, max_in_flight=4))
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    loader = threading.Thread(target=run)
    loader.start()
    while sandbox.stats.snapshot()["total_requests"] < 20 and loader.is_alive():
        time.sleep(0.01)
    cancel_requests()
    at_cancel = sandbox.stats.snapshot()["total_requests"]
    loader.join(timeout=120)
    for thread in threading.enumerate():
        if thread.name.startswith("aptrinsic-scroll"):
            thread.join(timeout=60)
    assert not loader.is_alive() and not [t for t in threading.enumerate() if t.name.startswith("aptrinsic-scroll")]

    assert failure and isinstance(failure[0], PipelineStepFailed)
    assert "cancelled" in str(cause(failure[0], AptrinsicDeadlineError))
    sent = sandbox.stats.snapshot()["total_requests"]
    # Only the requests already past the budget check when it was cancelled, at most one per thread.
    assert sent - at_cancel <= 4
    assert sent < sandbox.count(SESSION, ms(start), ms(END_DATE)) / 2 / 2, "well before the last of its pages"


@pytest.mark.parametrize("cap", [20])
def test_concurrent_sub_windows_stay_under_the_api_rate_cap(make_sandbox: SandboxFactory, pipeline, duckdb_path, cap):
    sandbox = make_sandbox(users=40, days=12, events_per_day=30, faults=Faults(rate_cap=cap, latency_ms=150))
    start = END_DATE - dt.timedelta(days=12)
    load(pipeline, source(sandbox, start, page_size=10, rate_limit=cap * 0.75, max_in_flight=8))
    stats = sandbox.stats.snapshot()
    assert set(stats["statuses"]) == {"200"}, stats["statuses"]
    assert stats["peak_rps"] <= cap and stats["peak_in_flight_by_endpoint"][SESSION] > 1
    [(rows,)] = query(duckdb_path, "SELECT count(*) FROM aptrinsic_data.events_session")
    assert rows == sandbox.count(SESSION, ms(start), ms(END_DATE))


def test_more_scrolls_in_flight_than_the_default_keep_their_connections(
    make_sandbox: SandboxFactory, pipeline, caplog: pytest.LogCaptureFixture
):
    # Every walk of a load shares one connection pool: sized by max_in_flight, or urllib3 drops the
    # connections above its size (a warning per connection, and a new handshake for the next request).
    sandbox = make_sandbox(users=40, days=120, events_per_day=100, faults=Faults(latency_ms=300))
    with caplog.at_level("WARNING", logger="urllib3"):
        load(pipeline, source(sandbox, END_DATE - dt.timedelta(days=120), page_size=10, max_in_flight=48))
    assert sandbox.stats.snapshot()["peak_in_flight_by_endpoint"][SESSION] > 32
    assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_backfill_starts_its_longest_scrolls_first_and_ends_on_short_ones(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    # A scroll's pages follow one another, so the scrolls started last set when a load ends: 60 days
    # (about 300 pages) over 4 scrolls at once.
    sandbox, start, _, parts = load_in_sub_windows(make_sandbox, pipeline, 60, max_in_flight=4, latency_ms=5)
    pages = [sandbox.count(SESSION, a, b) // 10 + 1 for a, b in parts]  # a scroll ends on a short page
    assert min(pages[:4]) > 2 * max(pages[-4:])
    fewest = -(-sandbox.count(SESSION, ms(start), ms(END_DATE)) // 10)
    assert sandbox.stats.snapshot()["requests"][SESSION] <= 1.1 * fewest
    assert_tiled(parts, start)
    exact_rows(duckdb_path, sandbox, start)


def test_a_table_that_fails_in_its_probe_leaves_the_end_of_load_split_to_the_others():
    """The pool splits a scroll for the end of the load only once no API window is still being probed.
    A table whose probe fails stops; its window must stop counting, or the tables still loading never
    split again."""
    pool = ScrollPool(max_in_flight=2)
    window = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 3, tzinfo=dt.UTC))
    release = threading.Event()

    def pages(window, counts: ApiCounts):  # one short page, then one held back until released
        counts.total_hits = 3
        yield [{"eventId": "a"}, {"eventId": "b"}]
        release.wait(10)
        yield [{"eventId": "c"}]

    def refused(window, counts: ApiCounts):
        raise PermissionError("403: the key lacks Read permission")
        yield

    loading = pool.pages([window], 2, pages)
    assert next(loading)[1] == [{"eventId": "a"}, {"eventId": "b"}]
    with pytest.raises(PermissionError):
        list(pool.pages([window], 2, refused))
    assert pool.tail_share() == 0.0  # nothing pending, nothing being probed
    release.set()
    rest = [item for _, item in loading]
    assert rest[0] == [{"eventId": "c"}] and rest[1].total_hits == 3


def synthetic_window(days: int, pages_per_day: int, delay: float = 0.0):
    """A fetch over ``days`` from 2026-01-01 holding ``pages_per_day`` one-record pages a day (each
    after ``delay`` seconds), and the most of its scrolls that were ever open at once."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lock, open_now, most = threading.Lock(), [0], [0]

    def fetch(window, counts: ApiCounts):
        first, last = ((w - start).days for w in window)
        counts.total_hits = (last - first) * pages_per_day
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
        try:
            for n in range(first * pages_per_day, last * pages_per_day):
                time.sleep(delay)
                yield [{"eventId": n}]
        finally:
            with lock:
                open_now[0] -= 1

    return (start, start + dt.timedelta(days=days)), fetch, most


def test_sub_windows_start_only_while_dlt_waits_for_pages():
    """A window of 320 pages splits into 10 sub-windows. Taken slower than they come, its pages need
    one scroll, and more would each hold a page waiting; fetched slower than taken, it needs many."""
    window, fetch, most = synthetic_window(days=32, pages_per_day=10)
    pages = []
    for _, item in ScrollPool(max_in_flight=8).pages([window], 1, fetch):
        if not isinstance(item, ApiCounts):
            pages.append(item[0]["eventId"])
            time.sleep(0.002)  # dlt slower than the API
    assert sorted(pages) == list(range(320))
    assert most[0] <= 2, f"{most[0]} scrolls open at once where the consumer set the pace"

    window, fetch, most = synthetic_window(days=32, pages_per_day=10, delay=0.01)
    items = list(ScrollPool(max_in_flight=8).pages([window], 1, fetch))
    assert sorted(item[0]["eventId"] for _, item in items if not isinstance(item, ApiCounts)) == list(range(320))
    assert most[0] >= 6, f"only {most[0]} scrolls at once where the API's latency set the pace"
