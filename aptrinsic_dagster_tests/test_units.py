"""Pure functions, tested directly: windows, the partition window of a run, page sizes, type keeping,
the keys a snapshot has seen, the rate limiter."""

import bisect
import datetime as dt
import itertools
import os
import random
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

from aptrinsic_dagster.checks import run_window
from aptrinsic_dagster.partitions import daily_partitions
from aptrinsic_dagster.sources.aptrinsic import AptrinsicConfigError
from aptrinsic_dagster.sources.aptrinsic.arrow import TypeKeeper
from aptrinsic_dagster.sources.aptrinsic.client import RateLimiter
from aptrinsic_dagster.sources.aptrinsic.seen_keys import SeenKeys
from aptrinsic_dagster.sources.aptrinsic.settings import page_sizes_by_table
from aptrinsic_dagster.sources.aptrinsic.subwindows import split_days
from aptrinsic_dagster.sources.aptrinsic.windows import (
    date_filter,
    event_window,
    instant,
    split_windows,
    window_key,
)

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("days", [1, 7, 190])
@pytest.mark.parametrize(("start", "end"), [(at(2025, 1, 1), at(2026, 3, 15)), (at(2026, 3, 1, 13), at(2026, 3, 2))])
def test_split_windows_cover_the_range_without_gap_or_overlap(start, end, days):
    windows = split_windows(start, end, days)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a_end == b_start for (_, a_end), (b_start, _) in itertools.pairwise(windows))
    assert all(a < b <= a + dt.timedelta(days=days) for a, b in windows)


def test_a_400_day_range_is_three_api_windows_of_at_most_190_days():
    windows = split_windows(at(2025, 1, 1), at(2025, 1, 1) + dt.timedelta(days=400))
    assert [(b - a).days for a, b in windows] == [190, 190, 20]


def test_instants_are_utc_and_the_default_window_is_yesterday():
    assert instant("2026-03-01") == at(2026, 3, 1)
    assert instant("2026-03-01T01:00:00+01:00") == at(2026, 3, 1)
    assert instant(dt.date(2026, 3, 1)) == at(2026, 3, 1)
    assert event_window(today=dt.date(2026, 3, 15)) == (at(2026, 3, 14), at(2026, 3, 15))
    with pytest.raises(AptrinsicConfigError, match="must be before end"):
        event_window("2026-03-02", "2026-03-01")


def test_window_keys_and_the_api_filter():
    assert window_key(at(2026, 3, 1), at(2026, 3, 2)) == "2026-03-01T00:00:00+00:00/2026-03-02T00:00:00+00:00"
    assert window_key(None, None) == "snapshot"
    assert date_filter((at(2026, 3, 1), at(2026, 3, 2))) == "date>=1772323200000;date<1772409600000"


def test_run_window_reads_a_single_partition_or_a_range_from_run_tags():
    daily = daily_partitions("2026-01-01")
    assert run_window({"dagster/partition": "2026-03-05"}, daily) == (at(2026, 3, 5), at(2026, 3, 6))
    tags = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-07"}
    assert run_window(tags, daily) == (at(2026, 3, 1), at(2026, 3, 8))
    assert run_window({}, daily) is None


def test_seen_keys_pass_each_key_once_over_pages_with_repeats_within_and_across_them():
    # 200 pages of 1,000 keys drawn from 150,000: nearly half repeat a key of an earlier page, and a
    # few come twice in one page. Each must pass once, the first time it comes, as a set passes it.
    rng = random.Random(7)
    seen, reference, passed = SeenKeys(), set(), 0
    for _ in range(200):
        page = [f"user-{rng.randrange(150_000):07d}" for _ in range(1000)]
        expected = []
        for key in page:
            expected.append(key not in reference)
            reference.add(key)
        assert seen.fresh(page).tolist() == expected
        passed += sum(expected)
    assert passed == len(reference) > 100_000
    assert not seen.fresh(sorted(reference)[:5000]).any()


def test_page_sizes_default_to_each_maximum_and_respect_a_cap():
    sizes = page_sizes_by_table(None, {})
    assert sizes["users"] == 1000 and sizes["feature_flags"] == 200 and sizes["engagements"] == 500
    capped = page_sizes_by_table(300, {"users": 50})
    assert capped["users"] == 50 and capped["accounts"] == 300 and capped["feature_flags"] == 200


@pytest.mark.parametrize(
    ("page_size", "page_sizes", "message"),
    [
        (None, {"feature_flags": 500}, r"allows 1\.\.200 on /feature"),
        (None, {"users": 0}, r"allows 1\.\.1000 on /users"),
        (None, {"nope": 10}, "unknown tables: nope"),
        (0, {}, "at least 1"),
    ],
)
def test_page_sizes_outside_the_contract_are_refused(page_size, page_sizes, message):
    with pytest.raises(AptrinsicConfigError, match=message):
        page_sizes_by_table(page_size, page_sizes)


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def test_type_keeper_keeps_first_types_and_sends_others_to_variants():
    keeper = TypeKeeper({"seats": {"data_type": "bigint"}, "tags": {"data_type": "json"}})
    page = keeper.conform(pa.table({"seats": pa.array(["12 seats"]), "tags": pa.array([5]), "score": pa.array([3])}))
    assert page.column_names == ["seats__v_text", "tags", "score"]
    assert _column(page, "tags") == ["5"]  # a JSON column travels as text: the number is cast
    later = keeper.conform(pa.table({"score": pa.array([2.5]), "seats": pa.array([7])}))
    assert later.column_names == ["score__v_double", "seats"] and _column(later, "seats") == [7]


def test_type_keeper_widens_integers_into_a_double_column():
    keeper = TypeKeeper({"ratio": {"data_type": "double"}})
    page = keeper.conform(pa.table({"ratio": pa.array([1, 2])}))
    assert page.schema.field("ratio").type == pa.float64() and _column(page, "ratio") == [1.0, 2.0]
    flags = TypeKeeper({"flag": {"data_type": "text"}}).conform(pa.table({"flag": pa.array([True])}))
    assert _column(flags, "flag") == ["true"]


@pytest.mark.parametrize(("days", "parts", "expected"), [(190, 12, 12), (10, 3, 3), (3, 8, 3), (1, 4, 1)])
def test_sub_windows_are_whole_days_without_gap_or_overlap(days, parts, expected):
    start = at(2025, 3, 1)
    windows = split_days((start, start + dt.timedelta(days=days)), parts)
    assert len(windows) == expected
    assert windows[0][0] == start and windows[-1][1] == start + dt.timedelta(days=days)
    assert all(a_end == b_start for (_, a_end), (b_start, _) in itertools.pairwise(windows))
    assert all(a < b and (b - a) % dt.timedelta(days=1) == dt.timedelta(0) for a, b in windows)
    sizes = [(b - a).days for a, b in windows]
    assert max(sizes) - min(sizes) <= 1


def test_the_rate_limiter_holds_any_one_second_to_its_rate_when_threads_wake_late():
    """Threads that get the GIL late for their turn (here: two threads of pure Python holding it for
    0.2 s at a time) must not send together: spacing alone let 39-44 through in a second at 30/s."""
    limiter, rate, sent, until = RateLimiter(30), 30, [], time.monotonic() + 4
    lock = threading.Lock()

    def send() -> None:
        while time.monotonic() < until:
            limiter.wait()
            with lock:
                sent.append(time.monotonic())

    def hold_the_gil() -> None:
        while time.monotonic() < until:
            sum(range(20_000))

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.2)
    try:
        threads = [threading.Thread(target=send) for _ in range(16)]
        threads += [threading.Thread(target=hold_the_gil) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    sent.sort()
    busiest = max(bisect.bisect_left(sent, at + 1.0) - i for i, at in enumerate(sent))
    assert len(sent) > 3 * rate
    # The times are taken after wait() returns, so a late thread may record one a little later.
    assert busiest <= rate + 2, busiest


def _allocator(first: str) -> subprocess.CompletedProcess:
    """A fresh interpreter that imports ``first``, then the project and pyarrow, tunes the process as
    a load does and allocates, from Python and inside Arrow (``Table.nbytes`` takes Arrow's own default
    pool, not the one Python set): its memory pool and what mimalloc allocated on stdout, jemalloc's
    settings on stderr."""
    code = (
        f"import os, {first}; os.environ['JE_ARROW_MALLOC_CONF'] = os.environ.get('JE_ARROW_MALLOC_CONF', '') + "
        "',stats_print:true'; import pyarrow as pa; from aptrinsic_dagster.sources.aptrinsic.pipeline import "
        "tune_process; tune_process(); pa.table({'s': ['x' * 100] * 1000}).nbytes; "
        "print(pa.default_memory_pool().backend_name, pa.mimalloc_memory_pool().max_memory())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("JE_ARROW_MALLOC_CONF", "ARROW_DEFAULT_MEMORY_POOL")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_arrow_allocates_from_jemalloc_set_up_before_pyarrow_loaded_else_through_malloc():
    # The package, imported first as Dagster's processes do, sets Arrow's jemalloc up before pyarrow
    # loads: one arena, no per-thread caches, freed pages returned at once (jemalloc prints its settings).
    tuned = _allocator("aptrinsic_dagster")
    assert tuned.stdout.split() == ["jemalloc", "0"], tuned.stderr[-2000:]  # nothing from Arrow's mimalloc
    assert "opt.narenas: 1" in tuned.stderr and "opt.tcache: false" in tuned.stderr
    assert "opt.dirty_decay_ms: 0" in tuned.stderr and "opt.muzzy_decay_ms: 0" in tuned.stderr
    # Where pyarrow loaded first, jemalloc never read them: allocate through glibc's malloc instead.
    # Arrow's own default stays its mimalloc there.
    late = _allocator("pyarrow")
    backend, mimalloc = late.stdout.split()
    assert backend == "system" and int(mimalloc) > 0, late.stderr[-2000:]
