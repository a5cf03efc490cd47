"""The DELETE of an event table's merge, dlt's one statement (``id = id OR day = day``) against the
project's one statement per key (sources/aptrinsic/merges.py), side by side on DuckDB and Postgres:
a stored history of 30 or 365 days, reloaded by one day (the daily run) or 30 days (a backfill).

    .venv/bin/python -m benchmarks.merge_delete [--per-day 3000] [--limit 60]

Each DELETE runs in a transaction that is rolled back, so every one starts from the same table; its
SQL comes from the merge job classes the loads use. DuckDB runs under the project's memory limit. A
statement still running after ``--limit`` seconds is interrupted and shown as ``> limit``.
"""

from __future__ import annotations

import argparse
import functools
import threading
import time
from collections.abc import Callable

import duckdb
from dlt.destinations.sql_jobs import SqlMergeFollowupJob

from aptrinsic_dagster.sources.aptrinsic.merges import KeyByKeyMergeJob
from aptrinsic_dagster.sources.aptrinsic.pipeline import DUCKDB_MEMORY_LIMIT
from aptrinsic_sandbox.postgres import PostgresServer

HISTORIES = (30, 365)  # days stored
RELOADS = (1, 30)  # days reloaded, the latest ones
PAYLOAD = 8  # text columns beside the keys, an event's width roughly

# Events of `days` days, `per_day` a day: a unique id, the day, and text payload.
_EVENTS = """
SELECT 'e-' || d || '-' || i AS event_id, DATE '2025-01-01' + d::INTEGER AS day, {payload}
FROM generate_series(0, {days} - 1) AS a(d), generate_series(1, {per_day}) AS b(i)
"""


def _events(days: int, per_day: int) -> str:
    payload = ", ".join(f"md5(i::text || '{n}') AS p{n}" for n in range(PAYLOAD))
    return _EVENTS.format(payload=payload, days=days, per_day=per_day)


def _latest(history: int, days: int) -> str:
    return f"SELECT * FROM events WHERE day >= DATE '2025-01-01' + {history - days}"


def statements(job: type[SqlMergeFollowupJob], table: str, staging: str) -> list[str]:
    return [f"DELETE {c}" for c in job.gen_key_table_clauses(table, staging, ["event_id"], ["day"], for_delete=True)]


def _timed(run: Callable[[], int], interrupt: Callable[[], None], limit: float) -> tuple[float, str, int | None]:
    """Seconds, how it ended (``""``: it finished) and the rows it deleted."""
    timer = threading.Timer(limit, interrupt)
    timer.start()
    start = time.perf_counter()
    try:
        deleted = run()
    except Exception as exc:
        elapsed = time.perf_counter() - start
        return elapsed, "interrupted" if elapsed >= limit else type(exc).__name__, None
    finally:
        timer.cancel()
    return time.perf_counter() - start, "", deleted


def _cell(timing: tuple[float, str, int | None]) -> str:
    seconds, end, _ = timing
    return f"{seconds:.2f}" if not end else f"> {seconds:.0f}" if end == "interrupted" else f"{end} ({seconds:.0f} s)"


def _rolled_back(execute: Callable[[str], int], sql: list[str]) -> int:
    execute("BEGIN")
    try:
        return sum(execute(statement) for statement in sql)
    finally:
        execute("ROLLBACK")


def _compare(
    name: str, execute: Callable[[str], int], interrupt: Callable[[], None], per_day: int, limit: float
) -> list[tuple]:
    """Both DELETEs for every history and reload, each in a transaction rolled back after it."""
    rows = []
    for history in HISTORIES:
        execute("DROP TABLE IF EXISTS events")
        execute(f"CREATE TABLE events AS {_events(history, per_day)}")
        for reload in RELOADS:
            execute("DROP TABLE IF EXISTS staging")
            execute(f"CREATE TABLE staging AS {_latest(history, reload)}")
            execute("ANALYZE")
            timings = []
            for job in (SqlMergeFollowupJob, KeyByKeyMergeJob):
                run = functools.partial(_rolled_back, execute, statements(job, "events", "staging"))
                timings.append(_timed(run, interrupt, limit))
            joined, split = (t[2] for t in timings)
            if split is None:
                raise SystemExit(f"{name}: the key-by-key DELETE did not finish ({_cell(timings[1])})")
            if joined is not None and joined != split:
                raise SystemExit(f"{name}: one statement deleted {joined} rows, one per key {split}")
            rows.append((name, history * per_day, reload * per_day, *timings))
    return rows


def duckdb_rows(per_day: int, limit: float) -> list[tuple]:
    con = duckdb.connect(":memory:", config={"memory_limit": DUCKDB_MEMORY_LIMIT})

    def execute(sql: str) -> int:
        result = con.execute(sql).fetchall()
        return result[0][0] if sql.startswith("DELETE") else 0

    return _compare("DuckDB", execute, con.interrupt, per_day, limit)


def postgres_rows(per_day: int, limit: float) -> list[tuple]:
    with PostgresServer.start() as server:
        con = server.connect()
        con.autocommit = True  # BEGIN and ROLLBACK are sent by hand
        cur = con.cursor()

        def execute(sql: str) -> int:
            cur.execute(sql)
            return cur.rowcount

        try:
            return _compare("Postgres", execute, con.cancel, per_day, limit)
        finally:
            con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=3000, help="events a day in the table (default 3000)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a DELETE is interrupted")
    args = parser.parse_args()
    rows = duckdb_rows(args.per_day, args.limit) + postgres_rows(args.per_day, args.limit)
    print(f"merge DELETE, seconds: dlt's one statement (OR) against one per key; {args.per_day:,} events a day")
    print("(both deleted the same rows wherever both finished)")
    print(
        f"{'warehouse':<10}{'stored rows':>13}{'reloaded rows':>15}{'one statement':>34}{'one per key':>13}{'ratio':>9}"
    )
    for warehouse, stored, reloaded, joined, split in rows:
        ratio = f"{'>' if joined[1] else ''}{joined[0] / split[0]:.0f}x"
        print(f"{warehouse:<10}{stored:>13,}{reloaded:>15,}{_cell(joined):>34}{_cell(split):>13}{ratio:>9}")


if __name__ == "__main__":
    main()
