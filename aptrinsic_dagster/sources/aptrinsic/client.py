"""HTTP for the Aptrinsic API through dlt's REST client: paginators, retries, a rate cap, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import HTTPError, PreparedRequest, Request, Response
from requests.adapters import HTTPAdapter

from .api_counts import ApiCounts
from .errors import AptrinsicAuthError, AptrinsicError
from .settings import API_KEY_HEADER, REGIONS


class RateLimiter:
    """Spaces requests at most ``rate`` per second across all threads of a load."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
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


class _RateLimitedAdapter(HTTPAdapter):
    """Every attempt, retries included, passes the limiter: a 429 storm cannot exceed the cap."""

    def __init__(self, limiter: RateLimiter, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)
        self._limiter = limiter

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self._limiter.wait()
        return super().send(request, *args, **kwargs)


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


class AptrinsicRESTClient(RESTClient):
    """dlt's REST client, parsing each body once (with orjson) for both the records and the paginator."""

    def extract_response(self, response: Response, data_selector: Any) -> list[Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise AptrinsicError(
                f"Aptrinsic sent malformed JSON for GET {response.request.path_url.split('?')[0]}: {exc}"
            ) from exc
        response.parsed_body = body  # type: ignore[attr-defined]
        records = body if data_selector == "$" else body.get(data_selector)
        return records or []


class ScrollPaginator(BasePaginator):
    """Scroll paging: ``{<key>: [...], totalHits, scrollId}``; the next request adds ``scrollId``.

    Stops on a page shorter than the page size. The contract warns that ``scrollId`` may stay
    non-null on the last page, so a null id is never awaited (but does stop a full page).
    Example: pageSize=2 -> ``{"users": [a, b], "totalHits": 3, "scrollId": "s1"}``, then
    ``?scrollId=s1`` -> ``{"users": [c], "totalHits": 3, "scrollId": "s2"}`` (short: stop).
    """

    def __init__(self, page_size: int) -> None:
        super().__init__()
        self.page_size = page_size
        self.total_hits: int | None = None
        self._scroll_id: str | None = None

    def init_request(self, request: Request) -> None:
        request.params["pageSize"] = self.page_size

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.parsed_body  # type: ignore[attr-defined]
        if self.total_hits is None:
            self.total_hits = body.get("totalHits")
        self._scroll_id = body.get("scrollId")
        if len(data or []) < self.page_size or not self._scroll_id:
            self._has_next_page = False

    def update_request(self, request: Request) -> None:
        request.params["scrollId"] = self._scroll_id


class IsLastPagePaginator(BasePaginator):
    """Zero-based page numbers that end on the API's flag: ``{<key>: [...], pageNumber, isLastPage}``.

    Stops on ``isLastPage`` or a short page. Example: pageSize=2 -> ``{"segments": [a, b],
    "pageNumber": 0, "isLastPage": false}``, then ``?pageNumber=1`` -> ``{"segments": [c],
    "pageNumber": 1, "isLastPage": true}``.
    """

    def __init__(self, page_size: int) -> None:
        super().__init__()
        self.page_size = page_size
        self._page = 0

    def init_request(self, request: Request) -> None:
        request.params.update(pageSize=self.page_size, pageNumber=0)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.parsed_body  # type: ignore[attr-defined]
        if body.get("isLastPage") or len(data or []) < self.page_size:
            self._has_next_page = False
        self._page += 1

    def update_request(self, request: Request) -> None:
        request.params["pageNumber"] = self._page


@dataclass
class AptrinsicClient:
    base_url: str
    api_key: str = field(repr=False)
    limiter: RateLimiter
    max_connections: int = 32
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def rest_client(self) -> AptrinsicRESTClient:
        """A client with its own session; one per paging walk (a walk stays on one thread)."""
        # Retries, backoff and timeouts are dlt's own ([runtime] request_* settings), not ours.
        runtime = resolve_configuration(RuntimeConfiguration())
        session = Client(
            request_timeout=runtime.request_timeout,
            request_max_attempts=runtime.request_max_attempts,
            request_backoff_factor=runtime.request_backoff_factor,
            request_max_retry_delay=runtime.request_max_retry_delay,
            raise_for_status=False,
            session_attrs={"headers": {API_KEY_HEADER: self.api_key, "Accept": "application/json"}},
        ).session
        adapter = _RateLimitedAdapter(self.limiter, self.max_connections)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return AptrinsicRESTClient(base_url=self.base_url, session=session)

    def pages(
        self,
        path: str,
        record_key: str | None,
        paginator: BasePaginator,
        params: dict[str, Any] | None = None,
        counts: ApiCounts | None = None,
    ) -> Iterator[list[dict]]:
        """Each page's records; ``counts`` is filled in as pages arrive."""
        client = self.rest_client()
        for page in client.paginate(
            path,
            params=params or {},
            paginator=paginator,
            data_selector=record_key or "$",
            hooks={"response": [_raise_for_status]},
        ):
            if counts is not None:
                counts.pages += 1
                counts.records += len(page)
                if isinstance(paginator, ScrollPaginator):
                    counts.total_hits = paginator.total_hits
            yield list(page)

    def total_hits(self, path: str, params: dict[str, Any]) -> int:
        """``totalHits`` of a one-record page: what a scroll endpoint holds for ``params`` now."""
        response = self.rest_client().session.get(
            self.base_url + path, params={**params, "pageSize": 1}, hooks={"response": []}
        )
        _raise_for_status(response)
        try:
            return int(orjson.loads(response.content)["totalHits"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AptrinsicError(f"Aptrinsic sent no usable totalHits for GET {path}: {exc!r}") from exc

    def get(self, path: str) -> dict | None:
        """One record; None when the API answers 404. Each calling thread keeps its session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.rest_client().session
        response = session.get(self.base_url + path, hooks={"response": []})
        if response.status_code == 404:
            return None
        _raise_for_status(response)
        return orjson.loads(response.content)
