"""Postgres, with each merge holding its tables' lock: two loads of the same days at once stay exact.
Its merges delete key by key too (merges.py).

A delete-insert merge deletes the loaded days' rows and inserts the new ones in one transaction. Two
such transactions at once on Postgres (READ COMMITTED) each delete only the rows committed when their
DELETE began: neither sees the other's new rows, and both insert, so the day is stored twice. Each
merge here first takes ``SHARE ROW EXCLUSIVE`` on its tables, a mode that conflicts with itself and
with writers but not with readers: a second merge of a table waits for the first to commit, and its
DELETE then sees, and removes, the first one's rows. The lock ends with the transaction, also when
the loading process is killed. Snapshot replaces need none: their ``TRUNCATE`` locks the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlt.common.destination.client import FollowupJobRequest, PreparedTableSchema
from dlt.destinations import postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient
from dlt.destinations.sql_client import SqlClientBase

from .merges import KeyByKeyMergeJob

LOCK_MODE = "SHARE ROW EXCLUSIVE"


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


class LockingPostgres(postgres):
    """dlt's ``postgres`` destination with locking merges; created with ``destination_name="postgres"``
    it reads the same settings and credentials."""

    @property
    def client_class(self) -> type[PostgresClient]:
        return LockingPostgresClient
