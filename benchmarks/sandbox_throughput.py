"""How fast the sandbox serves: records/s and pages/s, scrolled by concurrent clients.

Runs the sandbox as its own process (as the benchmarks do) and scrolls every event endpoint
over the whole data range with 1000-record pages, one client thread per endpoint, so the
figure is the server's ceiling on this machine rather than one client's.

    .venv/bin/python -m benchmarks.sandbox_throughput --events-per-day 3000 --days 30
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from .bench import KEY, spawn_sandbox

EVENT_PATHS = [
    "/events/custom",
    "/events/pageView",
    "/events/session",
    "/events/identify",
    "/events/feature_match",
    "/events/segment_match",
    "/events/engagementView",
    "/events/email",
    "/events/lead",
    "/events/formSubmit",
    "/survey/responses",
]


def scroll(base_url: str, path: str, start: int, end: int) -> tuple[int, int, int]:
    session = requests.Session()
    session.headers["X-APTRINSIC-API-KEY"] = KEY
    params = {"pageSize": 1000, "filter": f"date>={start};date<{end}", "sort": "date"}
    records = pages = nbytes = 0
    while True:
        response = session.get(base_url + path, params=params, timeout=60)
        response.raise_for_status()
        body = response.json()
        key = next(k for k in body if isinstance(body[k], list))
        records, pages, nbytes = records + len(body[key]), pages + 1, nbytes + len(response.content)
        if len(body[key]) < 1000:
            return records, pages, nbytes
        params = {"pageSize": 1000, "scrollId": body["scrollId"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events-per-day", type=int, default=3000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--clients", type=int, default=len(EVENT_PATHS))
    args = p.parse_args()
    proc, base_url = spawn_sandbox(
        "--rate-cap", "0", "--events-per-day", str(args.events_per_day), "--days", str(args.days)
    )
    try:
        end = 1772323200000  # 2026-03-01T00:00Z
        start = end - args.days * 86_400_000
        windows = [(path, max(start, end - 190 * 86_400_000), end) for path in EVENT_PATHS]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda w: scroll(base_url, *w), windows))
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
    records = sum(r[0] for r in results)
    pages = sum(r[1] for r in results)
    megabytes = sum(r[2] for r in results) / 1e6
    print(f"records {records}  pages {pages}  bytes {megabytes:.0f} MB  wall {wall:.1f} s")
    print(f"records/s {records / wall:,.0f}  pages/s {pages / wall:,.1f}  MB/s {megabytes / wall:.1f}")


if __name__ == "__main__":
    main()
