"""Loads at once into one Postgres warehouse stay exact, the same days included.

Three hazards: dlt stages merges in ``<dataset>_staging``, and shared by loads at once their merges
duplicate or drop rows (dlt #4297), so each run stages in a dataset of its own; two delete-insert
merges of the same day at once each insert it, so each merge locks its table (merge_lock.py); and
first loads into a new warehouse at once each create its tables, so schema updates take a lock too.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from aptrinsic_dagster.sources.aptrinsic.pipeline import STAGING_PREFIX
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES
from aptrinsic_sandbox import Faults

from .helpers import API_KEY, DAY_MS, ROOT, ms, postgres_tables_holding

DAYS = [dt.date(2026, 3, 10), dt.date(2026, 3, 11), dt.date(2026, 3, 12), dt.date(2026, 3, 13)]
# Overlapping, as Dagster can start them: a range backfill twice, and the schedule's single days
# inside it. deploy/dagster.yaml queues runs of the same partition key, not a range over a day.
LOADS = [(DAYS[0], DAYS[-1]), (DAYS[0], DAYS[-1]), (DAYS[1], DAYS[1]), (DAYS[3], DAYS[3])]
TABLES = ["events_session", "events_page_view", "users"]
API_CAP = 40  # the subscription's requests/s: the sandbox answers 429 above it
# The runs' budget together, as the shipped default keeps it below the API's cap (180 of ~200/s): a
# run's limiter holds each second to its share when requests leave, but they arrive with jitter, so a
# budget equal to the cap would let a one-second window now and then count one request too many.
BUDGET = 30
# Small pages, so that the runs together could send several times the cap without their shares:
# (2 x 4 days + 2 x 1 day) x 2 tables x 800 events / 25, plus 4 x 300 users / 25: about 690 requests.
PAGE_SIZE = 25
# As a step does (assets.py): its share of the budget from the instance's pool limit (deploy/dagster.yaml: 4).
_LOAD = f"""
import sys, datetime as dt, dagster as dg
from aptrinsic_dagster.resources import AptrinsicResource, WarehouseResource
from aptrinsic_dagster.sources.aptrinsic.pipeline import load
start, end = (dt.datetime.fromisoformat(a).replace(tzinfo=dt.UTC) for a in sys.argv[2:4])
api = AptrinsicResource(rate_limit={BUDGET}, page_size={PAGE_SIZE})
with dg.DagsterInstance.get() as instance:
    share = api.share(instance)
assert share == {BUDGET} / 4, share
with WarehouseResource().pipeline(sys.argv[1], "load") as pipeline:
    load(pipeline, api.source(start, end, {TABLES!r}, share))
"""


def _environment(sandbox, postgres_server, tmp_path) -> tuple[dict[str, str], str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The production pool settings on a local instance (storage aside, which needs no server here).
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 4\n")
    with dg.DagsterInstance.from_config(str(home)):  # its storage created once, not raced by the processes
        pass
    url = postgres_server.create_database(f"c_{uuid.uuid4().hex[:12]}")
    env = {
        **os.environ,
        "APTRINSIC_API_KEY": API_KEY,
        "APTRINSIC_BASE_URL": sandbox.base_url,
        "APTRINSIC_DESTINATION": "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS": url,
        "APTRINSIC_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "DAGSTER_HOME": str(home),
    }
    return env, url


@dataclass
class _Load:
    """A load of some days in a process of its own. Its stderr goes to a file: dlt logs a line per
    page, and a pipe nobody reads fills up and stops the load."""

    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, env: dict[str, str], run: str, first: dt.date, last: dt.date) -> _Load:
        log = Path(env["APTRINSIC_PIPELINES_DIR"]).parent / f"load-{run}.log"
        end = (last + dt.timedelta(days=1)).isoformat()
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _LOAD, run, first.isoformat(), end], cwd=ROOT, env=env, stderr=err
            )
        return cls(proc, log)


def _failures(loads: list[_Load]) -> list[str]:
    return [load.log.read_text()[-3000:] for load in loads if load.proc.wait() != 0]


def _assert_days_exact(cur, sandbox, days: list[dt.date]) -> None:
    """Every loaded day of both event tables holds what the API holds for it, each event once."""
    for table in [t for t in EVENT_TABLES if t.name in TABLES]:
        for day in days:
            start = dt.datetime.combine(day, dt.time(), dt.UTC)
            cur.execute(
                f"SELECT count(*), count(DISTINCT event_id) FROM aptrinsic_data.{table.name} "
                "WHERE date >= %s AND date < %s",
                (start, start + dt.timedelta(days=1)),
            )
            expected = sandbox.count("/v1" + table.path, ms(day), ms(day) + DAY_MS)
            assert cur.fetchone() == (expected, expected), (table.name, day)


@pytest.mark.slow
def test_overlapping_loads_at_once_merge_exactly_share_one_api_budget_and_leave_no_staging(
    make_sandbox, postgres_server, tmp_path
):
    sandbox = make_sandbox(users=300, events_per_day=800, faults=Faults(latency_ms=5, rate_cap=API_CAP))
    env, url = _environment(sandbox, postgres_server, tmp_path)
    runs = [str(uuid.uuid4()) for _ in LOADS]
    loads = [_Load.start(env, run, first, last) for run, (first, last) in zip(runs, LOADS, strict=True)]
    # While they load: every staging dataset that appears belongs to one of the runs.
    seen: set[str] = set()
    con = psycopg2.connect(url)
    con.autocommit = True
    while any(load.proc.poll() is None for load in loads):
        with con.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", ("%staging%",))
            seen |= {name for (name,) in cur.fetchall()}
        time.sleep(0.05)
    assert not (errors := _failures(loads)), errors
    assert seen, "the loads staged"
    assert seen <= {STAGING_PREFIX + run.replace("-", "") for run in runs}, seen

    with con.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", ("%staging%",))
        assert cur.fetchall() == [], "every staging dataset was dropped; none is shared"
        _assert_days_exact(cur, sandbox, DAYS)
        cur.execute("SELECT count(*), count(DISTINCT identify_id) FROM aptrinsic_data.users")
        assert cur.fetchone() == (300, 300)
    con.close()
    assert not postgres_tables_holding(url, API_KEY)
    # Four runs at once, one API budget: no 429, the peak within the API's cap.
    stats = sandbox.stats.snapshot()
    print(
        f"4 concurrent loads: peak {stats['peak_rps']} requests/s, budget {BUDGET}, cap {API_CAP}, "
        f"{stats['total_requests']} requests"
    )
    assert stats["total_requests"] > 15 * API_CAP
    assert "429" not in stats["statuses"] and stats["peak_rps"] <= API_CAP, stats["statuses"]


def _two_loads_released_together(env, url, sandbox, blocker, waiting_sql: str, where: str, release: Callable) -> None:
    """Starts two loads of one day, waits until ``waiting_sql`` counts two lock waits (both loads held
    at ``where`` by ``blocker``'s open transaction), lets them go at once (``release``: its commit or
    rollback) and asserts both succeed and the day is exact."""
    day = DAYS[0]
    loads = [_Load.start(env, str(uuid.uuid4()), day, day) for _ in range(2)]
    watcher = psycopg2.connect(url)
    watcher.autocommit = True
    deadline = time.monotonic() + 180
    with watcher.cursor() as cur:
        while True:
            cur.execute(waiting_sql)
            if cur.fetchone()[0] == 2:
                break
            assert all(load.proc.poll() is None for load in loads), _failures(loads)
            assert time.monotonic() < deadline, f"both loads reach {where}"
            time.sleep(0.1)
    release()
    blocker.close()
    assert not (errors := _failures(loads)), errors
    with watcher.cursor() as cur:
        _assert_days_exact(cur, sandbox, [day])
    watcher.close()


@pytest.mark.slow
def test_two_merges_of_the_same_day_at_the_same_moment_store_it_once(make_sandbox, postgres_server, tmp_path):
    """The interleaving that stores a day twice, made certain: a session holds SHARE on the table
    (as ``CREATE INDEX`` does) until both loads wait at its merge, then lets them go together."""
    day = DAYS[0]
    sandbox = make_sandbox(users=50, events_per_day=300)
    env, url = _environment(sandbox, postgres_server, tmp_path)
    assert not (errors := _failures([_Load.start(env, str(uuid.uuid4()), day, day)])), errors  # the day, loaded

    blocker = psycopg2.connect(url)
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE aptrinsic_data.events_session IN SHARE MODE")
    waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'aptrinsic_data.events_session'::regclass"
    _two_loads_released_together(env, url, sandbox, blocker, waiting, "the merge of events_session", blocker.commit)


@pytest.mark.slow
def test_two_first_loads_into_an_empty_warehouse_at_the_same_moment_both_create_its_tables(
    make_sandbox, postgres_server, tmp_path
):
    """The race that failed a run of a first backfill (a seven-day range launched on a new warehouse):
    both loads find no tables and both create them, and the second ``CREATE TABLE`` fails on
    Postgres's catalog (duplicate key in ``pg_type``, or a deadlock). Made certain here: a session
    creating ``_dlt_version`` holds both loads inside the schema update, then rolls back."""
    sandbox = make_sandbox(users=50, events_per_day=300)
    env, url = _environment(sandbox, postgres_server, tmp_path)
    blocker = psycopg2.connect(url)
    with blocker.cursor() as cur:
        cur.execute("CREATE SCHEMA aptrinsic_data")
        blocker.commit()
        cur.execute("CREATE TABLE aptrinsic_data._dlt_version (version bigint)")  # not committed
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid IN "
        "(SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
    )
    _two_loads_released_together(env, url, sandbox, blocker, waiting, "the schema update", blocker.rollback)
