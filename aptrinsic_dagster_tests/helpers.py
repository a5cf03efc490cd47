"""What tests share beside fixtures: the fixed calendar, warehouse queries, failure text, key scans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb

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
