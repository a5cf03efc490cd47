"""The GET surface the sandbox serves, as the vendor contract declares it.

Record keys, paging families and page-size defaults/maxima are the contract's (quirks
included: ``segment_match`` answers under ``featureMatchEvents``, six endpoints under
``results``, the attributes endpoint with a bare array).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson

from .data import Dataset

Paging = Literal["scroll", "page", "none"]
_EVENT_SORT = ("date", "accountId")


@dataclass(frozen=True)
class Endpoint:
    path: str
    record_key: str | None  # None: the body is a bare JSON array
    paging: Paging
    collection: str  # an event type of the dataset, or an entity collection
    default_size: int = 0
    max_size: int = 0
    windowed: bool = False
    sort_fields: tuple[str, ...] | None = None  # None: any field


def _event(path: str, key: str, collection: str, sort: tuple[str, ...] = _EVENT_SORT) -> Endpoint:
    return Endpoint(path, key, "scroll", collection, 25, 1000, windowed=True, sort_fields=sort)


ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in [
        Endpoint("/v1/users", "users", "scroll", "users", 25, 1000),
        Endpoint("/v1/accounts", "accounts", "scroll", "accounts", 25, 1000),
        _event("/v1/events/custom", "customEvents", "custom"),
        _event("/v1/events/pageView", "results", "pageView"),
        _event("/v1/events/session", "sessionInitializedEvents", "session"),
        _event("/v1/events/identify", "identifyEvents", "identify"),
        _event("/v1/events/feature_match", "featureMatchEvents", "feature_match"),
        _event("/v1/events/segment_match", "featureMatchEvents", "segment_match"),
        _event("/v1/events/engagementView", "results", "engagementView"),
        _event("/v1/events/email", "results", "email", sort=("date",)),
        _event("/v1/events/lead", "results", "lead"),
        _event("/v1/events/formSubmit", "results", "formSubmit", sort=("date",)),
        _event("/v1/survey/responses", "results", "survey"),
        Endpoint("/v1/feature", "features", "page", "features", 25, 200),
        Endpoint("/v1/segment", "segments", "page", "segments", 25, 200),
        Endpoint("/v1/engagement", "engagements", "page", "engagements", 200, 500),
        Endpoint("/v1/articles", "articleExternalViewList", "page", "articles", 200, 500),
        Endpoint("/v1/kcbot", "kcList", "page", "kcbots", 200, 500),
        Endpoint("/v1/admin/monitoring/integrations", "integrationStatuses", "none", "integrations"),
        Endpoint("/v1/admin/model/user/attributes", None, "none", "user_attributes"),
        Endpoint("/v1/admin/model/account/attributes", None, "none", "account_attributes"),
    ]
}


class Rows(Protocol):
    """An ordered result that a scroll or page walks through, as serialized JSON records."""

    total: int

    def slice(self, offset: int, limit: int) -> list[bytes]: ...


class EventRows:
    """Events of one type in ``[start, end)`` in date order, produced page by page."""

    def __init__(self, ds: Dataset, event_type: str, start_ms: int, end_ms: int, descending: bool) -> None:
        self._ds, self._type, self._descending = ds, event_type, descending
        self._segments = ds.event_segments(event_type, start_ms, end_ms)
        if descending:
            self._segments.reverse()
        self.total = sum(hi - lo for _, lo, hi in self._segments)

    def slice(self, offset: int, limit: int) -> list[bytes]:
        out: list[bytes] = []
        for day, lo, hi in self._segments:
            size = hi - lo
            if offset >= size:
                offset -= size
                continue
            take = min(limit - len(out), size - offset)
            if self._descending:
                idx = range(hi - 1 - offset, hi - 1 - offset - take, -1)
            else:
                idx = range(lo + offset, lo + offset + take)
            out.extend(self._ds.event_bytes(self._type, day, idx))
            offset = 0
            if len(out) >= limit:
                break
        return out


class EntityRows:
    """Entities ``0..n-1`` in id order, produced page by page."""

    def __init__(self, make: Callable[[int], dict], n: int) -> None:
        self._make, self.total = make, n

    def slice(self, offset: int, limit: int) -> list[bytes]:
        return [orjson.dumps(self._make(i)) for i in range(offset, min(offset + limit, self.total))]


class ListRows:
    def __init__(self, records: list[dict]) -> None:
        self._records, self.total = [orjson.dumps(r) for r in records], len(records)

    def slice(self, offset: int, limit: int) -> list[bytes]:
        return self._records[offset : offset + limit]


def entity_rows(ds: Dataset, collection: str) -> Rows:
    c = ds.config
    makers: dict[str, tuple[Callable[[int], dict], int]] = {
        "users": (ds.user, c.users),
        "accounts": (ds.account, c.accounts),
        "features": (ds.feature, c.features),
        "segments": (ds.segment, c.segments),
        "engagements": (ds.engagement, c.engagements),
        "articles": (ds.article, c.articles),
        "kcbots": (ds.kcbot, c.kcbots),
    }
    if collection in makers:
        return EntityRows(*makers[collection])
    if collection == "integrations":
        return ListRows(ds.integrations())
    if collection in ("user_attributes", "account_attributes"):
        return ListRows(ds.attributes(collection.split("_")[0]))
    raise KeyError(collection)
