"""Postgres, with each merge holding its tables' lock: two loads of the same days at once stay exact.
Its merges delete key by key too (merges.py).

A delete-insert merge deletes the loaded days' rows and inserts the new ones in one transaction. Two
such transactions at once on Postgres (READ COMMITTED) each delete only the rows committed when their
DELETE began: neither sees the other's new rows, and both insert, so the day is stored twice. Each
merge here first takes ``SHARE ROW EXCLUSIVE`` on its tables, a mode that conflicts with itself and
with writers but not with readers: a second merge of a table waits for the first to commit, and its
DELETE then sees, and removes, the first one's rows. The lock ends with the transaction, also when
the loading process is killed. Snapshot replaces need none: their ``TRUNCATE`` locks the table.

Schema updates take a lock too. Loads into a new warehouse at once (the first backfill) each find no
tables and each create them, and all but one fail on Postgres's catalog (a duplicate key in
``pg_type``, or a deadlock). Each load here reads and updates the dataset's tables while holding an
advisory lock on the dataset's name: the next one then finds the tables made and creates none. The
lock ends with its connection, also when the loading process is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg2
from dlt.common.destination.client import FollowupJobRequest, PreparedTableSchema
from dlt.common.schema.typing import TSchemaTables
from dlt.destinations import postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient
from dlt.destinations.sql_client import SqlClientBase

from .merges import KeyByKeyMergeJob

LOCK_MODE = "SHARE ROW EXCLUSIVE"


def _schema_lock_key(dataset_name: str) -> int:
    """The advisory lock (a signed 64-bit key) that schema updates of ``dataset_name`` hold."""
    digest = hashlib.blake2b(f"aptrinsic-dagster schema update {dataset_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LockingMergeJob(KeyByKeyMergeJob):
    @classmethod
    def generate_sql(cls, table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]) -> list[str]:
        locks = [
            f"LOCK TABLE {sql_client.make_qualified_table_name(table['name'])} IN {LOCK_MODE} MODE"
            for table in table_chain
        ]
        return locks + super().generate_sql(table_chain, sql_client)


class LockingPostgresClient(PostgresClient):
    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequest]:
        return [LockingMergeJob.from_table_chain(table_chain, self.sql_client)]

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        with self._schema_update_lock():
            super().initialize_storage(truncate_tables)

    def update_stored_schema(
        self,
        only_tables: Iterable[str] | None = None,
        expected_update: TSchemaTables | None = None,
        force: bool = False,
    ) -> TSchemaTables | None:
        with self._schema_update_lock():
            return super().update_stored_schema(only_tables, expected_update, force)

    @contextlib.contextmanager
    def _schema_update_lock(self) -> Iterator[None]:
        # Held by a connection of its own: dlt resets its connection after a failed statement (it
        # reads _dlt_version before creating it), and psycopg2's reset releases session locks.
        # The dataset in use: a run's own staging dataset while dlt prepares it, which no other run touches.
        key = _schema_lock_key(self.sql_client.dataset_name)
        holder = psycopg2.connect(dsn=self.config.credentials.to_native_representation())
        try:
            holder.autocommit = True
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield
        finally:
            holder.close()


class LockingPostgres(postgres):
    """dlt's ``postgres`` destination with locking merges and schema updates; created with
    ``destination_name="postgres"`` it reads the same settings and credentials."""

    @property
    def client_class(self) -> type[PostgresClient]:
        return LockingPostgresClient
