"""Loads at once into one Postgres warehouse stay exact: each run stages in a dataset of its own.

dlt stages merges in ``<dataset>_staging``; shared by loads at once, their merges duplicate or drop
rows (dlt #4297). Here four processes merge a day each into the same tables and replace the same
snapshot together.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import dagster as dg
import psycopg2
import pytest

from aptrinsic_dagster.sources.aptrinsic.pipeline import STAGING_PREFIX
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES
from aptrinsic_sandbox import Faults

from .helpers import API_KEY, DAY_MS, ROOT, ms, postgres_tables_holding

# One day a run, as Dagster queues them (deploy/dagster.yaml: one run per partition at a time): loads
# of the same day at once on Postgres can insert the day twice. Four runs merging through one shared
# staging dataset would still corrupt each other's days.
DAYS = [dt.date(2026, 3, 10), dt.date(2026, 3, 11), dt.date(2026, 3, 12), dt.date(2026, 3, 13)]
API_CAP = 40  # the subscription's requests/s: the sandbox answers 429 above it
# The runs' budget together, as the shipped default keeps it below the API's cap (150 of ~200/s): a
# run's limiter spaces its requests exactly, but they arrive with jitter, so a budget equal to the
# cap would let a one-second window now and then count one request too many.
BUDGET = 30
# Small pages, so that the runs together could send several times the cap without their shares:
# 4 runs x (2 tables x 800 events + 300 users) / 25: about 290 requests, 7 s at the cap.
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
    load(pipeline, api.source(start, end, ["events_session", "events_page_view", "users"], share))
"""


@pytest.mark.slow
def test_four_loads_at_once_merge_exactly_share_one_api_budget_and_leave_no_staging(
    make_sandbox, postgres_server, tmp_path
):
    sandbox = make_sandbox(users=300, events_per_day=800, faults=Faults(latency_ms=5, rate_cap=API_CAP))
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The production pool settings on a local instance (storage aside, which needs no server here).
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 4\n")
    with dg.DagsterInstance.from_config(str(home)):  # its storage created once, not raced by four processes
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
    runs = [str(uuid.uuid4()) for _ in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD, run, day.isoformat(), (day + dt.timedelta(days=1)).isoformat()],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        for run, day in zip(runs, DAYS, strict=True)
    ]
    # While they load: every staging dataset that appears belongs to one of the runs.
    seen: set[str] = set()
    con = psycopg2.connect(url)
    con.autocommit = True
    while any(p.poll() is None for p in procs):
        with con.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", ("%staging%",))
            seen |= {name for (name,) in cur.fetchall()}
    errors = [p.stderr.read().decode()[-3000:] for p in procs if p.wait() != 0]
    assert not errors, errors
    assert seen, "the loads staged"
    assert seen <= {STAGING_PREFIX + run.replace("-", "") for run in runs}, seen

    with con.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", ("%staging%",))
        assert cur.fetchall() == [], "every staging dataset was dropped; none is shared"
        for table in [t for t in EVENT_TABLES if t.name in ("events_session", "events_page_view")]:
            for day in DAYS:
                start = dt.datetime.combine(day, dt.time(), dt.UTC)
                cur.execute(
                    f"SELECT count(*), count(DISTINCT event_id) FROM aptrinsic_data.{table.name} "
                    "WHERE date >= %s AND date < %s",
                    (start, start + dt.timedelta(days=1)),
                )
                expected = sandbox.count("/v1" + table.path, ms(day), ms(day) + DAY_MS)
                assert cur.fetchone() == (expected, expected), (table.name, day)
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
    assert stats["total_requests"] > 7 * API_CAP
    assert "429" not in stats["statuses"] and stats["peak_rps"] <= API_CAP, stats["statuses"]
