"""Faults on demand, the request-rate cap, and the request counters behind ``/_sandbox/stats``."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .changes import SourceChanges

Action = Literal["ok", "400", "429", "5xx", "reset", "malformed"]


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are probabilities per request (0..1)."""

    rate_429: float = 0.0
    burst_429_every: int = 0  # after every N requests ...
    burst_429_length: int = 0  # ... this many answer 429 in a row
    retry_after: float | None = None  # seconds sent as Retry-After on injected 429s; None: no header
    rate_5xx: float = 0.0
    rate_reset: float = 0.0  # connection reset after half the body was sent
    rate_malformed: float = 0.0  # 200 with a truncated JSON body
    rate_400: float = 0.0  # 400 "Bad request" in the externalapierror envelope
    drop_rate: float = 0.0  # records silently left out of pages (totalHits unchanged)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0  # uniform extra latency in [0, jitter)
    rate_cap: int = 200  # requests per second before 429 "Rate limit exceeded"; 0: no cap
    # Hostile answers (a misbehaving API or proxy), each off by default:
    repeat_scroll: bool = False  # every scrollId answers the first page again, with the same scrollId
    endless_scroll: bool = False  # scroll pages stay full, each with a fresh scrollId, past totalHits (records repeat)
    repeat_records: int = 0  # each scroll page after the first opens with the previous page's last N records again
    serve_page_size: int = 0  # list pages hold this many records whatever pageSize asks (0: obey pageSize)
    trickle_bytes_per_s: float = 0.0  # API bodies are sent at this rate (0: at once)
    huge_integer: str | None = None  # digits sent as the integer field "hugeNumber" of every listed record
    null_field: str | None = None  # this field is null in the first record of every list page
    string_total_hits: bool = False  # totalHits sent as a JSON string ("1500")
    lone_surrogate: bool = False  # the first record of every list page gets "note": "\\ud800x"
    echo_key_in_errors: bool = False  # 401 messages quote the X-APTRINSIC-API-KEY header they got
    event_id_alias: dict[str, str] | None = None  # eventId -> the eventId served in its place
    # Changes at the source after a load (changes.py): valid answers, not faults.
    deleted_users: tuple[str, ...] = ()  # identifyIds erased at the source: their events are gone
    late_days: tuple[str, ...] = ()  # UTC days (YYYY-MM-DD) part of whose events arrive late
    late_fraction: float = 0.1  # the share of a late day's events that is not visible yet
    late_after_s: float | None = None  # they appear this long after late_days is set; None: when it is cleared

    def __post_init__(self) -> None:
        self._late_since = time.monotonic()

    def update(self, **changes: Any) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        if "late_days" in changes:
            self._late_since = time.monotonic()

    def source_changes(self) -> SourceChanges | None:
        """What the API hides now, or None when it serves every generated event."""
        late = self.late_days and (self.late_after_s is None or time.monotonic() < self._late_since + self.late_after_s)
        if not self.deleted_users and not late:
            return None
        return SourceChanges(
            frozenset(self.deleted_users), frozenset(self.late_days if late else ()), self.late_fraction
        )


class FaultInjector:
    """Decides each request's fate; thread-safe; seeded so a fault sequence can be replayed."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._count = 0
        self._window: collections.deque[float] = collections.deque()

    def latency(self) -> float:
        f = self.faults
        with self._lock:
            jitter = self._rng.random() * f.latency_jitter_ms if f.latency_jitter_ms else 0.0
        return (f.latency_ms + jitter) / 1000

    def decide(self) -> tuple[Action, bool]:
        """``(action, over_cap)``; ``over_cap`` is the rate limiter's 429, not an injected one."""
        f = self.faults
        with self._lock:
            now = time.monotonic()
            self._window.append(now)
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if f.rate_cap and len(self._window) > f.rate_cap:
                return "429", True
            self._count += 1
            if f.burst_429_every and f.burst_429_length:
                period = f.burst_429_every + f.burst_429_length
                if (self._count - 1) % period >= f.burst_429_every:
                    return "429", False
            roll = self._rng.random()
            for action, rate in (
                ("429", f.rate_429),
                ("5xx", f.rate_5xx),
                ("reset", f.rate_reset),
                ("malformed", f.rate_malformed),
                ("400", f.rate_400),
            ):
                if roll < rate:
                    return action, False  # type: ignore[return-value]
                roll -= rate
            return "ok", False

    def keep_record(self) -> bool:
        if not self.faults.drop_rate:
            return True
        with self._lock:
            return self._rng.random() >= self.faults.drop_rate


class Stats:
    """Requests per endpoint and status, peak requests in any one-second window (and when in that
    second each arrived), peak requests in flight (being answered at once, per endpoint and in all),
    and a log."""

    def __init__(self, log_size: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.by_endpoint: collections.Counter[str] = collections.Counter()
            self.by_status: collections.Counter[int] = collections.Counter()
            self.records_served = 0
            self.peak_rps = 0
            self.peak_second: list[float] = []  # the arrivals of the peak's second, ms after its first
            self._in_flight: collections.Counter[str] = collections.Counter()
            self.peak_in_flight: collections.Counter[str] = collections.Counter()
            self._arrivals: collections.deque[float] = collections.deque()
            self.log: collections.deque[dict] = collections.deque(maxlen=self._log_size)

    def arrival(self, path: str = "") -> None:
        with self._lock:
            for key in ("", path) if path else ("",):
                self._in_flight[key] += 1
                self.peak_in_flight[key] = max(self.peak_in_flight[key], self._in_flight[key])
            now = time.monotonic()
            self._arrivals.append(now)
            while self._arrivals[0] <= now - 1.0:
                self._arrivals.popleft()
            if len(self._arrivals) > self.peak_rps:
                self.peak_rps = len(self._arrivals)
                first = self._arrivals[0]
                self.peak_second = [round((t - first) * 1000, 1) for t in self._arrivals]

    def departure(self, path: str = "") -> None:
        with self._lock:
            for key in ("", path) if path else ("",):
                self._in_flight[key] -= 1

    def record(self, endpoint: str, status: int, query: dict[str, list[str]], records: int) -> None:
        with self._lock:
            self.by_endpoint[endpoint] += 1
            self.by_status[status] += 1
            self.records_served += records
            self.log.append({"endpoint": endpoint, "status": status, "query": query, "records": records})

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": dict(self.by_endpoint),
                "statuses": {str(k): v for k, v in self.by_status.items()},
                "total_requests": sum(self.by_endpoint.values()),
                "records_served": self.records_served,
                "peak_rps": self.peak_rps,
                "peak_second": self.peak_second,
                "peak_in_flight": self.peak_in_flight[""],
                "peak_in_flight_by_endpoint": {k: v for k, v in self.peak_in_flight.items() if k},
            }

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self.log)


def faults_dict(f: Faults) -> dict:
    return asdict(f)
