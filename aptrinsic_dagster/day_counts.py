"""Rows per event table and UTC day: recorded by each load, read back by the drift sensor.

A load's materialization of each day's partition carries the rows the table holds for that day once
the load is done (``dagster/partition_row_count``, assets.py). The sensor reads them from Dagster's
own storage, so it never opens the warehouse a run may be writing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from .resources import DayKey
from .sources.aptrinsic.replace_days import DAY_COLUMN

ROWS = "dagster/partition_row_count"


def warehouse_counts(sql: Any, table: str, days: Sequence[dt.date]) -> dict[dt.date, int]:
    """Rows per day in the warehouse, 0 for a day with none."""
    rows = sql.execute_sql(
        f"SELECT {DAY_COLUMN}, count(*) FROM {sql.make_qualified_table_name(table)} "
        f"WHERE {DAY_COLUMN} >= %s AND {DAY_COLUMN} <= %s GROUP BY 1",
        min(days),
        max(days),
    )
    found = {_date(day): count for day, count in rows or []}
    return {day: found.get(day, 0) for day in days}


def recorded(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], days: Sequence[dt.date]) -> dict[DayKey, int]:
    """The rows each day's latest materialization recorded, per table; a day never loaded is absent."""
    partitions = [day.isoformat() for day in days]
    counts: dict[DayKey, int] = {}
    for key in keys:
        table = key.path[-1]
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
            limit=50 * len(partitions),
            ascending=False,
        )
        seen: set[str] = set()
        for record_ in result.records:
            materialization = record_.asset_materialization
            if not materialization or not materialization.partition or materialization.partition in seen:
                continue
            seen.add(materialization.partition)
            if (value := materialization.metadata.get(ROWS)) is not None:
                counts[(table, dt.date.fromisoformat(materialization.partition))] = int(value.value)
    return counts


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else value.date()
