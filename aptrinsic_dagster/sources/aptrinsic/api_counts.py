"""API counts: what the API reported for each table and window, kept in ``_aptrinsic_api_counts``.

Every load writes one row per table and API window (``window_key``; ``snapshot`` for tables that
are not windowed): ``total_hits`` as the API reported it (scroll endpoints), the records and pages
fetched, and the duplicates skipped. Asset checks reconcile the warehouse against these rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dlt
import pyarrow as pa

from .windows import window_key

API_COUNTS_TABLE = "_aptrinsic_api_counts"
API_COUNTS_KEY = ["table_name", "window_key"]

_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("window_key", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("total_hits", pa.int64()),
        ("records_fetched", pa.int64()),
        ("pages_fetched", pa.int64()),
        ("duplicates_skipped", pa.int64()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class ApiCounts:
    """What one walk over an endpoint saw, filled in as pages arrive."""

    total_hits: int | None = None
    records: int = 0
    pages: int = 0
    duplicates: int = 0

    def row(self, table: str, start: dt.datetime | None = None, end: dt.datetime | None = None) -> Any:
        """This walk as a row of the API counts table, routed there by dlt."""
        row = {
            "table_name": table,
            "window_key": window_key(start, end),
            "window_start": start,
            "window_end": end,
            "total_hits": self.total_hits,
            "records_fetched": self.records,
            "pages_fetched": self.pages,
            "duplicates_skipped": self.duplicates,
            "fetched_at": dt.datetime.now(dt.UTC),
        }
        return dlt.mark.with_table_name(pa.Table.from_pylist([row], schema=_SCHEMA), API_COUNTS_TABLE)
