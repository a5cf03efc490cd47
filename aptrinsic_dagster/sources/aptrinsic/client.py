"""HTTP for the Aptrinsic API through dlt's REST client: paginators, retries, a rate cap, deadlines, errors.

dlt pages (``RESTClient.paginate``) and retries (its session: 429, 5xx, resets, timeouts). Added here
only what dlt lacks:
- a wall-clock deadline per response (``response_deadline`` seconds for headers and body together;
  dlt's ``request_timeout`` bounds each socket read, so a body trickled a byte at a time never ends).
  A response that misses it is a ``ReadTimeout``, which dlt retries like any other timeout. It holds
  through a proxy (``HTTP(S)_PROXY``) too: requests builds those connections elsewhere;
- slots for the pages in memory (``_PageSlots``): a page's body is read only once one of
  ``BODY_SLOTS`` is free (the deadline's clock stands still while it waits), and parsed only in one
  of ``PARSE_SLOTS``, so the page bodies in memory do not grow with the requests in flight;
- a budget per load (``RunBudget``): after ``max_run_seconds``, or once ``cancel_requests()`` is
  called (a Dagster run being terminated), no request is sent and none is retried;
- paginators that prove progress (a repeated ``scrollId``, more pages than ``totalHits`` allows, a
  short page the API does not call the last: each a clear error) and check the fields they read;
- errors that name the table, endpoint, window and field, never the API key.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import heapq
import itertools
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import HTTPError, PreparedRequest, Request, RequestException, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ReadTimeout
from urllib3 import PoolManager
from urllib3.connectionpool import HTTPConnectionPool

from .api_counts import ApiCounts
from .errors import AptrinsicAuthError, AptrinsicDeadlineError, AptrinsicError, AptrinsicPagingError
from .settings import API_KEY_HEADER, REGIONS

logger = logging.getLogger("aptrinsic")

DEFAULT_RESPONSE_DEADLINE = 120.0  # s per attempt, headers and body: a 1.5 MB page at >= 12.5 KB/s
DEFAULT_MAX_RUN_SECONDS = 6 * 3600.0  # s per load (one source); Dagster's run timeout is the outer bound

_generation = [0]  # bumped by cancel_requests(): budgets made before it are cancelled


def cancel_requests() -> None:
    """Stop every load started so far in this process: none of them sends a new request or retry
    (a terminated run). Loads whose source is built afterwards are not affected."""
    _generation[0] += 1


class RunBudget:
    """The wall-clock budget of one load, and its cancellation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._generation = _generation[0]

    def check(self) -> None:
        if self._generation != _generation[0]:
            raise AptrinsicDeadlineError("the run was cancelled; no further requests are sent")
        if time.monotonic() > self._deadline:
            raise AptrinsicDeadlineError(
                f"the load ran out of its time budget of {self.seconds:g} s (max_run_seconds); no further "
                "requests are sent. Load a shorter window, or raise max_run_seconds if the API is just slow."
            )


class RateLimiter:
    """At most ``rate`` requests in any one second, spaced ``1 / rate`` apart, across all threads of a load.

    Spacing alone is not a cap: a thread that wakes late for its turn (another thread holding the
    GIL, turning a page into Arrow) sends together with the threads after it, and the sandbox, which
    counts a sliding second as the API does, saw up to 170 requests in a second at 150/s. So the
    requests that have left in the last second are counted too, when each leaves, and a request
    that would make more than ``rate`` of them waits.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._per_second = max(1, math.floor(rate))
        self._next = 0.0
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            time.sleep(at - now)
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - 1.0:
                    self._sent.popleft()
                if len(self._sent) < self._per_second:
                    self._sent.append(now)
                    return
                until = self._sent[0] + 1.0
            time.sleep(until - now)


class _Watchdog:
    """One thread for the deadlines of every attempt in the process (a timer thread per attempt cost a
    thread start per request: 0.16 ms against 0.01 ms)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._compact_at = 1024

    def add(self, watch: _Watch) -> None:
        with self._wake:
            if len(self._heap) >= self._compact_at:  # finished attempts wait for their deadline otherwise
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._compact_at = max(1024, 2 * len(self._heap))
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aptrinsic-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watch:
                self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                watch = heapq.heappop(self._heap)[2]
                again = watch.fire()
                if again is not None:  # paused, or its deadline moved on
                    heapq.heappush(self._heap, (again, next(self._order), watch))


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog.__init__)  # a forked child has none of its parent's threads


class _Watch:
    """Shuts the socket of one attempt down when its deadline passes, ending any read in progress."""

    current = threading.local()  # the attempt on this thread; its connection attaches its socket

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.fired = self.done = False
        self._paused_at: float | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Watch:
        _Watch.current.watch = self
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done, self._sock = True, None
        _Watch.current.watch = None

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The deadline's clock stands still inside (a deadline already missed stays missed)."""
        with self._lock:
            now = time.monotonic()
            if now < self.deadline:
                self._paused_at = now
        try:
            yield
        finally:
            with self._lock:
                if self._paused_at is not None:
                    self.deadline += time.monotonic() - self._paused_at
                    self._paused_at = None

    def fire(self) -> float | None:
        """Shuts the socket down if the deadline has passed; else when to look again."""
        with self._lock:
            if self.done:
                return None
            now = time.monotonic()
            if self._paused_at is not None:
                return now + (self.deadline - self._paused_at)
            if now < self.deadline:
                return self.deadline
            self.fired = True
            self._shutdown()
            return None

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection:
    """Mixed into a connection class: hands its socket to the attempt's watch before each response."""

    def getresponse(self) -> Any:
        watch = getattr(_Watch.current, "watch", None)
        if watch is not None:
            watch.attach(self.sock)  # type: ignore[attr-defined]
        return super().getresponse()  # type: ignore[misc]


@functools.cache
def _watched_pool(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool`` with watched connections, whichever pool urllib3 picks: direct or through an HTTP
    proxy (tested); HTTPS tunnels and SOCKS pools get the same subclassing, untested."""
    if issubclass(pool.ConnectionCls, _WatchedConnection):
        return pool  # a manager requests kept from an earlier request
    connection = type(f"Watched{pool.ConnectionCls.__name__}", (_WatchedConnection, pool.ConnectionCls), {})
    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": connection})


def _watch_pools(manager: PoolManager) -> PoolManager:
    manager.pool_classes_by_scheme = {s: _watched_pool(p) for s, p in manager.pool_classes_by_scheme.items()}
    return manager


class _AptrinsicAdapter(HTTPAdapter):
    """Every attempt, retries included: the run's budget, the rate cap, then the response deadline.

    The body is read here, inside the deadline, so ``session.send`` gets it whole or a ``ReadTimeout``.
    """

    def __init__(self, limiter: RateLimiter, pool_maxsize: int, deadline: float, budget: RunBudget) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)
        self._limiter, self._deadline, self._budget = limiter, deadline, budget

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        # HTTP(S)_PROXY: requests builds a manager per proxy, with urllib3's own pools (no deadline).
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))

    def send(self, request: PreparedRequest, stream: bool = False, *args: Any, **kwargs: Any) -> Response:
        self._budget.check()
        self._limiter.wait()
        self._budget.check()
        with _Watch(self._deadline) as watch:
            try:
                response = super().send(request, True, *args, **kwargs)
                if not stream:
                    if response.status_code == 200:  # a page: its body waits in the socket for a slot
                        with watch.paused():  # the wait is this process's, not the API's
                            _page_slots.take_body()
                    try:
                        response.content  # noqa: B018 - read the body within the deadline
                    except BaseException:
                        _page_slots.drop_body()  # dlt may retry after a backoff: not with a slot held
                        raise
            except RequestException as exc:
                if not watch.fired:
                    raise
                failure: Exception = exc
            else:
                return response  # whole: the deadline may have passed just after the last byte
        path = (request.path_url or "").split("?")[0]
        raise ReadTimeout(
            f"GET {path} sent no complete answer within {self._deadline:g} s (the response deadline, "
            f"response_deadline) [{type(failure).__name__}]",
            request=request,
        )


def _raise_for_status(response: Response, *args: Any, **kwargs: Any) -> None:
    """Turn the API's answers into errors a person can act on; 429/5xx stay HTTPError (retried)."""
    if response.status_code < 400:
        return
    try:
        message = orjson.loads(response.content)["externalapierror"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text[:300]
    path = response.request.path_url.split("?")[0] if response.request else response.url
    if response.status_code in (401, 403):
        raise AptrinsicAuthError(
            f"Aptrinsic answered {response.status_code} ({message}) for GET {path}. Check the API key sent as "
            f"{API_KEY_HEADER}: set APTRINSIC_API_KEY or [sources.aptrinsic] api_key in .dlt/secrets.toml, and "
            f"make sure it has Read permission and belongs to the region of {response.url.split('/v1')[0]} "
            f"(regions: {', '.join(f'{k}={v}' for k, v in REGIONS.items())}; override with APTRINSIC_BASE_URL)."
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise HTTPError(f"{response.status_code} from GET {path}: {message}", response=response)
    raise AptrinsicError(f"Aptrinsic answered {response.status_code} for GET {path}: {message}")


# orjson turns integers beyond 64 bits into floats; such an integer has at least 19 digits (a run
# of 19 digits in a string only costs a slower, exact parse).
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any, fixed: list[int]) -> Any:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            fixed[0] += 1
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {k: _without_surrogates(v, fixed) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v, fixed) for v in value]
    return value


def parse_body(content: bytes, where: str) -> Any:
    """A page body. orjson is the fast path; the standard library parses what it cannot keep exact:
    integers beyond 64 bits (kept as Python ints, not floats) and lone UTF-16 surrogates (valid JSON
    escapes that are not text: each string holding one gets U+FFFD in its place, with a warning)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        try:
            body = json.loads(content)
        except ValueError:
            raise AptrinsicError(
                f"Aptrinsic sent malformed JSON ({exc}). Re-run; if it persists, the API or a proxy "
                "between is corrupting bodies."
            ) from None
        fixed = [0]
        body = _without_surrogates(body, fixed)
        if fixed[0]:
            logger.warning(
                "%s: %d string(s) held a lone UTF-16 surrogate (not text); each landed with U+FFFD in its place.",
                where,
                fixed[0],
            )
        return body
    if content.translate(_DIGITS).find(_LONG_NUMBER) >= 0:
        body = json.loads(content)
    return body


# Pages parsed and not yet converted, at once, in the whole process. A parsed page of 1,000 events is
# megabytes of Python objects (its Arrow table a tenth of that), and with 32 scrolls in flight dozens
# of them waited for the GIL together: 533 MB peak against 425 MB with 6 in flight, at the same speed
# (1M events, plain dlt). Parsing and converting hold the GIL, so more slots would not be faster.
# Two against four (benchmarks/memory.py at 1.0, two runs each): 410 / 413 against 414 / 416 MB, and
# 388 / 390 against 394 / 396 MB with DuckDB's 56 MB buffer.
PARSE_SLOTS = 2
# Bodies read and not yet converted: the rest wait, headers read, with their bodies in their sockets
# (the kernel's buffers). With every body read on arrival, 36 scrolls in flight held 40 bodies (22 MB
# of 1,000 events each) waiting for a parse slot. A few more than the parse slots, so that bodies
# still stream in over a slow link while pages are parsed.
BODY_SLOTS = 8


class _PageSlots:
    """The slots a thread holds while it fetches and converts one page of a walk (``page()``): a
    body slot, taken once the page's headers have arrived and before its body is read, then a parse
    slot. Both are given back when the page is converted or fails. Outside ``page()`` (one-record
    requests, ``totalHits`` probes) no slot is taken."""

    def __init__(self, bodies: int, parses: int) -> None:
        self._bodies = threading.BoundedSemaphore(bodies)
        self._parses = threading.BoundedSemaphore(parses)
        self._thread = threading.local()

    @contextlib.contextmanager
    def page(self) -> Iterator[None]:
        state = self._thread
        state.in_page, state.body, state.parse = True, False, False
        try:
            yield
        finally:
            state.in_page = False
            self.drop_body()
            if state.parse:
                state.parse = False
                self._parses.release()

    def take_body(self) -> None:
        """Before a page's body is read: waits for a body slot."""
        state = self._thread
        if getattr(state, "in_page", False) and not state.body:
            self._bodies.acquire()
            state.body = True

    def drop_body(self) -> None:
        """The body was not read after all (the attempt failed and may be retried after a backoff)."""
        state = self._thread
        if getattr(state, "body", False):
            state.body = False
            self._bodies.release()

    def take_parse(self) -> None:
        state = self._thread
        if getattr(state, "in_page", False) and not state.parse:
            self._parses.acquire()
            state.parse = True


_page_slots = _PageSlots(BODY_SLOTS, PARSE_SLOTS)


class AptrinsicRESTClient(RESTClient):
    """dlt's REST client, parsing each body once for both the records and the paginator, under a
    parse slot (``_PageSlots``)."""

    def extract_response(self, response: Response, data_selector: Any) -> list[Any]:
        _page_slots.take_parse()
        path = response.request.path_url.split("?")[0]
        body = parse_body(response.content, f"GET {path}")
        response.parsed_body = body  # type: ignore[attr-defined]
        if data_selector == "$":
            records = body
        elif isinstance(body, dict):
            records = body.get(data_selector)
        else:
            raise AptrinsicError(f"GET {path}: expected a JSON object with {data_selector!r}, got {_kind(body)}")
        if records is not None and not isinstance(records, list):
            raise AptrinsicError(f"GET {path}: {data_selector!r} is {_kind(records)}, not a list of records")
        return records or []


def _kind(value: Any) -> str:
    return f"a JSON {type(value).__name__} ({orjson.dumps(value)[:60].decode(errors='replace')})"


def _page_body(response: Response) -> dict:
    body = response.parsed_body  # type: ignore[attr-defined]
    if not isinstance(body, dict):
        raise AptrinsicPagingError(f"a page must be a JSON object, got {_kind(body)}")
    return body


class ScrollPaginator(BasePaginator):
    """Scroll paging: ``{<key>: [...], totalHits, scrollId}``; the next request adds ``scrollId``.

    Ends on a page shorter than the page size (the contract warns that ``scrollId`` may stay non-null
    on the last page). Every page must prove progress, or paging stops with an error:
    - ``totalHits`` is an integer (the first page's counts);
    - a short page comes only once ``totalHits`` records have arrived (else the API cut the scroll);
    - a ``scrollId`` is never answered again (else the scroll never ends);
    - at most ``ceil(totalHits / pageSize) + 1`` pages (the + 1: the empty page after a full last one).
    Example: pageSize=2 -> ``{"users": [a, b], "totalHits": 3, "scrollId": "s1"}``, then
    ``?scrollId=s1`` -> ``{"users": [c], "totalHits": 3, "scrollId": "s2"}`` (short: stop).
    """

    def __init__(self, page_size: int) -> None:
        super().__init__()
        self.page_size = page_size
        self.total_hits: int | None = None
        self.records = 0
        self.pages = 0
        self._scroll_id: str | None = None
        self._seen: set[str] = set()

    def init_request(self, request: Request) -> None:
        request.params["pageSize"] = self.page_size

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = _page_body(response)
        self.pages += 1
        self.records += len(data or [])
        if self.pages == 1:
            hits = body.get("totalHits")
            if type(hits) is not int or hits < 0:
                raise AptrinsicPagingError(
                    f"field totalHits is {hits!r} ({type(hits).__name__}), not a count; the contract "
                    "makes it an integer and the load cannot be verified without it."
                )
            self.total_hits = hits
        scroll_id = body.get("scrollId")
        short = len(data or []) < self.page_size
        if short or not scroll_id:
            if self.records < self.total_hits:  # type: ignore[operator]
                reason = "a short page" if short else "no scrollId"
                raise AptrinsicPagingError(
                    f"the scroll ended ({reason}: {len(data or [])} records where {self.page_size} were asked) "
                    f"after {self.records} of the {self.total_hits} records totalHits promised. The API or a proxy "
                    "cut the scroll (or ignored pageSize); nothing from this load was committed. Re-run."
                )
            self._has_next_page = False
            return
        limit = math.ceil(self.total_hits / self.page_size) + 1  # type: ignore[operator]
        if scroll_id in self._seen:
            raise AptrinsicPagingError(
                f"scrollId {str(scroll_id)[:40]!r} came back on page {self.pages}: the scroll does not advance "
                f"(totalHits {self.total_hits}, {self.records} records so far). Stopped instead of paging forever."
            )
        if self.pages >= limit:
            raise AptrinsicPagingError(
                f"page {self.pages} is full and more are offered, but totalHits {self.total_hits} at pageSize "
                f"{self.page_size} allows at most {limit} pages ({self.records} records so far). "
                "Stopped instead of paging forever."
            )
        self._seen.add(scroll_id)
        self._scroll_id = scroll_id

    def update_request(self, request: Request) -> None:
        request.params["scrollId"] = self._scroll_id


class IsLastPagePaginator(BasePaginator):
    """Zero-based page numbers that end on the API's flag: ``{<key>: [...], pageNumber, isLastPage}``.

    The flag is trusted: ``isLastPage: true`` ends paging; ``false`` on a short page is an error (the
    API ignored ``pageSize``, and the next page number would skip or repeat records); a short page ends
    paging only where the flag is missing. ``pageNumber``, when echoed, must be the one asked for.
    Example: pageSize=2 -> ``{"segments": [a, b], "pageNumber": 0, "isLastPage": false}``, then
    ``?pageNumber=1`` -> ``{"segments": [c], "pageNumber": 1, "isLastPage": true}``.
    """

    def __init__(self, page_size: int) -> None:
        super().__init__()
        self.page_size = page_size
        self.records = 0
        self._page = 0

    def init_request(self, request: Request) -> None:
        request.params.update(pageSize=self.page_size, pageNumber=0)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = _page_body(response)
        got = len(data or [])
        self.records += got
        last, number = body.get("isLastPage"), body.get("pageNumber")
        if last is not None and not isinstance(last, bool):
            raise AptrinsicPagingError(f"field isLastPage is {last!r}, not true or false (page {self._page}).")
        if number is not None and number != self._page:
            raise AptrinsicPagingError(
                f"field pageNumber is {number!r} where page {self._page} was asked: the API does not page. "
                "Stopped instead of loading repeated or skipped records."
            )
        if last is False and got < self.page_size:
            raise AptrinsicPagingError(
                f"page {self._page} holds {got} records where pageSize {self.page_size} was asked, yet says "
                f"isLastPage: false. The API (or a proxy) ignored pageSize, so the next page number would skip "
                f"or repeat records; {self.records} records so far, nothing committed. Lower page_sizes for "
                "this table to what the API serves, or re-run."
            )
        if last or (last is None and got < self.page_size):
            self._has_next_page = False
        self._page += 1

    def update_request(self, request: Request) -> None:
        request.params["pageNumber"] = self._page


def _scrub(text: str, secret: str) -> str:
    for form in {secret, repr(secret)[1:-1]}:
        if form:
            text = text.replace(form, "***")
    return text


def _chain_text(exc: BaseException) -> str:
    parts, seen = [], set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        parts.append(f"{type(node).__name__}: {node} {node.args!r}")
        node = node.__cause__ or node.__context__
    return " ".join(parts)


@dataclass
class AptrinsicClient:
    base_url: str
    api_key: str = field(repr=False)
    limiter: RateLimiter
    max_connections: int = 32
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE
    budget: RunBudget = field(default_factory=lambda: RunBudget(DEFAULT_MAX_RUN_SECONDS))
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def __post_init__(self) -> None:
        # Built once: dlt resolves its configuration for each Client (~7 ms; there are thousands of walks).
        config = self._runtime()
        # Retries, backoff and the per-read timeout are dlt's own ([runtime] request_* settings).
        self._dlt_client = Client(
            request_timeout=config.request_timeout,
            request_max_attempts=config.request_max_attempts,
            request_backoff_factor=config.request_backoff_factor,
            request_max_retry_delay=config.request_max_retry_delay,
            raise_for_status=False,
            session_attrs={"headers": {API_KEY_HEADER: self.api_key, "Accept": "application/json"}},
        )
        self._config = config
        # requests reads proxies and the CA bundle from the environment for every request (0.33 ms each:
        # 3.5 s of CPU in a 10,000-page backfill). Every request goes to one host: read them once.
        self._environment = requests.Session().merge_environment_settings(self.base_url, {}, None, None, None)
        # One connection pool for the load: walks reuse connections (no TCP or TLS handshake per walk).
        self._adapter = _AptrinsicAdapter(self.limiter, self.max_connections, self.response_deadline, self.budget)

    def rest_client(self) -> AptrinsicRESTClient:
        """A client with a session of its own; one per paging walk."""
        # dlt's Client.session is one per thread, and a walk may move between threads (subwindows.py).
        session = self._dlt_client._make_session()
        session.trust_env = False  # the environment's settings, as read in __post_init__:
        session.proxies = {**self._environment["proxies"], **session.proxies}
        if session.verify is True:
            session.verify = self._environment["verify"]
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)
        return AptrinsicRESTClient(base_url=self.base_url, session=session, config=self._config)

    @staticmethod
    def _runtime() -> RuntimeConfiguration:
        return resolve_configuration(RuntimeConfiguration())

    def pages(
        self,
        path: str,
        record_key: str | None,
        paginator: BasePaginator,
        params: dict[str, Any] | None = None,
        counts: ApiCounts | None = None,
        where: str | None = None,
        convert: Callable[[list[dict]], Any] | None = None,
    ) -> Iterator[Any]:
        """Each page's records, or what ``convert`` makes of them while the page holds its parse slot;
        ``counts`` is filled in as pages arrive. Errors start with ``where`` (the table and window) and
        the endpoint, and never hold the API key."""
        where = f"{where or 'Aptrinsic'} (GET /v1{path})"
        rest = self.rest_client()
        walk = rest.paginate(
            path,
            params=params or {},
            paginator=paginator,
            data_selector=record_key or "$",
            hooks={"response": [_raise_for_status]},
        )
        while True:
            started = time.monotonic()
            with _page_slots.page():
                try:
                    page = next(walk, None)
                except Exception as exc:
                    error = _translate(exc, self, where, started)
                    if error is None:
                        raise
                else:
                    error = None
                if error is not None:
                    raise error  # outside the except block: no __context__ holding the original text
                if page is None:
                    return
                # The suspended walk keeps its last response until the next page: its body is parsed.
                page.response._content, page.response.parsed_body = b"", None  # type: ignore[attr-defined]
                if counts is not None:
                    counts.pages += 1
                    counts.records += len(page)
                    if isinstance(paginator, ScrollPaginator):
                        counts.total_hits = paginator.total_hits
                item = list(page) if convert is None else convert(page)
                del page
            yield item

    def total_hits(self, path: str, params: dict[str, Any], where: str = "Aptrinsic") -> int:
        """``totalHits`` of a one-record page: what a scroll endpoint holds for ``params`` now."""
        where = f"{where} (GET /v1{path})"
        started = time.monotonic()
        try:
            session = self.rest_client().session
            response = session.get(self.base_url + path, params={**params, "pageSize": 1}, hooks={"response": []})
            _raise_for_status(response)
            body = parse_body(response.content, where)
            hits = body.get("totalHits") if isinstance(body, dict) else None
            if isinstance(hits, bool) or not isinstance(hits, int):
                raise AptrinsicError(f"{where}: field totalHits is {hits!r} ({type(hits).__name__}), not a count")
            return hits
        except Exception as exc:
            error = _translate(exc, self, where, started)
            if error is None:
                raise
        raise error  # outside the except block: no __context__ holding the original text

    def get(self, path: str, where: str = "Aptrinsic") -> dict | None:
        """One record; None when the API answers 404. Each calling thread keeps its session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.rest_client().session
        where = f"{where} (GET /v1{path})"
        started = time.monotonic()
        try:
            response = session.get(self.base_url + path, hooks={"response": []})
            if response.status_code == 404:
                return None
            _raise_for_status(response)
            return parse_body(response.content, where)
        except Exception as exc:
            error = _translate(exc, self, where, started)
            if error is None:
                raise
        raise error  # outside the except block: no __context__ holding the original text


def _translate(exc: Exception, client: AptrinsicClient, where: str, started: float) -> Exception | None:
    """What a request ended with, as an error naming where it happened and what to do, with the API
    key scrubbed from its text (an API or proxy may echo the header back); None: raise it as it is."""
    key = client.api_key
    leaks = bool(key) and key in _chain_text(exc)
    if isinstance(exc, AptrinsicError) and not leaks and str(exc).startswith(where):
        return None
    if isinstance(exc, AptrinsicError):
        message = f"{where}: {exc}"
    elif isinstance(exc, RequestException):
        message = f"{where}: {_gave_up(exc, started)}"
    else:
        message = f"{where}: {type(exc).__name__}: {exc}"
    return (type(exc) if isinstance(exc, AptrinsicError) else AptrinsicError)(_scrub(message, key) if key else message)


def _gave_up(exc: BaseException, started: float) -> str:
    runtime = AptrinsicClient._runtime()
    waited = time.monotonic() - started
    return (
        f"gave up after {runtime.request_max_attempts} attempts over {waited:.1f} s ({exc}). dlt retries "
        f"429, 5xx, resets and timeouts with exponential backoff (factor {runtime.request_backoff_factor:g}), "
        f"honouring Retry-After up to {runtime.request_max_retry_delay:g} s "
        "([runtime] request_max_attempts, request_backoff_factor, request_max_retry_delay in "
        ".dlt/config.toml). Re-run later; on 429s lower rate_limit."
    )
