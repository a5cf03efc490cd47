"""The dlt source under plain dlt, against the sandbox over real HTTP, into a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import dlt
import pyarrow as pa
import pytest
import requests
from dlt.extract import DltResource
from dlt.pipeline.exceptions import PipelineStepFailed

from aptrinsic_dagster.sources.aptrinsic import (
    API_COUNTS_TABLE,
    TABLES,
    AptrinsicAuthError,
    AptrinsicConfigError,
    AptrinsicError,
    aptrinsic_source,
)
from aptrinsic_dagster.sources.aptrinsic.client import (
    BODY_SLOTS,
    PARSE_SLOTS,
    AptrinsicClient,
    RateLimiter,
    ScrollPaginator,
)
from aptrinsic_dagster.sources.aptrinsic.merges import running_sql_jobs, staged_memory
from aptrinsic_dagster.sources.aptrinsic.pipeline import load, make_pipeline, warehouse_destination
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, SNAPSHOT_TABLES
from aptrinsic_sandbox import Faults, Sandbox, spawn

from .helpers import API_KEY, DAY_MS, END_DATE, ROOT, SandboxFactory, Warehouse, cause, ms, query, row_count

START = END_DATE - dt.timedelta(days=7)
WINDOW = (ms(START), ms(END_DATE))
MAXIMA = {"/v1" + t.path: t.max_page_size for t in TABLES.values() if t.max_page_size}


def source(sandbox: Sandbox, start: dt.date = START, end: dt.date = END_DATE, **kwargs: object):
    return aptrinsic_source(start=start, end=end, api_key=API_KEY, base_url=sandbox.base_url, **kwargs)


@pytest.mark.slow
def test_every_table_loads_exactly_what_the_api_holds(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=1300, accounts=60, events_per_day=150)
    load(pipeline, source(sandbox))
    for table in EVENT_TABLES:
        assert row_count(duckdb_path, table.name) == sandbox.count("/v1" + table.path, *WINDOW), table.name
    for table in SNAPSHOT_TABLES:
        assert row_count(duckdb_path, table.name) == sandbox.count("/v1" + table.path), table.name
    assert row_count(duckdb_path, "user_preferences") == 1300
    facts = dict(
        query(
            duckdb_path,
            f"SELECT table_name, total_hits FROM aptrinsic_data.{API_COUNTS_TABLE} WHERE total_hits IS NOT NULL",
        )
    )
    assert facts["users"] == 1300 and facts["events_custom"] == sandbox.count("/v1/events/custom", *WINDOW)


@pytest.mark.slow
def test_paging_sends_exactly_the_requests_needed_and_never_oversized(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=2000, events_per_day=150, features=401)
    load(pipeline, source(sandbox, preferences=False))
    stats = sandbox.stats.snapshot()["requests"]
    # 2000 users in pages of 1000: two full pages, then one empty page (the scrollId is never null).
    assert stats["/v1/users"] == 3
    for table in EVENT_TABLES:
        hits = sandbox.count("/v1" + table.path, *WINDOW)
        assert stats["/v1" + table.path] == math.floor(hits / 1000) + 1, table.name
    assert stats["/v1/feature"] == 3  # 401 features at the maximum 200: pages 0, 1, 2 (the last has isLastPage)
    for entry in sandbox.stats.requests():
        size = entry["query"].get("pageSize")
        if size:
            assert 1 <= int(size[0]) <= MAXIMA[entry["endpoint"]], entry
    assert set(sandbox.stats.snapshot()["statuses"]) == {"200"}


def test_a_400_day_window_is_fetched_as_windows_of_at_most_190_days(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    sandbox = make_sandbox(days=400, users=50, events_per_day=3)
    start = END_DATE - dt.timedelta(days=400)
    load(pipeline, source(sandbox, start=start, end=END_DATE, preferences=False).with_resources("events_lead"))
    windows = sorted(
        tuple(int(n) for n in re.fullmatch(r"date>=(\d+);date<(\d+)", entry["query"]["filter"][0]).groups())
        for entry in sandbox.stats.requests()
        if entry["endpoint"] == "/v1/events/lead" and "filter" in entry["query"]
    )
    assert len(windows) == 3
    assert all(end - begin <= 190 * DAY_MS for begin, end in windows)
    assert windows[0][0] == ms(start) and windows[-1][1] == ms(END_DATE)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows)), "no gap, no overlap"
    assert row_count(duckdb_path, "events_lead") == sandbox.count("/v1/events/lead", ms(start), ms(END_DATE))


def test_boundary_events_land_in_exactly_one_of_two_adjacent_windows(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    sandbox = make_sandbox(users=50, events_per_day=40)
    midnight = END_DATE - dt.timedelta(days=2)  # a data day that opens with an event at 00:00:00.000
    load(pipeline, source(sandbox, midnight - dt.timedelta(days=1), midnight).with_resources("events_session"))
    before = row_count(duckdb_path, "events_session")
    load(pipeline, source(sandbox, midnight, midnight + dt.timedelta(days=1)).with_resources("events_session"))
    after = row_count(duckdb_path, "events_session") - before
    two_days = sandbox.count("/v1/events/session", ms(midnight) - DAY_MS, ms(midnight) + DAY_MS)
    assert before + after == two_days
    at_midnight = query(
        duckdb_path,
        "SELECT count(*) FROM aptrinsic_data.events_session WHERE date = ?",
        dt.datetime.combine(midnight, dt.time(), dt.UTC),
    )[0][0]
    assert at_midnight == 1


def _contents(path: Path, table: str) -> list[tuple]:
    columns = [
        c
        for (c,) in query(
            path,
            "SELECT column_name FROM information_schema.columns WHERE "
            "table_schema = 'aptrinsic_data' AND table_name = ? AND "
            "column_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY 1",
            table,
        )
    ]
    return query(path, f"SELECT {', '.join(columns)} FROM aptrinsic_data.{table} ORDER BY ALL")


@pytest.mark.slow
def test_reloading_a_window_and_a_snapshot_leaves_identical_tables(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=300, events_per_day=80)
    tables = ["events_page_view", "events_email", "users", "accounts"]
    load(pipeline, source(sandbox).with_resources(*tables))
    first = {t: _contents(duckdb_path, t) for t in tables}
    load(pipeline, source(sandbox).with_resources(*tables))
    assert {t: _contents(duckdb_path, t) for t in tables} == first
    assert all(first.values())


def test_snapshot_refresh_removes_records_deleted_at_the_source(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    load(pipeline, source(make_sandbox(users=300)).with_resources("users"))
    load(pipeline, source(make_sandbox(users=250)).with_resources("users"))
    assert query(duckdb_path, "SELECT count(*), max(identify_id) FROM aptrinsic_data.users")[0] == (
        250,
        "user-0000249",
    )


def test_records_the_api_repeats_across_scroll_pages_load_once_and_are_counted(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    # 95 users in pages of 10, each page after the first opening with the last 3 of the page before:
    # 10 pages (the last holds 3 + 5), 27 records served twice.
    sandbox = make_sandbox(users=95, faults=Faults(repeat_records=3))
    load(pipeline, source(sandbox, page_sizes={"users": 10}).with_resources("users"))
    assert sandbox.stats.snapshot()["records_served"] == 95 + 27
    assert query(duckdb_path, "SELECT count(*), count(DISTINCT identify_id) FROM aptrinsic_data.users") == [(95, 95)]
    facts = query(
        duckdb_path,
        f"SELECT total_hits, records_fetched, pages_fetched, duplicates_skipped FROM aptrinsic_data.{API_COUNTS_TABLE}",
    )
    assert facts == [(95, 95 + 27, 10, 27)]


def test_types_timestamps_json_and_flattened_columns(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=200)
    load(pipeline, source(sandbox, preferences=False).with_resources("users", "events_page_view"))
    types = dict(
        query(
            duckdb_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'aptrinsic_data' AND table_name = 'users'",
        )
    )
    assert types["create_date"] == types["last_seen_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["property_keys"] == types["channel_metric_list"] == "JSON"
    assert types["location__coordinates__latitude"] == "DOUBLE" and types["custom_attributes__plan"] == "VARCHAR"
    never_seen = query(duckdb_path, "SELECT count(*) FROM aptrinsic_data.users WHERE last_seen_date IS NULL")
    assert never_seen[0][0] > 0, "lastSeenDate 0 (never) lands as NULL, not 1970"
    first_key = query(duckdb_path, "SELECT property_keys->>'$[0]' FROM aptrinsic_data.users LIMIT 1")[0][0]
    assert first_key.startswith("AP-")
    tabs = query(
        duckdb_path,
        "SELECT count(*) FROM aptrinsic_data.events_page_view WHERE query_params->'$.tab'->>'$[0]' = 'all'",
    )
    assert tabs[0][0] > 0


def test_new_custom_attribute_adds_a_column_and_type_drift_goes_to_a_variant(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    load(pipeline, source(make_sandbox(users=200)).with_resources("users"))
    drifted = make_sandbox(users=200, extra_custom_attribute="region", seats_as_string=True)
    load(pipeline, source(drifted).with_resources("users"))
    types = dict(
        query(
            duckdb_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'aptrinsic_data' AND table_name = 'users'",
        )
    )
    assert types["custom_attributes__region"] == "VARCHAR"
    assert types["custom_attributes__seats"] == "BIGINT" and types["custom_attributes__seats__v_text"] == "VARCHAR"
    rows = query(
        duckdb_path,
        "SELECT custom_attributes__seats, custom_attributes__seats__v_text "
        "FROM aptrinsic_data.users WHERE custom_attributes__seats__v_text IS NOT NULL",
    )
    assert rows and all(seats is None and text.endswith(" seats") for seats, text in rows)


@pytest.mark.slow
def test_faults_are_retried_and_counts_stay_exact(
    make_sandbox: SandboxFactory, pipeline, duckdb_path, monkeypatch: pytest.MonkeyPatch
):
    # One attempt in five fails here, so six attempts (the default) would exhaust on ~1 of
    # 15,000 requests: about one run in twelve. Ten attempts make that one in ten million.
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "10")
    faults = Faults(rate_429=0.1, rate_5xx=0.05, rate_reset=0.05, latency_jitter_ms=5, rate_cap=0)
    sandbox = make_sandbox(users=1200, events_per_day=100, faults=faults)
    load(pipeline, source(sandbox, page_size=100))
    statuses = sandbox.stats.snapshot()["statuses"]
    assert {"429", "503", "0"} <= set(statuses), statuses  # the faults really happened
    for table in EVENT_TABLES:
        assert row_count(duckdb_path, table.name) == sandbox.count("/v1" + table.path, *WINDOW), table.name
    assert row_count(duckdb_path, "users") == 1200 and row_count(duckdb_path, "user_preferences") == 1200


@pytest.mark.slow
def test_client_side_rate_cap_keeps_under_the_api_limit(pipeline):
    # The sandbox in a process of its own, as the API is: in this one, its threads waited for the
    # load's GIL before they could note a request's arrival, and noted late ones together.
    server, base_url = spawn("--api-key", API_KEY, "--end-date", str(END_DATE), "--users", "100", "--rate-cap", "0")
    try:
        started = time.perf_counter()
        load(pipeline, aptrinsic_source(start=START, end=END_DATE, api_key=API_KEY, base_url=base_url, rate_limit=30))
        elapsed = time.perf_counter() - started
        stats = requests.get(base_url.removesuffix("/v1") + "/_sandbox/stats", timeout=10).json()
    finally:
        server.terminate()
        server.wait(timeout=10)
    sent = stats["total_requests"]
    assert sent > 90  # three seconds and more at the cap
    # Requests leave at least 1/30 s apart, so n of them take (n - 1) / 30 s at the least.
    assert elapsed >= (sent - 1) / 30
    # Arrivals in any one second at the server: 30 sent, plus the few that scheduling jitter on a busy
    # 2-core machine pulls together (33 seen under a load average of 10); never the 40 of a loose cap.
    # On a failure, the peak's arrivals (ms) tell a bunch of late wake-ups from a leak in the cap.
    assert 25 <= stats["peak_rps"] <= 34, f"the peak second's arrivals, ms: {stats['peak_second']}"


@pytest.mark.parametrize(("key", "status"), [("wrong-key", 401), ("read-less", 403)])
def test_bad_key_fails_fast_with_a_message_that_says_what_to_do(make_sandbox: SandboxFactory, pipeline, key, status):
    sandbox = make_sandbox(forbidden_keys=("read-less",))
    with pytest.raises(PipelineStepFailed) as failure:
        load(pipeline, aptrinsic_source(api_key=key, base_url=sandbox.base_url).with_resources("users"))
    message = str(cause(failure.value, AptrinsicAuthError))
    assert f"answered {status}" in message
    assert "X-APTRINSIC-API-KEY" in message and "APTRINSIC_API_KEY" in message and "region" in message
    assert key not in message
    assert sandbox.stats.snapshot()["total_requests"] == 1, "no retry storm"


def test_missing_key_and_oversized_page_fail_before_any_request(sandbox: Sandbox):
    with pytest.raises(AptrinsicConfigError, match="APTRINSIC_API_KEY"):
        aptrinsic_source(base_url=sandbox.base_url)
    with pytest.raises(AptrinsicConfigError, match=r"allows 1\.\.200 on /feature"):
        source(sandbox, page_sizes={"feature_flags": 500})
    with pytest.raises(AptrinsicConfigError, match="region"):
        aptrinsic_source(api_key=API_KEY, region="mars")
    assert sandbox.stats.snapshot()["total_requests"] == 0


def test_an_api_400_surfaces_the_api_message(sandbox: Sandbox):
    client = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0))
    with pytest.raises(AptrinsicError, match="Exceeded date range190days"):
        list(
            client.pages(
                "/events/custom",
                "customEvents",
                ScrollPaginator(10),
                {"filter": "date>=0;date<17000000000000"},
            )
        )


def _walks(client: AptrinsicClient, n: int, convert, page_size: int = 5) -> list[BaseException | int]:
    """``n`` concurrent walks of /users, each its own thread: records converted, or the error."""
    outcomes: list[BaseException | int] = [0] * n

    def walk(i: int) -> None:
        try:
            outcomes[i] = sum(
                len(p) for p in client.pages("/users", "users", ScrollPaginator(page_size), convert=convert)
            )
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=walk, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a walk never ended: a parse slot was never given back"
    return outcomes


def test_parsed_pages_wait_for_a_parse_slot_and_every_page_arrives(make_sandbox: SandboxFactory):
    # 12 walks at once (scrolls in flight): at most PARSE_SLOTS parsed pages exist at a time, each
    # until it is converted; the others wait with only their body's bytes.
    sandbox = make_sandbox(users=60, faults=Faults(latency_ms=20))
    client = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0))
    lock, held, peak = threading.Lock(), [0], [0]

    def convert(records: list[dict]) -> list[dict]:
        with lock:
            held[0] += 1
            peak[0] = max(peak[0], held[0])
        time.sleep(0.02)
        with lock:
            held[0] -= 1
        return records

    assert _walks(client, 12, convert) == [60] * 12
    assert peak[0] == PARSE_SLOTS


def _held_bodies() -> int:
    """Bytes of response bodies this process holds now (requests reads each into one bytes object)."""
    traces = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, requests.models.__file__)])
    return sum(trace.size for trace in traces.traces)


def test_page_bodies_beyond_the_body_slots_stay_in_their_sockets(make_sandbox: SandboxFactory):
    # 16 walks at once while conversion is held up: PARSE_SLOTS pages are being converted, BODY_SLOTS
    # - PARSE_SLOTS bodies are read and wait to be parsed, and the other walks have only their
    # headers read. Reading every body on arrival held 14 of them here (40 at once in a 1M-event load).
    sandbox = make_sandbox(users=2000)
    page = 500
    body = len(
        requests.get(
            f"{sandbox.base_url}/users", params={"pageSize": page}, headers={"X-APTRINSIC-API-KEY": API_KEY}
        ).content
    )
    client = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0))
    release = threading.Event()
    outcomes: list[BaseException | int] = []

    def convert(records: list[dict]) -> list[dict]:
        release.wait(30)
        return records

    walking = threading.Thread(target=lambda: outcomes.extend(_walks(client, 16, convert, page_size=page)))
    tracemalloc.start()
    try:
        first = sandbox.stats.snapshot()["total_requests"]
        walking.start()
        deadline = time.monotonic() + 30
        while sandbox.stats.snapshot()["total_requests"] < first + 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a body read on arrival is read by now
        held = _held_bodies()
    finally:
        release.set()
        tracemalloc.stop()
    walking.join(60)
    assert outcomes == [2000] * 16
    assert held < (BODY_SLOTS - PARSE_SLOTS + 1) * body, f"{held / body:.1f} bodies of {body:,} bytes held"


def test_the_wait_for_a_body_slot_is_not_counted_against_the_response_deadline(make_sandbox: SandboxFactory):
    # Two pages converted at a time, 0.6 s each: the last four of 16 walks wait 1.8-2.4 s for a body
    # slot with their headers read. The 1.5 s deadline is the API's time to answer, so no attempt is
    # cut (without the pause those four time out and are retried).
    sandbox = make_sandbox(users=100)  # one short page per walk, its body past the socket's read buffer
    client = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0), response_deadline=1.5)

    def convert(records: list[dict]) -> list[dict]:
        time.sleep(0.6)
        return records

    assert _walks(client, 16, convert, page_size=200) == [100] * 16
    assert sandbox.stats.snapshot()["total_requests"] == 16, "an attempt missed its deadline and was retried"


def test_pages_that_fail_to_parse_or_convert_give_their_parse_slot_back(make_sandbox: SandboxFactory):
    broken = make_sandbox(users=60, faults=Faults(rate_malformed=1.0))
    healthy = make_sandbox(users=60)

    def refuse(records: list[dict]) -> list[dict]:
        raise AptrinsicError("refused")

    parse_errors = _walks(AptrinsicClient(broken.base_url, API_KEY, RateLimiter(0)), PARSE_SLOTS + 2, None)
    assert all(isinstance(e, AptrinsicError) and "malformed JSON" in str(e) for e in parse_errors)
    client = AptrinsicClient(healthy.base_url, API_KEY, RateLimiter(0))
    assert all(isinstance(e, AptrinsicError) for e in _walks(client, PARSE_SLOTS + 2, refuse))
    assert _walks(client, PARSE_SLOTS + 2, None) == [60] * (PARSE_SLOTS + 2)


def test_malformed_json_fails_clearly_and_commits_nothing(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=100, faults=Faults(rate_malformed=1.0))
    with pytest.raises(PipelineStepFailed) as failure:
        load(pipeline, source(sandbox).with_resources("users"))
    message = str(cause(failure.value, AptrinsicError))
    assert message.startswith("users (snapshot) (GET /v1/users): ") and "malformed JSON" in message
    assert not duckdb_path.exists() or not query(
        duckdb_path, "SELECT * FROM information_schema.tables WHERE table_name = 'users'"
    )


def test_requests_carry_the_documented_window_and_sort(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=20, events_per_day=5)
    load(pipeline, source(sandbox).with_resources("events_custom"))
    first = next(e for e in sandbox.stats.requests() if e["endpoint"] == "/v1/events/custom")
    assert first["query"]["filter"] == [f"date>={WINDOW[0]};date<{WINDOW[1]}"]
    assert first["query"]["sort"] == ["date"] and first["query"]["pageSize"] == ["1000"]


def test_preferences_limit_bounds_the_per_user_requests(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=40)
    load(pipeline, source(sandbox, preferences_limit=10).with_resources("users", "user_preferences"))
    assert row_count(duckdb_path, "user_preferences") == 10
    assert sandbox.stats.snapshot()["requests"]["/v1/user/preferences/{identifyId}"] == 10


@pytest.mark.slow
def test_a_reader_during_a_snapshot_refresh_sees_the_old_or_the_new_table_never_a_part(
    make_sandbox: SandboxFactory, pipeline, duckdb_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    load(pipeline, source(make_sandbox(users=1500)).with_resources("users"))
    # Slow pages, and a load file per page: a replace that were not one transaction would show
    # the table empty, or growing file by file.
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "200")
    refreshed = make_sandbox(users=2600, seed=2, faults=Faults(latency_ms=20))
    reader = make_pipeline(warehouse_destination(duckdb_path=duckdb_path), pipelines_dir=str(tmp_path / "reader"))
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        with reader.sql_client() as sql:
            while not done.is_set():
                seen.append(sql.execute_sql("SELECT count(*) FROM aptrinsic_data.users")[0][0])

    thread = threading.Thread(target=read)
    thread.start()
    try:
        [info] = load(pipeline, source(refreshed, page_size=200).with_resources("users"))
    finally:
        done.set()
        thread.join()
    assert len(info.load_packages[0].jobs["completed_jobs"]) > 10, "the refresh came in many load files"
    assert len(seen) > 20 and set(seen) <= {1500, 2600}, sorted(set(seen))
    assert row_count(duckdb_path, "users") == 2600


def _per_day(path: Path, table: str) -> dict[dt.date, int]:
    return dict(query(path, f"SELECT CAST(date AS DATE), count(*) FROM aptrinsic_data.{table} GROUP BY 1"))


def _api_per_day(sandbox: Sandbox, path: str, first: dt.date, days: int) -> dict[dt.date, int]:
    counts = {}
    for day in (first + dt.timedelta(days=i) for i in range(days)):
        if n := sandbox.count(path, ms(day), ms(day) + DAY_MS):
            counts[day] = n
    return counts


@pytest.mark.slow
def test_reloading_a_window_converges_on_late_events_and_deletions_at_the_source(
    make_sandbox: SandboxFactory, pipeline, duckdb_path: Path
):
    late = START + dt.timedelta(days=2)
    sandbox = make_sandbox(users=40, events_per_day=120, faults=Faults(late_days=(late.isoformat(),)))
    tables = [t.name for t in EVENT_TABLES]
    load(pipeline, source(sandbox, preferences=False).with_resources(*tables))
    loaded = {t.name: _per_day(duckdb_path, t.name) for t in EVENT_TABLES}
    # Late events arrive, and two users are erased at the source.
    erased = [u for (u,) in query(duckdb_path, "SELECT DISTINCT identify_id FROM aptrinsic_data.events_custom")][:2]
    sandbox.faults.update(late_days=[], deleted_users=erased)
    load(pipeline, source(sandbox, preferences=False).with_resources(*tables))
    for table in EVENT_TABLES:
        landed = _per_day(duckdb_path, table.name)
        assert landed == _api_per_day(sandbox, "/v1" + table.path, START, 7), table.name
        assert landed != loaded[table.name], table.name  # the source did change for every table
    gone = query(duckdb_path, "SELECT count(*) FROM aptrinsic_data.events_session WHERE identify_id IN (?, ?)", *erased)
    assert gone == [(0,)]
    [(markers,)] = query(duckdb_path, "SELECT count(*) FROM aptrinsic_data.events_session WHERE event_id LIKE '~%'")
    assert markers == 0


def test_a_day_that_becomes_empty_at_the_source_is_emptied(make_sandbox: SandboxFactory, pipeline, duckdb_path):
    sandbox = make_sandbox(users=3, events_per_day=20)
    day = END_DATE - dt.timedelta(days=1)
    load(pipeline, source(sandbox, day, END_DATE).with_resources("events_lead"))
    assert _per_day(duckdb_path, "events_lead")[day] > 0
    users = [u for (u,) in query(duckdb_path, "SELECT DISTINCT identify_id FROM aptrinsic_data.events_lead")]
    sandbox.faults.update(deleted_users=users)
    load(pipeline, source(sandbox, day, END_DATE).with_resources("events_lead"))
    assert _per_day(duckdb_path, "events_lead") == {}


def test_a_window_that_is_not_whole_days_is_refused_before_any_request(sandbox: Sandbox):
    with pytest.raises(AptrinsicConfigError, match="whole UTC days"):
        source(sandbox, "2026-03-01T06:00:00", "2026-03-02")
    assert sandbox.stats.snapshot()["total_requests"] == 0


def test_a_load_never_imports_pandas_and_pyarrow_still_converts_it_on_request(
    make_sandbox: SandboxFactory, tmp_path: Path
):
    """pyarrow imports pandas (52 MB of RSS) on its first list conversion to check whether the list
    is a pandas object; tune_process answers that probe. A whole load by the plain script in a fresh
    interpreter: every row lands, pandas is not in sys.modules after it, and to_pandas still works."""
    sandbox = make_sandbox(users=20, accounts=4, events_per_day=30)
    code = (
        "import sys, runpy; sys.argv = ['aptrinsic_pipeline.py', '--start', sys.argv[1], '--end', sys.argv[2], "
        "'--no-preferences', '--progress', 'none']; runpy.run_path('aptrinsic_pipeline.py', run_name='__main__'); "
        "print('pandas loaded' if 'pandas' in sys.modules else 'no pandas'); "
        "import pyarrow as pa; print(pa.table({'a': [1, 2]}).to_pandas()['a'].sum())"
    )
    env = {
        **os.environ,
        "APTRINSIC_API_KEY": API_KEY,
        "APTRINSIC_BASE_URL": sandbox.base_url,
        "APTRINSIC_DUCKDB_PATH": str(tmp_path / "aptrinsic.duckdb"),
        "APTRINSIC_PIPELINES_DIR": str(tmp_path / "pipelines"),
    }
    day = END_DATE - dt.timedelta(days=1)
    ran = subprocess.run(
        [sys.executable, "-c", code, day.isoformat(), END_DATE.isoformat()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.splitlines()[-2:] == ["no pandas", "3"], ran.stdout[-2000:]
    assert row_count(tmp_path / "aptrinsic.duckdb", "users") == 20
    for table in EVENT_TABLES:
        landed = _per_day(tmp_path / "aptrinsic.duckdb", table.name)
        assert landed == _api_per_day(sandbox, "/v1" + table.path, day, 1) != {}, table.name


@pytest.mark.slow
def test_a_month_reloaded_over_its_own_history_finishes_and_stays_exact(
    make_sandbox: SandboxFactory, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A backfill run again: 30 days of one table (3,000 events a day) reloaded over themselves. dlt's
    merge deleted by ``id OR day`` in one statement, which DuckDB and Postgres join row by row: DuckDB
    ran out of its memory limit and dlt retried the job, for as long as it was let run (6 min here)."""
    for name, value in warehouse.env.items():
        monkeypatch.setenv(name, value)
    first = END_DATE - dt.timedelta(days=30)
    sandbox = make_sandbox(users=50, events_per_day=3000, days=30)
    destination = warehouse_destination(warehouse.kind, duckdb_path=warehouse.duckdb_path)
    pipeline = make_pipeline(destination, pipelines_dir=str(tmp_path / "pipelines"))
    expected = _api_per_day(sandbox, "/v1/events/email", first, 30)
    assert len(expected) == 30 and sum(expected.values()) > 85_000
    for _ in range(2):
        load(pipeline, source(sandbox, first, END_DATE, preferences=False).with_resources("events_email"))
        sql = "SELECT _aptrinsic_day, count(*), count(DISTINCT event_id) FROM aptrinsic_data.events_email GROUP BY 1"
        assert {day: n for day, n, _ in warehouse.query(sql)} == expected
        assert all(n == distinct for _, n, distinct in warehouse.query(sql))


def _wide_events(total: int, distinct: int) -> DltResource:
    """``total`` events of ~300 bytes, keyed by ``distinct`` ids (the first ones staged twice, as when
    the API repeats a record across pages)."""
    step = 100_000

    @dlt.resource(primary_key="event_id", write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def events_wide():
        for start in range(0, total, step):
            ids = [f"event-{i % distinct:012d}-0000-0000-000000000000" for i in range(start, start + step)]
            yield pa.table({"event_id": ids, "payload": [f"{i:07d}" * 40 for i in range(start, start + step)]})

    return events_wide()


WIDE_SQL = "SELECT count(*), count(DISTINCT event_id), count(DISTINCT payload) FROM aptrinsic_data.events_wide"


def test_a_merge_whose_staged_rows_outgrow_duckdbs_buffer_loads_one_row_per_key(pipeline, duckdb_path):
    """400k staged rows, merged on the project's DuckDB destination. dlt's ROW_NUMBER() dedup held every
    staged row in DuckDB's buffer and failed at 200k of them at 80 MB; the anti-join keeps one row per key."""
    pipeline.run(_wide_events(400_000, 396_000)).raise_on_failed_jobs()
    assert query(duckdb_path, WIDE_SQL) == [(396_000, 396_000, 396_000)]


def test_a_backfill_run_again_replaces_millions_of_stored_rows_under_duckdbs_buffer(pipeline, duckdb_path):
    """2M staged rows merged over the same 2M stored, as when a backfill runs again over loaded days.
    Under the fixed 56 MB buffer the second load ran out of memory (DuckDB's join and deletes need
    buffers in proportion to the rows); its SQL jobs now raise the buffer to what they stage."""
    for _ in range(2):
        pipeline.run(_wide_events(2_000_000, 1_980_000)).raise_on_failed_jobs()
        assert query(duckdb_path, WIDE_SQL) == [(1_980_000, 1_980_000, 1_980_000)]


def test_a_sql_job_sizes_duckdbs_buffer_by_its_own_tables_staged_rows_and_those_of_the_jobs_beside_it(pipeline):
    """A table's merge runs under the buffer its staged rows need (with its nested tables'), plus those
    of the SQL jobs running beside it, not the whole load's: merged one after the other, tables of 900k
    and 800k staged rows need 59 and 57 MB, not the 87 MB that all 2.7M staged rows would ask for."""
    staged = {"events_a": 700_000, "events_a__list": 200_000, "events_ab": 1_000_000, "events_b": 800_000}

    def limit(client) -> str:
        return client.execute_sql("SELECT current_setting('memory_limit')")[0][0]

    with pipeline.sql_client() as client, client.with_staging_dataset():
        client.create_dataset()
        for table, rows in staged.items():
            client.execute_sql(f"CREATE TABLE {client.make_qualified_table_name(table)} AS FROM range({rows})")
    with pipeline.sql_client() as client:
        assert limit(client) == "53.4 MiB"  # the configured 56 MB: 900k rows need more
        with running_sql_jobs.memory_for(client, "events_a"):
            assert staged_memory(900_000) == 58.4e6 and limit(client) == "56.2 MiB"  # 59 MB
            with running_sql_jobs.memory_for(client, "events_b"):  # a job beside it
                assert staged_memory(1_700_000) == 71.2e6 and limit(client) == "68.6 MiB"  # 72 MB
    with pipeline.sql_client() as client:  # the first connection lent after all were returned
        assert limit(client) == "53.4 MiB"
        with running_sql_jobs.memory_for(client, "events_b"):
            assert staged_memory(800_000) == 56.8e6 and limit(client) == "54.3 MiB"  # 57 MB
