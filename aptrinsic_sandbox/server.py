"""A real HTTP server on loopback that answers like api.aptrinsic.com/v1."""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from .data import DataConfig, Dataset
from .endpoints import ENDPOINTS, Endpoint, EventRows, ListRows, Rows, entity_rows
from .faults import FaultInjector, Faults, Stats, faults_dict
from .query import QueryError, narrow, parse_groups, parse_instant, parse_sort, resolve_window

API_KEY_HEADER = "X-APTRINSIC-API-KEY"
INJECTED_400 = "Bad request: the sandbox was asked to refuse this one"
_SINGLE = [
    (re.compile(r"^/v1/users/([^/]+)$"), "/v1/users/{identifyId}"),
    (re.compile(r"^/v1/accounts/([^/]+)$"), "/v1/accounts/{accountId}"),
    (re.compile(r"^/v1/user/preferences/([^/]+)$"), "/v1/user/preferences/{identifyId}"),
    (re.compile(r"^/v1/admin/model/([^/]+)/attributes$"), "/v1/admin/model/{type}/attributes"),
]
_STATUS_NAMES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


@dataclass
class SandboxConfig:
    data: DataConfig = field(default_factory=DataConfig)
    faults: Faults = field(default_factory=Faults)
    api_keys: tuple[str, ...] = ("sandbox-key",)
    forbidden_keys: tuple[str, ...] = ()  # valid keys without Read permission: 403
    host: str = "127.0.0.1"
    port: int = 0
    now_ms: int | None = None  # the server's "now" for windows without a date; None: the clock


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "externalapierror": {
                "status": _STATUS_NAMES.get(status, "ERROR"),
                "message": message,
                "debugMessage": None,
                "subErrors": None,
            }
        }
    )


def spawn(*args: str) -> tuple[subprocess.Popen, str]:
    """The sandbox in a process of its own, through its CLI (``args``: its flags), so that it never waits
    for its client's GIL, as the API never does; returns the process and the base URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "aptrinsic_sandbox", *args], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


class Sandbox:
    """The server and its state. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.dataset = Dataset(self.config.data)
        self.faults = self.config.faults
        self.injector = FaultInjector(self.faults, self.config.data.seed)
        self.stats = Stats()
        self._scrolls: OrderedDict[str, tuple[Rows, int, str]] = OrderedDict()
        self._scroll_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="aptrinsic-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server, "sandbox not started"
        return self._server.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # -- facts for tests and benchmarks ----------------------------------------------------
    def count(self, path: str, start_ms: int | None = None, end_ms: int | None = None) -> int:
        """Records endpoint ``path`` holds: events in ``[start_ms, end_ms)``, entities in all."""
        endpoint = ENDPOINTS[path]
        if endpoint.windowed:
            start = self.dataset.start_ms if start_ms is None else start_ms
            end = self.dataset.end_ms if end_ms is None else end_ms
            changes = self.faults.source_changes()
            if changes is None:
                return self.dataset.count_events(endpoint.collection, start, end)
            rows = EventRows(self.dataset, endpoint.collection, start, end, descending=False)
            return sum(map(changes.keeps, map(orjson.loads, rows.slice(0, rows.total))))
        return entity_rows(self.dataset, endpoint.collection).total

    def now_ms(self) -> int:
        return self.config.now_ms if self.config.now_ms is not None else int(time.time() * 1000)

    # -- request handling ------------------------------------------------------------------
    def answer(self, path: str, query: dict[str, list[str]], api_key: str | None) -> tuple[str, bytes, int]:
        """``(endpoint template, JSON body, records in it)`` or raises ApiError."""
        if api_key is None or (api_key not in self.config.api_keys and api_key not in self.config.forbidden_keys):
            echo = f": {api_key!r}" if self.faults.echo_key_in_errors else ""
            raise ApiError(401, f"Unauthorized or bad API Key{echo}")
        if api_key in self.config.forbidden_keys:
            raise ApiError(403, "Access denied")
        endpoint = ENDPOINTS.get(path)
        if endpoint is not None:
            return path, *self._list(endpoint, query)
        for pattern, template in _SINGLE:
            m = pattern.match(path)
            if m:
                return template, orjson.dumps(self._single(template, m.group(1))), 1
        raise ApiError(404, f"No endpoint GET {path}")

    def _single(self, template: str, key: str) -> Any:
        ds, c = self.dataset, self.dataset.config
        if template == "/v1/admin/model/{type}/attributes":
            raise ApiError(404, "Type not found")  # user and account are served as list endpoints
        m = (
            re.fullmatch(r"user-(\d{7})", key)
            if template != "/v1/accounts/{accountId}"
            else re.fullmatch(r"acc-(\d{6})", key)
        )
        i = int(m.group(1)) if m else -1
        if template == "/v1/accounts/{accountId}":
            if 0 <= i < c.accounts:
                return ds.account(i)
            raise ApiError(404, f"Account was not found for parameters {{id={key}}}")
        if not 0 <= i < c.users:
            raise ApiError(404, f"User was not found for parameters {{id={key}}}")
        return ds.user(i) if template == "/v1/users/{identifyId}" else ds.preferences(i)

    def _page_size(self, endpoint: Endpoint, query: dict[str, list[str]]) -> int:
        raw = query.get("pageSize", [None])[-1]
        if raw is None:
            return endpoint.default_size
        try:
            size = int(raw)
        except ValueError:
            raise ApiError(400, f"Invalid pageSize '{raw}'") from None
        if not 1 <= size <= endpoint.max_size:
            raise ApiError(400, f"pageSize must be between 1 and {endpoint.max_size}")
        return self.faults.serve_page_size or size

    def _list(self, endpoint: Endpoint, query: dict[str, list[str]]) -> tuple[bytes, int]:
        if endpoint.paging == "none":
            records = entity_rows(self.dataset, endpoint.collection).slice(0, 10**9)
            if endpoint.record_key is None:
                return _array(records), len(records)
            return _page(endpoint.record_key, records, {}), len(records)
        size = self._page_size(endpoint, query)
        if endpoint.paging == "page":
            raw = query.get("pageNumber", ["0"])[-1]
            if not raw.isdigit():
                raise ApiError(400, f"Invalid pageNumber '{raw}'")
            number = int(raw)
            rows = entity_rows(self.dataset, endpoint.collection)
            records = self._hostile(self._drop(rows.slice(number * size, size)))
            return _page(
                endpoint.record_key,
                records,
                {"pageNumber": number, "isLastPage": (number + 1) * size >= rows.total},
            ), len(records)
        scroll_id = query.get("scrollId", [None])[-1]
        if scroll_id is not None:
            with self._scroll_lock:
                state = self._scrolls.get(scroll_id)
            if state is None or state[2] != endpoint.path:
                raise ApiError(400, f"Invalid scrollId '{scroll_id}'")
            rows, offset, _ = state
            if self.faults.repeat_scroll:
                records = self._hostile(rows.slice(0, size))
                return _page(endpoint.record_key, records, {"totalHits": rows.total, "scrollId": scroll_id}), len(
                    records
                )
        else:
            rows, offset = self._rows(endpoint, query), 0
        records = self._endless(rows, offset, size) if self.faults.endless_scroll else rows.slice(offset, size)
        next_offset = offset + len(records)
        if self.faults.repeat_records and offset:  # records the API has already served, again
            repeated = min(self.faults.repeat_records, offset)
            records = rows.slice(offset - repeated, repeated) + records
        # The last, short page still carries a scroll id: the contract tells clients not to
        # rely on it becoming null. Ids are derived, not random, so a seed gives the same bytes.
        canonical = "&".join(f"{k}={v}" for k, vs in sorted(query.items()) if k != "scrollId" for v in vs)
        token = hashlib.sha1(
            f"{self.dataset.config.seed}|{endpoint.path}|{canonical}|{scroll_id}|{next_offset}".encode()
        ).hexdigest()
        with self._scroll_lock:
            self._scrolls[token] = (rows, next_offset, endpoint.path)
            while len(self._scrolls) > 100_000:
                self._scrolls.popitem(last=False)
        records = self._hostile(self._drop(records))
        total: Any = str(rows.total) if self.faults.string_total_hits else rows.total
        return _page(endpoint.record_key, records, {"totalHits": total, "scrollId": token}), len(records)

    @staticmethod
    def _endless(rows: Rows, offset: int, size: int) -> list[bytes]:
        """A full page whatever the offset: the records again from the start once they run out."""
        records: list[bytes] = []
        while rows.total and len(records) < size:
            records += rows.slice((offset + len(records)) % rows.total, size - len(records))
        return records

    def _drop(self, records: list[bytes]) -> list[bytes]:
        if not self.faults.drop_rate:
            return records
        return [r for r in records if self.injector.keep_record()]

    def _hostile(self, records: list[bytes]) -> list[bytes]:
        """The record-level hostile answers of ``Faults``, applied to a list page."""
        f = self.faults
        if f.event_id_alias:
            for old, new in f.event_id_alias.items():
                find, put = f'"eventId":"{old}"'.encode(), f'"eventId":"{new}"'.encode()
                records = [r.replace(find, put) for r in records]
        if f.huge_integer:
            digits = str(int(f.huge_integer)).encode()
            records = [r[:-1] + b',"hugeNumber":' + digits + b"}" for r in records]
        if records and f.null_field:
            first = orjson.loads(records[0])
            first[f.null_field] = None
            records = [orjson.dumps(first), *records[1:]]
        if records and f.lone_surrogate:
            # orjson cannot write a lone surrogate; JSON text can carry one as an escape.
            records = [records[0][:-1] + b',"note":"\\ud800x"}', *records[1:]]
        return records

    def _rows(self, endpoint: Endpoint, query: dict[str, list[str]]) -> Rows:
        try:
            groups = parse_groups(query.get("filter", []), endpoint.windowed)
            sort = parse_sort(query.get("sort", [None])[-1], endpoint.sort_fields)
            if endpoint.windowed and endpoint.collection == "custom":
                for name, op in (("dateRangeStart", ">="), ("dateRangeEnd", "<")):
                    if name in query:
                        for g in groups:
                            narrow(g, op, parse_instant(query[name][-1]))
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        if not endpoint.windowed:
            rows = entity_rows(self.dataset, endpoint.collection)
            if len(groups) == 1 and not groups[0].terms and not sort:
                return rows
            records = [r for r in map(orjson.loads, rows.slice(0, rows.total)) if any(g.matches(r) for g in groups)]
            return ListRows(_sorted(records, sort))
        try:
            windows = [resolve_window(g, self.now_ms()) for g in groups]
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        simple_sort = not sort or (len(sort) == 1 and sort[0][0] == "date")
        changes = self.faults.source_changes()
        if len(groups) == 1 and not groups[0].terms and simple_sort and changes is None:
            return EventRows(self.dataset, endpoint.collection, *windows[0], descending=bool(sort and sort[0][1]))
        # Rare shapes (OR groups, non-date terms, other sorts, changed data): materialise and filter.
        span = EventRows(
            self.dataset,
            endpoint.collection,
            min(w[0] for w in windows),
            max(w[1] for w in windows),
            descending=False,
        )
        records = [
            r
            for r in map(orjson.loads, span.slice(0, span.total))
            if any(w[0] <= r["date"] < w[1] and g.matches(r) for g, w in zip(groups, windows, strict=True))
            and (changes is None or changes.keeps(r))
        ]
        return ListRows(_sorted(records, sort))


def _array(records: list[bytes]) -> bytes:
    return b"[" + b",".join(records) + b"]"


def _page(key: str, records: list[bytes], fields: dict) -> bytes:
    """A page body: records already serialized, so they are joined rather than re-encoded."""
    rest = orjson.dumps(fields)[1:-1]
    return b'{"' + key.encode() + b'":' + _array(records) + (b"," + rest if rest else b"") + b"}"


def _sorted(records: list[dict], sort: list[tuple[str, bool]]) -> list[dict]:
    for name, descending in reversed(sort):
        records.sort(key=lambda r: (r.get(name) is None, r.get(name) or ""), reverse=descending)
    return records


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of the real API get

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith("/_sandbox/"):
            return self._control(url.path, query)
        self.sandbox.stats.arrival(url.path)
        try:
            self._answer(url, query)
        finally:
            self.sandbox.stats.departure(url.path)

    def _answer(self, url: Any, query: dict[str, list[str]]) -> None:
        sb = self.sandbox
        delay = sb.injector.latency()
        if delay:
            time.sleep(delay)
        action, _ = sb.injector.decide()
        endpoint = url.path
        if action == "429":
            headers = {} if sb.faults.retry_after is None else {"Retry-After": f"{sb.faults.retry_after:g}"}
            return self._send(429, error_body(429, "Rate limit exceeded"), endpoint, query, headers=headers)
        if action == "5xx":
            return self._send(503, error_body(503, "Service temporarily unavailable"), endpoint, query)
        if action == "400":
            return self._send(400, error_body(400, INJECTED_400), endpoint, query)
        try:
            endpoint, payload, n = sb.answer(url.path, query, self.headers.get(API_KEY_HEADER))
        except ApiError as exc:
            return self._send(exc.status, error_body(exc.status, exc.message), endpoint, query)
        if action == "reset":
            return self._reset(payload, endpoint, query)
        if action == "malformed":
            payload = payload[: len(payload) // 2]
        self._send(200, payload, endpoint, query, records=n)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        if url.path == "/_sandbox/faults":
            try:
                self.sandbox.faults.update(**orjson.loads(raw))
            except (ValueError, TypeError) as exc:
                return self._send(400, error_body(400, str(exc)), "", {}, count=False)
            return self._send(200, orjson.dumps(faults_dict(self.sandbox.faults)), "", {}, count=False)
        if url.path == "/_sandbox/reset":
            self.sandbox.stats.reset()
            return self._send(200, b"{}", "", {}, count=False)
        self._send(405, error_body(400, "Only GET is served"), url.path, {}, count=False)

    def _control(self, path: str, query: dict[str, list[str]]) -> None:
        sb = self.sandbox
        if path == "/_sandbox/stats":
            body: Any = sb.stats.snapshot()
        elif path == "/_sandbox/requests":
            body = sb.stats.requests()
        elif path == "/_sandbox/faults":
            body = faults_dict(sb.faults)
        elif path == "/_sandbox/count":
            try:
                start = query.get("start", [None])[-1]
                end = query.get("end", [None])[-1]
                body = {
                    "count": sb.count(query["endpoint"][-1], start and parse_instant(start), end and parse_instant(end))
                }
            except (KeyError, QueryError) as exc:
                return self._send(400, error_body(400, f"count needs a known endpoint: {exc}"), "", {}, count=False)
        else:
            return self._send(404, error_body(404, f"No control path {path}"), "", {}, count=False)
        self._send(200, orjson.dumps(body), "", {}, count=False)

    def _send(
        self,
        status: int,
        payload: bytes,
        endpoint: str,
        query: dict,
        *,
        records: int = 0,
        headers: dict[str, str] | None = None,
        count: bool = True,
    ) -> None:
        if count:
            self.sandbox.stats.record(endpoint, status, query, records)
        self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        rate = self.sandbox.faults.trickle_bytes_per_s
        if count and rate > 0:
            return self._trickle(payload, rate)
        self.wfile.write(payload)

    def _trickle(self, payload: bytes, rate: float) -> None:
        """The body a few bytes at a time at ``rate`` bytes/s, until done or the client hangs up."""
        step = max(1, int(rate / 20))
        try:
            for at in range(0, len(payload), step):
                self.wfile.write(payload[at : at + step])
                self.wfile.flush()
                time.sleep(step / rate)
        except OSError:  # the client gave up: what a trickle is for
            self.close_connection = True

    def _reset(self, payload: bytes, endpoint: str, query: dict) -> None:
        self.sandbox.stats.record(endpoint, 0, query, 0)  # status 0: the connection was reset
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
