"""Merges that delete key by key: dlt's delete-insert with one DELETE per key, on DuckDB (and, under
its lock, on Postgres: merge_lock.py). And on DuckDB, one connection to the file per load package.

An event table's merge has two keys: the event id (an event that moved to another day leaves its old
one) and the day (a loaded day is replaced whole). dlt deletes by both in one statement, ``WHERE
EXISTS (... d.id = s.id OR d.day = s.day)``, and neither DuckDB nor Postgres hash-joins an OR: each
stored row is compared with every staged one (dlt #2752 reports the same on Snowflake). With the
sandbox's events on DuckDB, reloading one day (2,844 events) into 90k stored took 1.88 s, into 1.09M
10.0 s: one of eleven tables, in every daily run, growing with the history; 30 days into 90k ran out
of the 80 MB limit after 66 s, and dlt retried it again and again. On Postgres one day into 90k took
17.9 s. One DELETE per key, as dlt's own BigQuery merge does it, deletes the same rows (their union)
through hash joins: 0.02 s, 0.06 s and 0.05 s (benchmarks/merge_delete.py).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from dlt.common.destination.client import FollowupJobRequest, PreparedTableSchema
from dlt.destinations import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbConnectionPool
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.sql_jobs import SqlMergeFollowupJob


class KeyByKeyMergeJob(SqlMergeFollowupJob):
    """dlt's merge, selecting the rows to delete by each key in a statement of its own."""

    @classmethod
    def gen_key_table_clauses(
        cls,
        root_table_name: str,
        staging_root_table_name: str,
        primary_keys: Sequence[str],
        merge_keys: Sequence[str],
        for_delete: bool,
        source_filter: str | None = None,
    ) -> list[str]:
        return [
            f"FROM {root_table_name} AS d WHERE EXISTS (SELECT 1 FROM {staging_root_table_name} AS s"
            f" WHERE {cls._gen_staging_rows_cond(clause.format(d='d', s='s'), source_filter)})"
            for clause in cls._gen_key_table_clauses(primary_keys, merge_keys)
        ]


# dlt opens the DuckDB file for each job of a load and closes it after, ~20 times a load: 0.64 s of a
# day's 1.25 s load (benchmarks/). One connection held from a package's start (initialize_storage)
# to its end (complete_load) keeps the file open in between. A load that fails never reaches its end:
# the entry points close what is still held when the load is over (``close_held_connections``).
_HELD: weakref.WeakKeyDictionary[DuckDbConnectionPool, Any] = weakref.WeakKeyDictionary()
_HELD_LOCK = threading.Lock()


def close_held_connections() -> None:
    """Close the connections loads still hold (a failed load's); every later job opens its own."""
    with _HELD_LOCK:
        held = list(_HELD.items())
        _HELD.clear()
    for pool, conn in held:
        pool.return_conn(conn)


class KeyByKeyDuckDbClient(DuckDbClient):
    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequest]:
        return [KeyByKeyMergeJob.from_table_chain(table_chain, self.sql_client)]

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        pool = self.config.credentials.conn_pool
        with _HELD_LOCK:  # a package starts: dlt calls this first, in every load
            if pool is not None and pool not in _HELD:
                _HELD[pool] = pool.borrow_conn()
        super().initialize_storage(truncate_tables)

    def complete_load(self, load_id: str) -> None:
        super().complete_load(load_id)
        pool = self.config.credentials.conn_pool
        with _HELD_LOCK:
            held = _HELD.pop(pool, None) if pool is not None else None
        if held is not None:
            pool.return_conn(held)


class KeyByKeyDuckDb(duckdb):
    """dlt's ``duckdb`` destination with key-by-key merges; the same settings and credentials."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return KeyByKeyDuckDbClient
