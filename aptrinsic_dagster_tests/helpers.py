"""What tests share beside fixtures: the fixed calendar, warehouse queries, failure text, key scans."""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb
import psycopg2

from aptrinsic_sandbox import Sandbox

API_KEY = "test-key-0123456789abcdef"
# A fixed calendar so windows and partitions in tests never depend on the day they run.
END_DATE = dt.date(2026, 3, 15)
DAY_MS = 86_400_000
ROOT = Path(__file__).resolve().parents[1]

SandboxFactory = Callable[..., Sandbox]
E = TypeVar("E", bound=BaseException)


def ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def image_env() -> dict[str, str]:
    """The variables deploy/Dockerfile's ENV instructions set in the image."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = [p for line in text.splitlines() if line.startswith("ENV ") for p in shlex.split(line[4:])]
    return dict(pair.split("=", 1) for pair in pairs)


def query(path: Path, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def row_count(path: Path, table: str) -> int:
    return query(path, f"SELECT count(*) FROM aptrinsic_data.{table}")[0][0]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)


def cause(error: BaseException | None, kind: type[E]) -> E:
    """The first ``kind`` in the chain under dlt's wrappers (``.exception``, then ``__cause__``)."""
    while error is not None and not isinstance(error, kind):
        error = getattr(error, "exception", None) or error.__cause__
    assert error is not None, f"no {kind.__name__} in the chain"
    return error


def files_holding(secret: str, roots: Iterable[Path]) -> list[str]:
    """Every file below ``roots`` whose bytes contain ``secret``."""
    needle = secret.encode()
    return [str(p) for root in roots for p in Path(root).rglob("*") if p.is_file() and needle in p.read_bytes()]


@dataclass
class Warehouse:
    """Where a test's runs load: a DuckDB file, or a database of its own on the test Postgres server.
    ``env`` is what an operator sets (Postgres credentials the dlt way, never in run config)."""

    kind: str  # "duckdb" or "postgres"
    env: dict[str, str]
    duckdb_path: Path
    url: str | None = None

    def query(self, sql: str, *params: object) -> list[tuple]:
        """``sql`` with ``%s`` placeholders, on either warehouse."""
        if self.kind == "duckdb":
            return query(self.duckdb_path, sql.replace("%s", "?"), *params)
        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return [tuple(r) for r in cur.fetchall()]
        finally:
            con.close()

    def contents(self, table: str, order_by: str) -> list[dict]:
        """Every row of ``table`` but its load id, in ``order_by`` order."""
        columns = [c for (c,) in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'aptrinsic_data' "
            "AND table_name = %s AND column_name <> '_dlt_load_id' ORDER BY column_name", table,
        )]  # fmt: skip
        rows = self.query(f"SELECT {', '.join(columns)} FROM aptrinsic_data.{table} ORDER BY {order_by}")
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) FROM aptrinsic_data.{table}")[0][0]

    def schemas(self) -> set[str]:
        return {s for (s,) in self.query("SELECT schema_name FROM information_schema.schemata")}


def postgres_tables_holding(url: str, secret: str) -> list[str]:
    """Every table of the database at ``url`` (all schemas but the system's) with a row whose text
    contains ``secret``: warehouse tables, dlt's ``_dlt_*`` tables, Dagster's storage."""
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            tables = cur.fetchall()
            assert tables, f"no tables to scan in {url.rsplit('/', 1)[-1]}"
            found = []
            for schema, table in tables:
                # The whole row as text: every column, of any type (json, bytea as hex is not text).
                cur.execute(f'SELECT 1 FROM "{schema}"."{table}" AS t WHERE t::text LIKE %s LIMIT 1', (f"%{secret}%",))
                if cur.fetchone():
                    found.append(f"{schema}.{table}")
            return found
    finally:
        con.close()
