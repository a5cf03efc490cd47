"""Sub-windows: an event table's API windows fetched as several scrolls at once.

Scroll is sequential within one query, so a latency-bound load of a large window is as slow as its
pages one after another. Each API window is split into consecutive half-open sub-windows of whole UTC
days (no gap, no overlap), each its own scroll, all run on one pool of threads shared by every table
of the load: at most ``max_in_flight`` requests at once, each under the load's rate cap.

Boundaries: the first page of a scroll reports ``totalHits``, so it is the probe. A window that needs
more than ``PAGES_PER_SCROLL`` pages is left after that page and split into ceil(pages /
``PAGES_PER_SCROLL``) sub-windows of equal days (events assumed spread evenly); a sub-window that
turns out to need more than twice that (events bunched in time) is split again the same way, down to
one day. A split costs its one page; each sub-window's last page is short, half a page on average.

Order: a scroll's pages follow one another, so the scrolls started last set when the load ends. A
free thread takes the pending scroll with the most pages (probes first), and one about to start
with more pages than its share of those still pending (the pending pages over the threads) is split
first, down to ``TAIL_PAGES`` or one day: the load ends on short scrolls, all finishing together.
Started in arrival order, sub-windows of 16 pages left a 365-day backfill (benchmarks/, scenario 3,
150 ms per request at 150 requests/s) requesting below the cap for its last 3 s; this way the
sub-windows can be longer (fewer short last pages), and the extract took 70.0 s against 72.6 s.

Start: a table's sub-windows start one at a time, the next once dlt has found none of the table's
pages waiting (``_starved``) or none of its scrolls running. When the API's latency sets the pace, dlt
waits after nearly every page and the scrolls ramp up page by page; when dlt sets it (an API that
answers at once), one scroll keeps it busy, and more would only each hold a page it has not taken,
on a thread of their own. Started all at once, a 4M-event load (benchmarks/memory.py, scale 4.0)
peaked at 400 MB in its event extract; one at a time, at 362 MB (the run: 256 s against 271 s).

dlt's own parallelism does not fit here: ``dlt.defer`` returns one item per call (a whole sub-window
in memory), and a scroll's pages chain on ``scrollId``. Threads never wait on a slow consumer: a
scroll whose table already holds ``BUFFERED_PAGES`` pages waits, parked, off the pool, so memory is
bounded by the pool and the buffers, and no table can starve another.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .api_counts import ApiCounts
from .windows import Window

PAGES_PER_SCROLL = 32  # chains of 32-64 pages; splitting wastes ~0.5 page per sub-window (~1.5%)
TAIL_PAGES = 4  # the shortest scroll a split near the end of a load makes
BUFFERED_PAGES = 2  # pages of a table fetched and not yet taken by dlt before its scrolls park
# Requests at once: 180/s at 150 ms per request needs 27, and each page's parsing holds a thread a
# little longer. Scenario 3 (benchmarks/, one run each): 32 sent 147/s on average, 36 sent 159/s; 40
# was no faster than 36 (78.0 against 77.5 s) and cost ~8 MB of scenario 1's peak.
DEFAULT_MAX_IN_FLIGHT = 36

_NEXT = object()  # _continue: fetch the next page first

Fetch = Callable[[Window, ApiCounts], Iterator[Any]]  # a sub-window's pages (empty ones too)


def split_days(window: Window, parts: int) -> list[Window]:
    """``window`` (whole UTC days) as up to ``parts`` consecutive half-open windows of whole days,
    as equal as days allow."""
    start, end = window
    days = (end - start).days
    parts = max(1, min(parts, days))
    edges = [start + dt.timedelta(days=round(i * days / parts)) for i in range(parts + 1)]
    return list(itertools.pairwise(edges))


class ScrollPool:
    """The threads that run the load's scrolls; created when a table first needs them and shut down
    when the last table using them is done. A free thread takes the pending scroll with the most
    pages (a window not yet probed, or a parked scroll, counts as the most)."""

    def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._users = 0
        self._pending: list[tuple[float, int, Callable[[], None]]] = []  # a heap: (-pages, order, task)
        self._pending_pages = 0.0  # the pages of the pending scrolls that have a size
        self._probing = 0  # API windows whose size is not known yet
        self._order = itertools.count()

    def _acquire(self) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="aptrinsic-scroll")
            self._users += 1

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._executor is not None:
                # Running scrolls see their table stopped at their next page and end.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
                self._pending.clear()
                self._pending_pages, self._probing = 0.0, 0

    def submit(self, *scrolls: tuple[float, Callable[[], None]], probed: bool = False) -> None:
        """Run each ``(pages, task)`` (a scroll of about ``pages`` pages) on a free thread, longest
        first; pending together, so none starts before its siblings count as pending. ``probed``:
        these are the parts of a probed API window, no longer being probed from now on."""
        with self._lock:
            if self._executor is None:  # the pool is shut down: the load is over
                return
            for pages, task in scrolls:
                heapq.heappush(self._pending, (-pages, next(self._order), task))
                self._pending_pages += pages if math.isfinite(pages) else 0.0
            self._probing -= probed
            for _ in scrolls:
                self._executor.submit(self._run_longest)

    def tail_share(self) -> float:
        """The pages a scroll starting now should not exceed, so that it ends with the rest: the
        pending pages over the threads (infinite while windows are still being probed)."""
        with self._lock:
            return math.inf if self._probing else self._pending_pages / self.max_in_flight

    def holding(self, pages: float) -> None:
        """A table holds back (or, negative, lets go of) sub-windows of ``pages`` pages: they still
        count as pending for ``tail_share``."""
        with self._lock:
            self._pending_pages += pages

    def probing(self, change: int) -> None:
        with self._lock:
            self._probing += change

    def _run_longest(self) -> None:
        with self._lock:
            if not self._pending:
                return
            pages, _, task = heapq.heappop(self._pending)
            self._pending_pages -= -pages if math.isfinite(pages) else 0.0
        task()

    def pages(self, windows: list[Window], page_size: int, fetch: Fetch) -> Iterator[tuple[int, Any]]:
        """``(i, page)`` for each non-empty page of API window ``windows[i]``, as pages arrive, and
        once the window is done, ``(i, ApiCounts)``: what its sub-windows saw, summed."""
        self._acquire()
        table = _Table(self, windows, page_size, fetch)
        try:
            yield from table.items()
        finally:
            table.stop()
            self._release()


class _Table:
    """One table's scrolls: what they have fetched, what they still owe, and the first error."""

    def __init__(self, pool: ScrollPool, windows: list[Window], page_size: int, fetch: Fetch) -> None:
        self._pool, self._page_size, self._fetch = pool, page_size, fetch
        self._ready: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._buffered = 0
        self._parked: list[Callable[[], None]] = []
        self._running = 0  # scrolls started and not yet ended (parked ones too)
        self._starved = False  # dlt found no page waiting since a sub-window last started
        self._waiting: list[tuple[float, Callable[[], None]]] = []  # sub-windows not started: (pages, task)
        self._stopped = False
        self._owed = [1] * len(windows)  # scrolls still running per API window
        self._counts = [ApiCounts() for _ in windows]
        self._unprobed = set(range(len(windows)))  # API windows the pool counts as being probed
        pool.probing(len(windows))
        for i, window in enumerate(windows):
            self._pool.submit((math.inf, lambda i=i, w=window: self._scroll(i, w, PAGES_PER_SCROLL, math.inf)))

    def items(self) -> Iterator[tuple[int, Any]]:
        open_windows = len(self._owed)
        while open_windows:
            try:
                kind, i, item = self._ready.get_nowait()
            except queue.Empty:
                self._start_waiting(starved=True)
                kind, i, item = self._ready.get()
            if kind == "error":
                raise item
            if kind == "counts":
                open_windows -= 1
            else:
                with self._lock:
                    self._buffered -= 1
                    resume, self._parked = (self._parked, []) if self._buffered < BUFFERED_PAGES else ([], self._parked)
                for task in resume:
                    self._pool.submit((math.inf, task))
            yield i, item

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._parked.clear()
            held, self._waiting = sum(pages for pages, _ in self._waiting), []
            unprobed, self._unprobed = len(self._unprobed), set()
        self._pool.holding(-held)
        # A window whose probe never ran or never finished would keep the end-of-load split off.
        self._pool.probing(-unprobed)

    def _probed(self, i: int) -> bool:
        """Whether window ``i`` still counted as being probed; from now on it does not."""
        with self._lock:
            if i not in self._unprobed:
                return False
            self._unprobed.discard(i)
            return True

    def _scroll(self, i: int, window: Window, split_above: int, estimate: float) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._buffered >= BUFFERED_PAGES:  # dlt is behind: start no scroll that would only park
                self._parked.append(lambda: self._scroll(i, window, split_above, estimate))
                return
            wait = math.isfinite(estimate) and self._running > 0 and not self._starved  # a sub-window not needed yet
            if wait:
                self._waiting.append((estimate, lambda: self._scroll(i, window, split_above, estimate)))
            else:
                self._running += 1
                self._starved = self._starved and not math.isfinite(estimate)
        if wait:
            self._pool.holding(estimate)
            return
        # The last scrolls to start set when the load ends, one page after another: near the end, a
        # scroll longer than its share of the pages still pending is split first (see the module).
        share = self._pool.tail_share()
        if estimate > max(TAIL_PAGES, share) and (window[1] - window[0]).days > 1:
            self._split(i, window, math.ceil(estimate / max(TAIL_PAGES, share)), estimate)
            self._ended()
            return
        probe = not math.isfinite(estimate)  # an API window's first page: its size is not known yet
        counts = ApiCounts()
        pages = self._fetch(window, counts)
        try:
            first = next(pages, None)
            if first is not None and (window[1] - window[0]).days > 1:
                needed = math.ceil((counts.total_hits or 0) / self._page_size)
                if needed > split_above:
                    pages.close()
                    self._split(
                        i, window, math.ceil(needed / PAGES_PER_SCROLL), needed, probed=probe and self._probed(i)
                    )
                    self._ended()
                    return
        except BaseException as exc:
            pages.close()
            self._fail(exc)
            return
        if probe and self._probed(i):
            self._pool.probing(-1)
        self._continue(i, pages, counts, first)

    def _split(self, i: int, window: Window, parts: int, pages: float, probed: bool = False) -> None:
        """``window`` (about ``pages`` pages) as ``parts`` scrolls of equal days, pending (``probed``:
        its probe is done, and counts as done once they are pending)."""
        windows = split_days(window, parts)
        with self._lock:
            self._owed[i] += len(windows) - 1
        days = (window[1] - window[0]).days
        estimates = [pages * (end - start).days / days for start, end in windows]
        self._pool.submit(
            *(
                (e, lambda part=part, e=e: self._scroll(i, part, 2 * PAGES_PER_SCROLL, e))
                for part, e in zip(windows, estimates, strict=True)
            ),
            probed=probed,
        )

    def _continue(self, i: int, pages: Iterator[list[dict]], counts: ApiCounts, records: Any = _NEXT) -> None:
        """Hand pages over until the scroll ends, the table stops, or its buffer is full: then the
        scroll parks, off the pool, until dlt has taken a page."""
        try:
            while True:
                if records is _NEXT:
                    if self._stopped:
                        pages.close()
                        return
                    records = next(pages, None)
                if records is None:
                    break
                if len(records):
                    with self._lock:
                        if self._stopped:
                            pages.close()
                            return
                        self._buffered += 1
                        self._ready.put(("page", i, records))
                        if self._buffered >= BUFFERED_PAGES:
                            self._parked.append(lambda: self._continue(i, pages, counts))
                            return
                records = _NEXT
            self._done(i, counts)
        except BaseException as exc:
            pages.close()
            self._fail(exc)

    def _done(self, i: int, counts: ApiCounts) -> None:
        with self._lock:
            total = self._counts[i]
            total.total_hits = (total.total_hits or 0) + (counts.total_hits or 0)
            total.records += counts.records
            total.pages += counts.pages
            total.duplicates += counts.duplicates
            self._owed[i] -= 1
            if self._owed[i] == 0:
                self._ready.put(("counts", i, total))
        self._ended()

    def _ended(self) -> None:
        """A scroll ended; with none left running, the next sub-window starts."""
        with self._lock:
            self._running -= 1
        self._start_waiting()

    def _start_waiting(self, starved: bool = False) -> None:
        """The largest waiting sub-window starts if dlt has found no page waiting (``starved``) or no
        scroll is running; else dlt's next wait for a page starts it."""
        with self._lock:
            self._starved = self._starved or starved
            if not self._waiting or (self._running and not self._starved):
                return
            self._waiting.sort(key=lambda part: part[0])
            pages, task = self._waiting.pop()
        self._pool.holding(-pages)
        self._pool.submit((pages, task))

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._ready.put(("error", -1, exc))
