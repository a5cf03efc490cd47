"""Hostile API answers (issue #16): every case bounded, exact or failing with an actionable message,
and the key in no file. Against the sandbox over real sockets; deadlines are set small here so each
test takes seconds, and asserts count requests, never clock time."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import orjson
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed

from aptrinsic_dagster.sources.aptrinsic import AptrinsicError, aptrinsic_source
from aptrinsic_dagster.sources.aptrinsic.client import AptrinsicClient, RateLimiter, ScrollPaginator, cancel_requests
from aptrinsic_dagster.sources.aptrinsic.pipeline import load
from aptrinsic_sandbox import Faults, Sandbox
from aptrinsic_sandbox.proxy import TrickleProxy

from .helpers import (
    API_KEY,
    DAY_MS,
    END_DATE,
    ROOT,
    SandboxFactory,
    cause,
    failure_text,
    files_holding,
    ms,
    query,
    row_count,
)

# Each loads or builds for real (seconds to minutes): in `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow

DAY = END_DATE - dt.timedelta(days=3)
VENV_BIN = Path(sys.executable).parent


def source(sandbox: Sandbox, start: dt.date = DAY, end: dt.date = DAY + dt.timedelta(days=1), **kwargs: object):
    return aptrinsic_source(start=start, end=end, api_key=API_KEY, base_url=sandbox.base_url, **kwargs)


def requests_to(sandbox: Sandbox, endpoint: str) -> int:
    return sandbox.stats.snapshot()["requests"].get(endpoint, 0)


def failure(pipeline, src) -> str:
    with pytest.raises(PipelineStepFailed) as raised:
        load(pipeline, src)
    return str(cause(raised.value, AptrinsicError))


# -- 1. a scroll that never ends ------------------------------------------------------------------


@pytest.mark.parametrize("table", ["users", "events_custom"])
def test_a_repeated_scroll_id_stops_at_the_second_page(make_sandbox: SandboxFactory, pipeline, table):
    sandbox = make_sandbox(users=100, events_per_day=100, faults=Faults(repeat_scroll=True))
    message = failure(pipeline, source(sandbox, page_size=10).with_resources(table))
    assert "came back on page 2" in message and "does not advance" in message
    assert message.startswith(table) and "GET /v1/" in message
    if table == "events_custom":
        assert f"window [{dt.datetime.combine(DAY, dt.time(), dt.UTC).isoformat()}" in message
    endpoint = "/v1/users" if table == "users" else "/v1/events/custom"
    assert requests_to(sandbox, endpoint) == 2


def test_pages_beyond_what_total_hits_allows_stop_naming_table_endpoint_and_window(
    make_sandbox: SandboxFactory, pipeline
):
    # 100 events at pageSize 10: at most 11 pages (10 full, then an empty one). This API keeps
    # serving full pages with fresh scroll ids, so only the page count can stop it.
    sandbox = make_sandbox(users=50, events_per_day=100, faults=Faults(endless_scroll=True))
    total = sandbox.count("/v1/events/custom", ms(DAY), ms(DAY) + DAY_MS)
    message = failure(pipeline, source(sandbox, page_size=10).with_resources("events_custom"))
    window = f"window [{dt.datetime.combine(DAY, dt.time(), dt.UTC).isoformat()}"
    assert message.startswith(f"events_custom, {window}") and "(GET /v1/events/custom)" in message
    limit = -(-total // 10) + 1
    assert f"totalHits {total} at pageSize 10 allows at most {limit} pages" in message
    assert requests_to(sandbox, "/v1/events/custom") == limit


# -- 2. deadlines ---------------------------------------------------------------------------------


def test_a_trickled_body_misses_the_response_deadline_on_every_attempt(
    make_sandbox: SandboxFactory, pipeline, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    # 40 users are ~50 KB: at 400 bytes/s, two minutes; the deadline is half a second.
    sandbox = make_sandbox(users=40, faults=Faults(trickle_bytes_per_s=400))
    message = failure(pipeline, source(sandbox, response_deadline=0.5).with_resources("users"))
    assert "no complete answer within 0.5 s" in message and "gave up after 2 attempts" in message
    assert requests_to(sandbox, "/v1/users") == 2


def test_the_response_deadline_holds_through_an_http_proxy_that_trickles(
    make_sandbox: SandboxFactory, pipeline, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    sandbox = make_sandbox(users=40)
    with TrickleProxy(bytes_per_s=400) as proxy:  # the ~50 KB page would take two minutes
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        message = failure(pipeline, source(sandbox, response_deadline=0.5).with_resources("users"))
    assert message.startswith("users (snapshot) (GET /v1/users): gave up after 2 attempts")
    assert "no complete answer within 0.5 s (the response deadline, response_deadline)" in message
    assert proxy.requests == 2 and requests_to(sandbox, "/v1/users") == 2


def test_a_short_deadline_ends_its_attempt_while_a_longer_one_is_pending(
    make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
):
    # One thread keeps every deadline in the process: an attempt with a deadline sooner than all
    # others must wake it. The slow client's attempt stays pending (300 s) throughout.
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    sandbox = make_sandbox(users=40, faults=Faults(trickle_bytes_per_s=400))
    slow = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0), response_deadline=300)
    quick = AptrinsicClient(sandbox.base_url, API_KEY, RateLimiter(0), response_deadline=0.5)
    pending = threading.Thread(target=lambda: list(slow.pages("/users", "users", ScrollPaginator(1000))), daemon=True)
    pending.start()
    try:
        while requests_to(sandbox, "/v1/users") < 1:
            time.sleep(0.05)
        with pytest.raises(AptrinsicError) as raised:
            list(quick.pages("/users", "users", ScrollPaginator(1000), where="users"))
        assert "gave up after 2 attempts" in str(raised.value) and "within 0.5 s" in str(raised.value)
        assert requests_to(sandbox, "/v1/users") == 3, "the pending attempt was not cut short or retried"
    finally:
        cancel_requests()  # the pending walk sends nothing more once the sandbox closes its socket


def test_the_run_budget_stops_requests_and_says_which_setting(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=200, faults=Faults(latency_ms=150))
    message = failure(pipeline, source(sandbox, page_size=10, max_run_seconds=0.5).with_resources("users"))
    assert "time budget of 0.5 s (max_run_seconds)" in message and "users (snapshot)" in message
    assert requests_to(sandbox, "/v1/users") < 8, "far fewer than the 21 pages of a full walk"


def test_the_response_deadline_and_run_budget_come_from_dlt_config(
    make_sandbox: SandboxFactory, pipeline, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOURCES__APTRINSIC__RESPONSE_DEADLINE", "0.3")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    sandbox = make_sandbox(users=40, faults=Faults(trickle_bytes_per_s=400))
    message = failure(pipeline, source(sandbox).with_resources("users"))
    assert "within 0.3 s" in message and requests_to(sandbox, "/v1/users") == 1


# -- 3. truncation: page-number endpoints and snapshots -------------------------------------------


def test_a_short_page_that_is_not_the_last_fails_and_keeps_the_old_table(
    make_sandbox: SandboxFactory, pipeline, duckdb_path: Path
):
    load(pipeline, source(make_sandbox(features=30)).with_resources("feature_flags"))
    assert row_count(duckdb_path, "feature_flags") == 30
    hostile = make_sandbox(features=30, faults=Faults(serve_page_size=25))
    message = failure(pipeline, source(hostile).with_resources("feature_flags"))
    assert message.startswith("feature_flags (snapshot) (GET /v1/feature)")
    assert "holds 25 records where pageSize 200 was asked, yet says isLastPage: false" in message
    assert requests_to(hostile, "/v1/feature") == 1
    assert row_count(duckdb_path, "feature_flags") == 30


def test_a_scroll_cut_short_fails_before_the_swap_and_keeps_the_old_snapshot(
    make_sandbox: SandboxFactory, pipeline, duckdb_path: Path
):
    load(pipeline, source(make_sandbox(users=1500)).with_resources("users"))
    before = query(duckdb_path, "SELECT count(*), max(_dlt_load_id) FROM aptrinsic_data.users")[0]
    hostile = make_sandbox(users=1500, faults=Faults(serve_page_size=25))
    message = failure(pipeline, source(hostile).with_resources("users"))
    assert "after 25 of the 1500 records totalHits promised" in message
    assert query(duckdb_path, "SELECT count(*), max(_dlt_load_id) FROM aptrinsic_data.users")[0] == before
    assert before[0] == 1500


def test_a_string_total_hits_fails_naming_the_field(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=30, faults=Faults(string_total_hits=True))
    message = failure(pipeline, source(sandbox).with_resources("users"))
    assert "users (snapshot) (GET /v1/users): field totalHits is '30' (str)" in message


# -- 4. integers beyond 64 bits -------------------------------------------------------------------


@pytest.mark.parametrize("digits", ["123456789012345678901234567890", "9223372036854775808", "-9223372036854775809"])
def test_integers_beyond_int64_land_exactly_as_text(make_sandbox: SandboxFactory, pipeline, duckdb_path, digits):
    sandbox = make_sandbox(users=20, faults=Faults(huge_integer=digits))
    load(pipeline, source(sandbox).with_resources("users"))
    assert query(duckdb_path, "SELECT DISTINCT huge_number__v_text FROM aptrinsic_data.users") == [(digits,)]
    types = query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'aptrinsic_data' "
        "AND table_name = 'users' AND column_name LIKE 'huge%'",
    )
    assert types == [("VARCHAR",)], "one exact text column, no DOUBLE"


# -- 5. an event_id that moves between days -------------------------------------------------------


def _first_event_id(sandbox: Sandbox, day: dt.date) -> str:
    answer = requests.get(
        f"{sandbox.base_url}/events/lead",
        params={"filter": f"date>={ms(day)};date<{ms(day) + DAY_MS}", "sort": "date", "pageSize": 1},
        headers={"X-APTRINSIC-API-KEY": API_KEY},
        timeout=10,
    )
    return answer.json()["results"][0]["eventId"]


def test_the_day_that_loses_a_moved_event_does_not_stay_green(defs, ops):
    o = ops(users=30, events_per_day=20)
    first, second = "2026-03-10", "2026-03-11"
    assert o.run(defs, "aptrinsic_daily_events", partition_key=first).success
    clean = o.run(defs, "aptrinsic_daily_events", partition_key=second)
    # Freshness checks judge the calendar (these March days leave yesterday missing), not the load.
    loads = [e for e in clean.get_asset_check_evaluations() if e.check_name != "freshness_check"]
    assert clean.success and loads and all(e.passed for e in loads)
    moved = _first_event_id(o.sandbox, dt.date(2026, 3, 10))
    o.sandbox.faults.update(event_id_alias={_first_event_id(o.sandbox, dt.date(2026, 3, 11)): moved})
    result = o.run(defs, "aptrinsic_daily_events", partition_key=second)
    lead = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "events_lead"}
    assert not lead["rows_match_api"].passed
    detail = lead["rows_match_api"].metadata["detail"].value
    assert "[2026-03-10T00:00:00+00:00, 2026-03-11T00:00:00+00:00)" in detail and "Re-run those days" in detail
    others = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[-1] != "events_lead" and e.check_name != "freshness_check"
    ]
    assert others and all(e.passed for e in others)


# -- 6. keys --------------------------------------------------------------------------------------

BAD_KEYS = {
    "newline": "hostile-key-41c7\nX-Injected: 1",
    "surrounding-space": " hostile-key-41c7 ",
    "non-ascii": "hostile-key-41c7€",
}


@pytest.mark.parametrize("kind", list(BAD_KEYS))
def test_a_malformed_key_fails_at_start_naming_the_setting_and_lands_in_no_file(
    defs, ops, monkeypatch: pytest.MonkeyPatch, kind
):
    o = ops(users=10)
    monkeypatch.setenv("APTRINSIC_API_KEY", BAD_KEYS[kind])
    result = o.run(defs, "aptrinsic_snapshots")
    assert not result.success
    text = failure_text(result)
    assert "APTRINSIC_API_KEY" in text and "The value is not shown here" in text
    assert "hostile-key-41c7" not in text
    assert o.sandbox.stats.snapshot()["total_requests"] == 0
    assert not files_holding("hostile-key-41c7", [o.root])


def test_a_key_the_api_echoes_back_is_scrubbed_from_every_message_and_file(defs, ops, monkeypatch):
    o = ops(users=10, faults=Faults(echo_key_in_errors=True))
    echoed = "wrong-key-5d2e9b"
    monkeypatch.setenv("APTRINSIC_API_KEY", echoed)
    result = o.run(defs, "aptrinsic_snapshots")
    assert not result.success
    text = failure_text(result)
    assert "answered 401" in text and "***" in text and echoed not in text
    assert o.sandbox.stats.snapshot()["statuses"] == {"401": o.sandbox.stats.snapshot()["total_requests"]}
    assert not files_holding(echoed, [o.root])


TERMINAL_CASES = {
    "malformed-key": (BAD_KEYS["newline"], Faults(), "APTRINSIC_API_KEY"),
    "echoed-key": ("wrong-key-5d2e9b", Faults(echo_key_in_errors=True), "answered 401"),
}
ENTRY_POINTS = {
    "dagster-cli": [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "aptrinsic_dagster.definitions",
                    "--select", "aptrinsic/accounts"],
    "plain-script": [sys.executable, str(ROOT / "aptrinsic_pipeline.py"), "--start", DAY.isoformat(), "--end",
                     (DAY + dt.timedelta(days=1)).isoformat(), "--no-preferences"],
}  # fmt: skip


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", list(TERMINAL_CASES))
def test_the_key_reaches_neither_the_terminal_nor_any_file(make_sandbox: SandboxFactory, tmp_path: Path, case, entry):
    """What an operator runs, as a subprocess: its stdout and stderr, and every file it wrote (its
    working folder, HOME, TMPDIR, DAGSTER_HOME, dlt's folders, the warehouse), hold no trace of the key."""
    key, faults, expected = TERMINAL_CASES[case]
    secret = key.split("\n")[0]
    sandbox = make_sandbox(users=10, accounts=3, events_per_day=10, faults=faults)
    dirs = {name: tmp_path / name for name in ("work", "home", "tmp", "dagster_home")}
    for folder in dirs.values():
        folder.mkdir()
    env = {
        **os.environ,
        "APTRINSIC_API_KEY": key,
        "APTRINSIC_BASE_URL": sandbox.base_url,
        "APTRINSIC_DUCKDB_PATH": str(tmp_path / "aptrinsic.duckdb"),
        "APTRINSIC_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "HOME": str(dirs["home"]),
        "TMPDIR": str(dirs["tmp"]),
        "DAGSTER_HOME": str(dirs["dagster_home"]),
        "DLT_PROJECT_DIR": str(ROOT),
        "PYTHONPATH": str(ROOT),
    }
    ran = subprocess.run(ENTRY_POINTS[entry], cwd=dirs["work"], env=env, capture_output=True, timeout=300)
    terminal = (ran.stdout + ran.stderr).decode(errors="replace")
    assert ran.returncode != 0 and expected in terminal, terminal[-3000:]
    assert secret not in terminal
    assert not files_holding(secret, [tmp_path])
    if case == "echoed-key":
        assert "***" in terminal and sandbox.stats.snapshot()["statuses"].get("401", 0) >= 1
    else:
        assert sandbox.stats.snapshot()["total_requests"] == 0


# -- 7. messages ----------------------------------------------------------------------------------


def test_a_null_primary_key_fails_naming_table_window_endpoint_and_field(make_sandbox: SandboxFactory, pipeline):
    sandbox = make_sandbox(users=30, events_per_day=30, faults=Faults(null_field="eventId"))
    message = failure(pipeline, source(sandbox).with_resources("events_custom"))
    assert message.startswith("events_custom, window [2026-03-12T00:00:00+00:00, 2026-03-13T00:00:00+00:00)")
    assert "GET /v1/events/custom" in message and "have no eventId" in message and "event_id" in message


def test_a_lone_surrogate_lands_as_a_replacement_character_and_every_table_loads(
    make_sandbox: SandboxFactory, pipeline, duckdb_path
):
    sandbox = make_sandbox(users=30, events_per_day=30, faults=Faults(lone_surrogate=True))
    load(pipeline, source(sandbox, preferences=False))
    assert query(duckdb_path, "SELECT DISTINCT note FROM aptrinsic_data.events_custom WHERE note IS NOT NULL") == [
        ("\ufffdx",)
    ]
    assert row_count(duckdb_path, "users") == 30


def test_429_exhaustion_says_how_many_attempts_and_how_long(
    make_sandbox: SandboxFactory, pipeline, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    sandbox = make_sandbox(users=10, faults=Faults(rate_429=1.0, retry_after=0.1))
    message = failure(pipeline, source(sandbox).with_resources("users"))
    assert message.startswith("users (snapshot) (GET /v1/users): gave up after 3 attempts over")
    assert "429" in message and "request_max_attempts" in message and "rate_limit" in message
    assert requests_to(sandbox, "/v1/users") == 3


def test_sandbox_knobs_are_settable_over_http(sandbox: Sandbox):
    knobs = {"repeat_scroll": True, "serve_page_size": 25, "huge_integer": "1" * 30, "event_id_alias": {"a": "b"}}
    answer = requests.post(f"{sandbox.root_url}/_sandbox/faults", data=orjson.dumps(knobs), timeout=10)
    assert answer.status_code == 200 and {k: answer.json()[k] for k in knobs} == knobs


# -- fixtures -------------------------------------------------------------------------------------


class Ops:
    """A deployment below one folder (Dagster storage with compute logs, dlt dirs, DuckDB file)."""

    def __init__(self, root: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.sandbox = root, sandbox
        self.duckdb_path = root / "aptrinsic.duckdb"
        for name, value in {
            "APTRINSIC_API_KEY": API_KEY,
            "APTRINSIC_BASE_URL": sandbox.base_url,
            "APTRINSIC_DUCKDB_PATH": str(self.duckdb_path),
            "APTRINSIC_PIPELINES_DIR": str(root / "pipelines"),
        }.items():
            monkeypatch.setenv(name, value)
        (root / "dagster_home").mkdir(exist_ok=True)
        self.instance = dg.DagsterInstance.local_temp(tempdir=str(root / "dagster_home"))

    def run(self, defs: dg.Definitions, job: str, **kwargs) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def(job).execute_in_process(instance=self.instance, raise_on_error=False, **kwargs)


@pytest.fixture
def ops(tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch):
    def make(**sandbox_args) -> Ops:
        (tmp_path / "deployment").mkdir(exist_ok=True)
        return Ops(tmp_path / "deployment", make_sandbox(**sandbox_args), monkeypatch)

    return make
