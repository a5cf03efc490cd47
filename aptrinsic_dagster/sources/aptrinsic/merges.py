"""Merges that delete key by key: dlt's delete-insert with one DELETE per key, on DuckDB (and, under
its lock, on Postgres: merge_lock.py).

An event table's merge has two keys: the event id (an event that moved to another day leaves its old
one) and the day (a loaded day is replaced whole). dlt deletes by both in one statement, ``WHERE
EXISTS (... d.id = s.id OR d.day = s.day)``, and neither DuckDB nor Postgres hash-joins an OR: each
stored row is compared with every staged one (dlt #2752 reports the same on Snowflake). With the
sandbox's events on DuckDB, reloading one day (2,844 events) into 90k stored took 1.88 s, into 1.09M
10.0 s: one of eleven tables, in every daily run, growing with the history; 30 days into 90k ran out
of the 80 MB limit after 66 s, and dlt retried it again and again. On Postgres one day into 90k took
17.9 s. One DELETE per key, as dlt's own BigQuery merge does it, deletes the same rows (their union)
through hash joins: 0.02 s, 0.06 s and 0.05 s (benchmarks/merge_delete.py).

On DuckDB the staged rows are also deduplicated another way. dlt keeps one row per primary key with
``ROW_NUMBER() OVER (PARTITION BY key)``, a window that holds every staged row, all columns, in
DuckDB's buffer: under 80 MB it ran out of memory on scenario 3's 303k staged events_page_view rows
replayed in a table of their own, and on 200k rows of ~300 bytes (the test), and dlt retries such a
job; a year's backfill of a busy subscription stages millions. Keeping a row when no staged row of its
key comes before it (``NOT EXISTS``, an anti-join whose hash table holds only the keys and row ids)
streams the wide rows: 3.0M staged events loaded at 80 MB in 5.9 s, where a plain INSERT of them took
6.5 s, and 6.1M in 15 s; through dlt at 56 MB, 4.0M staged rows of ~300 bytes into an empty table in
27 s. A SQL job now raises the buffer to what its staged rows need (``running_sql_jobs``, below).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from dlt.common.destination.client import FollowupJobRequest, LoadJob, PreparedTableSchema
from dlt.common.schema.typing import TSortOrder
from dlt.destinations import duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.destinations.sql_client import SqlClientBase
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


class KeyByKeyDuckDbMergeJob(KeyByKeyMergeJob):
    """The merge on DuckDB: keys one by one, and the staged rows deduplicated by an anti-join."""

    @classmethod
    def gen_select_from_dedup_sql(
        cls,
        table_name: str,
        primary_keys: Sequence[str],
        columns: Sequence[str],
        dedup_sort: tuple[str, TSortOrder] | None = None,
        condition: str | None = None,
        condition_columns: Sequence[str] | None = None,
        skip_dedup: bool = False,
    ) -> str:
        # DuckDB's rowid orders the staged rows; a column of that name would hide it.
        shadowed = any(c.strip('"').lower() == "rowid" for c in columns)
        if skip_dedup or dedup_sort is not None or not primary_keys or shadowed:
            return super().gen_select_from_dedup_sql(
                table_name, primary_keys, columns, dedup_sort, condition, condition_columns, skip_dedup
            )
        same_key = " AND ".join(f"e.{key} = s.{key}" for key in primary_keys)
        return (
            f"SELECT {', '.join(columns)} FROM {table_name} AS s WHERE ({condition or '1 = 1'}) AND NOT EXISTS"
            f" (SELECT 1 FROM {table_name} AS e WHERE {same_key} AND e.rowid < s.rowid)"
        )


# DuckDB's joins and deletes take buffers in proportion to the rows staged and replaced, spilling or
# not: at 2 threads, 56 MB merged 1M staged rows over 0.5M stored ones and ran out of memory at 2M over
# 1M (72 MB merged them) and at 8M over 4M (150 MB merged them). So a SQL job (a table's merge, its
# replace from staging) runs with the buffer raised to what its table's staged rows need, and those
# of the SQL jobs running beside it: they share the buffer. 44 MB and 16 bytes a row give 60 MB at 1M
# rows, 76 at 2M, 172 at 8M. The raise lasts while the load holds a connection: dlt's pool sets the
# configured limit again on the first connection it lends after all were returned.
STAGED_MEMORY_BASE = 44 * 10**6
STAGED_MEMORY_PER_ROW = 16
_SIZE_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def staged_memory(staged_rows: int) -> int:
    """DuckDB's buffer, in bytes, for SQL jobs over ``staged_rows`` staged rows."""
    return STAGED_MEMORY_BASE + STAGED_MEMORY_PER_ROW * staged_rows


class _RunningSqlJobs:
    """The staged rows of the SQL jobs running now, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows = 0

    @contextlib.contextmanager
    def memory_for(self, sql_client: SqlClientBase[Any], table_name: str) -> Iterator[None]:
        """Runs a SQL job of ``table_name`` with DuckDB's buffer raised to what its staged rows (the
        table's and its nested tables') and those of the jobs beside it need; never lowers it, so a
        job that started under a larger limit keeps it."""
        rows = sql_client.execute_sql(
            "SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() WHERE database_name = current_database()"
            " AND schema_name = %s AND (table_name = %s OR starts_with(table_name, %s))",
            sql_client.staging_dataset_name,
            table_name,
            f"{table_name}__",
        )[0][0]
        with self._lock:
            self._rows += rows
            value, unit = sql_client.execute_sql("SELECT current_setting('memory_limit')")[0][0].split()
            need = staged_memory(self._rows)
            if float(value) * _SIZE_UNITS[unit] < need:
                sql_client.execute_sql(f"SET memory_limit = '{math.ceil(need / 10**6)}MB'")
        try:
            yield
        finally:
            with self._lock:
                self._rows -= rows


running_sql_jobs = _RunningSqlJobs()


class StagedSizeSqlJob(SqlLoadJob):
    """A SQL job of the load (a table's merge, its replace from staging), run with DuckDB's buffer
    raised to what the staged rows need (``running_sql_jobs``)."""

    def run(self) -> None:
        sql_client = self._job_client.sql_client
        with running_sql_jobs.memory_for(sql_client, self._parsed_file_name.table_name):
            super().run()


class KeyByKeyDuckDbClient(DuckDbClient):
    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequest]:
        return [KeyByKeyDuckDbMergeJob.from_table_chain(table_chain, self.sql_client)]

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        if SqlLoadJob.is_sql_job(file_path):
            return StagedSizeSqlJob(file_path)
        return super().create_load_job(table, file_path, load_id, restore)


class KeyByKeyDuckDb(duckdb):
    """dlt's ``duckdb`` destination with key-by-key merges; the same settings and credentials."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return KeyByKeyDuckDbClient
