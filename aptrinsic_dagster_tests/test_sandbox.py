"""The sandbox against the vendor contract, over real HTTP."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from aptrinsic_sandbox import Faults, Sandbox

from .helpers import API_KEY, DAY_MS, END_DATE, SandboxFactory, ms

HEADERS = {"X-APTRINSIC-API-KEY": API_KEY}
END_MS = ms(END_DATE)

# (path, record key, paging, default page size, maximum page size), from the contract.
CONTRACT = [
    ("/v1/users", "users", "scroll", 25, 1000),
    ("/v1/accounts", "accounts", "scroll", 25, 1000),
    ("/v1/events/custom", "customEvents", "scroll", 25, 1000),
    ("/v1/events/pageView", "results", "scroll", 25, 1000),
    ("/v1/events/session", "sessionInitializedEvents", "scroll", 25, 1000),
    ("/v1/events/identify", "identifyEvents", "scroll", 25, 1000),
    ("/v1/events/feature_match", "featureMatchEvents", "scroll", 25, 1000),
    ("/v1/events/segment_match", "featureMatchEvents", "scroll", 25, 1000),
    ("/v1/events/engagementView", "results", "scroll", 25, 1000),
    ("/v1/events/email", "results", "scroll", 25, 1000),
    ("/v1/events/lead", "results", "scroll", 25, 1000),
    ("/v1/events/formSubmit", "results", "scroll", 25, 1000),
    ("/v1/survey/responses", "results", "scroll", 25, 1000),
    ("/v1/feature", "features", "page", 25, 200),
    ("/v1/segment", "segments", "page", 25, 200),
    ("/v1/engagement", "engagements", "page", 200, 500),
    ("/v1/articles", "articleExternalViewList", "page", 200, 500),
    ("/v1/kcbot", "kcList", "page", 200, 500),
]
EVENT_PATHS = [p for p, *_ in CONTRACT if "/events/" in p or "survey" in p]
WEEK = f"date>={END_MS - 7 * DAY_MS};date<{END_MS}"


def get(sandbox: Sandbox, path: str, headers: dict | None = None, **params: object) -> requests.Response:
    return requests.get(
        sandbox.root_url + path, params=params, headers=HEADERS if headers is None else headers, timeout=10
    )


def scroll_all(sandbox: Sandbox, path: str, key: str, page_size: int, **params: object) -> list[dict]:
    """Scroll the way the contract says: until a page is shorter than the page size."""
    records: list[dict] = []
    body = get(sandbox, path, pageSize=page_size, **params).json()
    while True:
        records.extend(body[key])
        assert body["scrollId"] is not None, "the contract's scroll ids are never null"
        if len(body[key]) < page_size:
            return records
        body = get(sandbox, path, pageSize=page_size, scrollId=body["scrollId"]).json()


@pytest.mark.parametrize(("path", "key", "paging", "default", "maximum"), CONTRACT)
def test_record_key_paging_shape_and_default_page_size(sandbox: Sandbox, path, key, paging, default, maximum):
    params = {"filter": WEEK} if path in EVENT_PATHS else {}
    body = get(sandbox, path, **params).json()
    assert isinstance(body[key], list) and body[key]
    assert len(body[key]) == min(default, sandbox.count(path, END_MS - 7 * DAY_MS, END_MS))
    if paging == "scroll":
        assert set(body) == {key, "totalHits", "scrollId"}
    else:
        assert set(body) == {key, "pageNumber", "isLastPage"} and body["pageNumber"] == 0


@pytest.mark.parametrize(("path", "key", "maximum"), [(p, k, m) for p, k, _, _, m in CONTRACT])
def test_page_size_outside_the_contract_is_400_never_clamped(sandbox: Sandbox, path, key, maximum):
    params = {"filter": WEEK} if path in EVENT_PATHS else {}
    for bad in (maximum + 1, 0, -5, "ten"):
        response = get(sandbox, path, pageSize=bad, **params)
        assert response.status_code == 400, (path, bad)
        assert response.json()["externalapierror"]["status"] == "BAD_REQUEST"
    assert get(sandbox, path, pageSize=maximum, **params).status_code == 200


def test_unpaged_endpoints_and_bare_attribute_arrays(sandbox: Sandbox):
    integrations = get(sandbox, "/v1/admin/monitoring/integrations").json()
    assert set(integrations) == {"integrationStatuses"} and integrations["integrationStatuses"]
    for model in ("user", "account"):
        body = get(sandbox, f"/v1/admin/model/{model}/attributes").json()
        assert isinstance(body, list) and {"apiName", "type", "origin"} <= set(body[0])
    assert get(sandbox, "/v1/admin/model/widget/attributes").status_code == 404


@pytest.mark.parametrize(
    ("path", "key", "page_size"),
    [
        ("/v1/users", "users", 70),
        ("/v1/events/pageView", "results", 97),
        ("/v1/survey/responses", "results", 1000),
    ],
)
def test_scroll_to_the_end_yields_exactly_total_hits(make_sandbox: SandboxFactory, path, key, page_size):
    sandbox = make_sandbox(users=1234, events_per_day=200)
    params = {"filter": WEEK} if path in EVENT_PATHS else {}
    first = get(sandbox, path, pageSize=page_size, **params).json()
    records = scroll_all(sandbox, path, key, page_size, **params)
    ids = [r.get("eventId") or r["identifyId"] for r in records]
    assert len(ids) == first["totalHits"] == len(set(ids))
    assert first["totalHits"] == sandbox.count(path, *((END_MS - 7 * DAY_MS, END_MS) if params else ()))


def test_last_page_of_an_exact_multiple_is_followed_by_an_empty_page(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(users=300)
    body = get(sandbox, "/v1/users", pageSize=100).json()
    pages = [len(body["users"])]
    while len(body["users"]) == 100:
        body = get(sandbox, "/v1/users", pageSize=100, scrollId=body["scrollId"]).json()
        pages.append(len(body["users"]))
    assert pages == [100, 100, 100, 0] and body["scrollId"] and body["totalHits"] == 300


def test_unknown_scroll_id_is_400(sandbox: Sandbox):
    response = get(sandbox, "/v1/users", scrollId="not-a-scroll")
    assert response.status_code == 400
    assert "scrollId" in response.json()["externalapierror"]["message"]


def test_page_number_paging_ends_on_is_last_page(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(features=45)
    seen, number = [], 0
    while True:
        body = get(sandbox, "/v1/feature", pageSize=20, pageNumber=number).json()
        assert body["pageNumber"] == number
        seen += [f["id"] for f in body["features"]]
        if body["isLastPage"]:
            break
        number += 1
    assert (number, len(seen), len(set(seen))) == (2, 45, 45)


def test_windows_are_half_open_and_a_midnight_event_lands_in_exactly_one(sandbox: Sandbox):
    midnight = END_MS - 2 * DAY_MS  # data day 12 of 14; every third day opens with an event at 00:00:00.000
    at_midnight = get(sandbox, "/v1/events/custom", pageSize=5, filter=f"date>={midnight};date<{midnight + 1}")
    assert [e["date"] for e in at_midnight.json()["customEvents"]] == [midnight]
    before = scroll_all(
        sandbox,
        "/v1/events/custom",
        "customEvents",
        1000,
        filter=f"date>={midnight - DAY_MS};date<{midnight}",
    )
    after = scroll_all(
        sandbox,
        "/v1/events/custom",
        "customEvents",
        1000,
        filter=f"date>={midnight};date<{midnight + DAY_MS}",
    )
    assert all(e["date"] < midnight for e in before) and all(e["date"] >= midnight for e in after)
    both = scroll_all(
        sandbox,
        "/v1/events/custom",
        "customEvents",
        1000,
        filter=f"date>={midnight - DAY_MS};date<{midnight + DAY_MS}",
    )
    assert len(before) + len(after) == len(both)


def test_iso_dates_inclusive_bounds_and_date_range_params_agree(sandbox: Sandbox):
    start, end = END_MS - 2 * DAY_MS, END_MS - DAY_MS
    by_ms = get(sandbox, "/v1/events/custom", filter=f"date>={start};date<{end}").json()["totalHits"]
    by_iso = get(
        sandbox, "/v1/events/custom", filter="date>=2026-03-13T00:00:00Z;date<2026-03-14T00:00:00.000Z"
    ).json()["totalHits"]
    by_range = get(sandbox, "/v1/events/custom", dateRangeStart=start, dateRangeEnd=end).json()["totalHits"]
    inclusive = get(sandbox, "/v1/events/custom", filter=f"date>={start};date<={end - 1}").json()["totalHits"]
    exclusive_start = get(sandbox, "/v1/events/custom", filter=f"date>{start - 1};date<{end}").json()["totalHits"]
    assert (
        by_ms
        == by_iso
        == by_range
        == inclusive
        == exclusive_start
        == sandbox.count("/v1/events/custom", start, end)
        > 0
    )


def test_no_window_means_the_last_day_before_now(make_sandbox: SandboxFactory):
    now = END_MS - DAY_MS // 2
    sandbox = make_sandbox(now_ms=now)
    body = get(sandbox, "/v1/events/lead", pageSize=1000).json()
    assert body["totalHits"] == sandbox.count("/v1/events/lead", now - DAY_MS, now)
    assert all(now - DAY_MS <= e["date"] < now for e in body["results"])


def test_window_over_190_days_is_400_with_the_api_message(sandbox: Sandbox):
    ok = get(sandbox, "/v1/events/session", filter=f"date>={END_MS - 190 * DAY_MS};date<{END_MS}")
    assert ok.status_code == 200
    too_long = get(sandbox, "/v1/events/session", filter=f"date>={END_MS - 190 * DAY_MS - 1};date<{END_MS}")
    assert too_long.status_code == 400
    assert too_long.json() == {
        "externalapierror": {
            "status": "BAD_REQUEST",
            "message": "Exceeded date range190days",
            "debugMessage": None,
            "subErrors": None,
        }
    }
    open_ended = get(sandbox, "/v1/events/session", filter=f"date>={END_MS - 200 * DAY_MS}")
    assert open_ended.json()["externalapierror"]["message"] == "Exceeded date range190days"


def test_sort_and_equality_filters(sandbox: Sandbox):
    desc = get(sandbox, "/v1/events/pageView", pageSize=50, filter=WEEK, sort="-date").json()["results"]
    assert [e["date"] for e in desc] == sorted((e["date"] for e in desc), reverse=True)
    assert desc[0]["date"] == max(
        e["date"] for e in scroll_all(sandbox, "/v1/events/pageView", "results", 1000, filter=WEEK)
    )
    user = desc[0]["identifyId"]
    mine = scroll_all(sandbox, "/v1/events/pageView", "results", 1000, filter=f"{WEEK};identifyId=={user.upper()}")
    assert mine and {e["identifyId"] for e in mine} == {user}
    assert get(sandbox, "/v1/events/email", filter=WEEK, sort="accountId").status_code == 400


def test_auth_errors_use_the_externalapierror_envelope(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(forbidden_keys=("read-less",))
    for headers in ({}, {"X-APTRINSIC-API-KEY": "wrong"}):
        response = get(sandbox, "/v1/users", headers=headers)
        assert response.status_code == 401
        assert response.json()["externalapierror"]["status"] == "UNAUTHORIZED"
    forbidden = get(sandbox, "/v1/user/preferences/user-0000001", headers={"X-APTRINSIC-API-KEY": "read-less"})
    assert forbidden.status_code == 403 and forbidden.json()["externalapierror"]["status"] == "FORBIDDEN"


def test_single_records_and_404_envelope(sandbox: Sandbox):
    user = get(sandbox, "/v1/users/user-0000007").json()
    assert user["identifyId"] == "user-0000007"
    account = get(sandbox, f"/v1/accounts/{user['accountId'] or 'acc-000001'}").json()
    assert account["id"].startswith("acc-")
    prefs = get(sandbox, "/v1/user/preferences/user-0000007").json()
    assert set(prefs) == {"guidedTours", "onboardingBot", "productUpdates", "surveys", "trackUsage"}
    missing = get(sandbox, "/v1/users/absent-id")
    assert missing.status_code == 404
    assert missing.json()["externalapierror"]["message"] == "User was not found for parameters {id=absent-id}"


def test_references_hold(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(users=50, accounts=7, features=9, segments=4, engagements=10)
    users = {u["identifyId"]: u for u in scroll_all(sandbox, "/v1/users", "users", 1000)}
    accounts = {a["id"] for a in scroll_all(sandbox, "/v1/accounts", "accounts", 1000)}
    features = {f["id"] for f in get(sandbox, "/v1/feature", pageSize=200).json()["features"]}
    engagements = {e["id"]: e for e in get(sandbox, "/v1/engagement").json()["engagements"]}
    assert {u["accountId"] for u in users.values()} - {""} <= accounts
    sessions = scroll_all(sandbox, "/v1/events/session", "sessionInitializedEvents", 1000, filter=WEEK)
    assert {e["identifyId"] for e in sessions} <= set(users)
    assert all(e["accountId"] == users[e["identifyId"]]["accountId"] for e in sessions)
    matches = scroll_all(sandbox, "/v1/events/feature_match", "featureMatchEvents", 1000, filter=WEEK)
    assert {e["featureId"] for e in matches} <= features
    surveys = scroll_all(sandbox, "/v1/survey/responses", "results", 1000, filter=WEEK)
    assert surveys and all("SURVEY" in engagements[s["engagementId"]]["type"] for s in surveys)


def test_events_happen_inside_a_session_of_their_user_and_day(make_sandbox: SandboxFactory):
    # What the marts' feature adoption (share of DAU) and sessions per user rest on.
    sandbox = make_sandbox(users=2000, events_per_day=40)
    sessions = scroll_all(sandbox, "/v1/events/session", "sessionInitializedEvents", 1000, filter=WEEK)
    started = {}  # (day, sessionId) -> (user, when the session started)
    first = {}  # day -> when its first session started
    for s in sessions:
        day = s["date"] // DAY_MS
        started[day, s["sessionId"]] = min(started.get((day, s["sessionId"]), (s["identifyId"], s["date"])),
                                           (s["identifyId"], s["date"]))  # fmt: skip
        first[day] = min(first.get(day, s["date"]), s["date"])
    for path, key in [("/v1/events/feature_match", "featureMatchEvents"), ("/v1/events/pageView", "results")]:
        events = scroll_all(sandbox, path, key, 1000, filter=WEEK)
        assert len(events) > 200
        outside = [e for e in events if started.get((e["date"] // DAY_MS, e["sessionId"]), ("",))[0] != e["identifyId"]]
        assert not outside, f"{path}: {len(outside)} of {len(events)} events in no session of their user that day"
        late = [e for e in events if started[(e["date"] // DAY_MS, e["sessionId"])][1] > e["date"]]
        # Only an event before the day's first session may precede the session it belongs to.
        assert all(e["date"] < first[e["date"] // DAY_MS] for e in late), f"{path}: an event before its session"
        assert len(late) < len(events) / 10
    emails = scroll_all(sandbox, "/v1/events/email", "results", 1000, filter=WEEK)
    assert emails and all("sessionId" not in e for e in emails), "an email is sent outside any session"


def test_realistic_shapes(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(users=300)
    users = scroll_all(sandbox, "/v1/users", "users", 1000)
    keysets = {frozenset(u["customAttributes"]) for u in users if u["customAttributes"]}
    assert len(keysets) > 5, "customAttributes keys vary between records"
    assert any(u["customAttributes"] is None for u in users) and any(u["lastSeenDate"] == 0 for u in users)
    assert any(u["phone"] == "" for u in users) and any(not u["firstName"].isascii() for u in users)
    assert all(isinstance(u["location"], dict | None) and isinstance(u["propertyKeys"], list) for u in users)
    pages = scroll_all(sandbox, "/v1/events/pageView", "results", 1000, filter=WEEK)
    assert all(isinstance(p["date"], int) and isinstance(p["queryParams"], dict) for p in pages)
    articles = get(sandbox, "/v1/articles").json()["articleExternalViewList"]
    assert all(a["releaseDate"].endswith("Z") for a in articles)


def test_schema_drift_knobs(make_sandbox: SandboxFactory):
    plain = get(make_sandbox(users=200), "/v1/users", pageSize=200).json()["users"]
    drifted = get(
        make_sandbox(users=200, extra_custom_attribute="region", seats_as_string=True),
        "/v1/users",
        pageSize=200,
    ).json()["users"]
    assert not any("region" in (u["customAttributes"] or {}) for u in plain)
    assert all("region" in u["customAttributes"] for u in drifted if u["customAttributes"] is not None)
    assert {type(u["customAttributes"]["seats"]) for u in plain if "seats" in (u["customAttributes"] or {})} == {int}
    assert {type(u["customAttributes"]["seats"]) for u in drifted if "seats" in (u["customAttributes"] or {})} == {str}


def test_same_seed_same_bytes_other_seed_other_bytes(make_sandbox: SandboxFactory):
    def page(sandbox: Sandbox) -> bytes:
        first = get(sandbox, "/v1/events/email", pageSize=300, filter=WEEK)
        second = get(sandbox, "/v1/events/email", pageSize=300, scrollId=first.json()["scrollId"])
        return first.content + second.content + get(sandbox, "/v1/users", pageSize=100).content

    assert page(make_sandbox(seed=7)) == page(make_sandbox(seed=7)) != page(make_sandbox(seed=8))


def test_count_over_http_and_in_process_agree(sandbox: Sandbox):
    params = {"endpoint": "/v1/events/identify", "start": END_MS - 5 * DAY_MS, "end": "2026-03-14T00:00:00Z"}
    body = requests.get(sandbox.root_url + "/_sandbox/count", params=params, timeout=5).json()
    assert body["count"] == sandbox.count("/v1/events/identify", END_MS - 5 * DAY_MS, END_MS - DAY_MS) > 0
    assert sandbox.count("/v1/users") == sandbox.config.data.users


# -- faults -------------------------------------------------------------------------------------


def test_fault_429_rate_without_and_with_retry_after(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(rate_429=1.0))
    response = get(sandbox, "/v1/users")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert response.json()["externalapierror"]["message"] == "Rate limit exceeded"
    sandbox.faults.update(retry_after=2)
    assert get(sandbox, "/v1/users").headers["Retry-After"] == "2"


def test_fault_429_bursts(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(burst_429_every=3, burst_429_length=2))
    codes = [get(sandbox, "/v1/segment").status_code for _ in range(10)]
    assert codes == [200, 200, 200, 429, 429, 200, 200, 200, 429, 429]


def test_fault_rates_are_roughly_as_asked(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(rate_5xx=0.3, rate_cap=0))
    codes = [get(sandbox, "/v1/segment").status_code for _ in range(200)]
    assert 30 <= codes.count(503) <= 90 and codes.count(200) == 200 - codes.count(503)


def test_fault_connection_reset_mid_response(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(rate_reset=1.0))
    with pytest.raises(
        (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError), match="reset by peer"
    ):
        get(sandbox, "/v1/users", pageSize=500)
    assert sandbox.stats.snapshot()["statuses"] == {"0": 1}


def test_fault_malformed_json(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(rate_malformed=1.0))
    response = get(sandbox, "/v1/users", pageSize=100)
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_fault_400_uses_the_envelope(make_sandbox: SandboxFactory):
    response = get(make_sandbox(faults=Faults(rate_400=1.0)), "/v1/users")
    assert response.status_code == 400 and response.json()["externalapierror"]["status"] == "BAD_REQUEST"


def test_fault_dropped_records_keep_total_hits(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(users=1000, faults=Faults(drop_rate=0.1))
    body = get(sandbox, "/v1/users", pageSize=1000).json()
    assert body["totalHits"] == 1000 and 800 < len(body["users"]) < 1000


def test_fault_latency_fixed_and_jitter(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(latency_ms=150, latency_jitter_ms=50))
    started = time.perf_counter()
    assert get(sandbox, "/v1/segment").status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_rate_cap_answers_429_and_stats_show_the_peak(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(faults=Faults(rate_cap=20))
    codes = [get(sandbox, "/v1/segment").status_code for _ in range(40)]
    assert codes.count(429) >= 1 and codes[:20] == [200] * 20
    stats = requests.get(sandbox.root_url + "/_sandbox/stats", timeout=5).json()
    assert stats["requests"]["/v1/segment"] == 40 and stats["peak_rps"] >= 21
    assert stats["statuses"]["429"] == codes.count(429)


def test_faults_can_be_changed_over_http(sandbox: Sandbox):
    url = sandbox.root_url + "/_sandbox/faults"
    assert requests.post(url, json={"rate_5xx": 1.0}, timeout=5).json()["rate_5xx"] == 1.0
    assert get(sandbox, "/v1/segment").status_code == 503
    assert requests.post(url, json={"no_such_knob": 1}, timeout=5).status_code == 400


# -- the command line ---------------------------------------------------------------------------


def test_cli_help_documents_every_knob():
    out = subprocess.run(
        [sys.executable, "-m", "aptrinsic_sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--port",
        "--api-key",
        "--seed",
        "--users",
        "--accounts",
        "--events-per-day",
        "--days",
        "--rate-429",
        "--rate-400",
        "--burst-429-every",
        "--retry-after",
        "--rate-5xx",
        "--rate-reset",
        "--drop-rate",
        "--latency-ms",
        "--latency-jitter-ms",
        "--rate-cap",
        "--deleted-user",
        "--late-day",
        "--late-fraction",
        "--late-after-s",
    ):
        assert flag in out


def test_cli_serves_prints_base_url_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "aptrinsic_sandbox", "--api-key", "k", "--users", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        body = requests.get(base_url + "/users", headers={"X-APTRINSIC-API-KEY": "k"}, timeout=5).json()
        assert body["totalHits"] == 10
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def _events(sandbox: Sandbox, day: dt.date) -> list[dict]:
    window = f"date>={ms(day)};date<{ms(day) + DAY_MS}"
    body = get(sandbox, "/v1/events/session", filter=window, pageSize=1000).json()
    assert body["totalHits"] == len(body["sessionInitializedEvents"])
    return body["sessionInitializedEvents"]


def test_a_deleted_user_loses_every_event_in_pages_and_counts(make_sandbox: SandboxFactory):
    sandbox = make_sandbox(users=20, events_per_day=200)
    day = END_DATE - dt.timedelta(days=2)
    before = _events(sandbox, day)
    erased = before[0]["identifyId"]
    sandbox.faults.update(deleted_users=[erased])
    after = _events(sandbox, day)
    assert {e["eventId"] for e in after} == {e["eventId"] for e in before if e["identifyId"] != erased}
    assert len(after) < len(before)
    assert sandbox.count("/v1/events/session", ms(day), ms(day) + DAY_MS) == len(after)
    url = f"{sandbox.root_url}/_sandbox/count"
    params = {"endpoint": "/v1/events/session", "start": ms(day), "end": ms(day) + DAY_MS}
    assert requests.get(url, params=params, timeout=10).json()["count"] == len(after)


def test_late_events_appear_when_the_knob_is_cleared_or_after_a_time(make_sandbox: SandboxFactory):
    day = END_DATE - dt.timedelta(days=3)
    sandbox = make_sandbox(users=50, events_per_day=400, faults=Faults(late_days=(day.isoformat(),), late_fraction=0.2))
    early = _events(sandbox, day)
    other_day = _events(sandbox, day - dt.timedelta(days=1))
    sandbox.faults.update(late_days=[])
    settled = _events(sandbox, day)
    assert {e["eventId"] for e in early} < {e["eventId"] for e in settled}
    assert 0.1 < 1 - len(early) / len(settled) < 0.3  # about the fraction asked for
    assert _events(sandbox, day - dt.timedelta(days=1)) == other_day  # other days are untouched
    # Late by a time: hidden now, served once the delay has passed.
    requests.post(f"{sandbox.root_url}/_sandbox/faults", json={"late_days": [day.isoformat()], "late_after_s": 0.5},
                  timeout=10)  # fmt: skip
    assert len(_events(sandbox, day)) == len(early)
    time.sleep(0.6)
    assert len(_events(sandbox, day)) == len(settled)
