"""Rows per event table and UTC day: recorded by each load, read back by the drift sensor.

A load records, for every day of its window, the rows the table holds for that day once the load
is done, as an ``AssetObservation`` on that day's partition (``aptrinsic/rows``). The sensor reads
them from Dagster's own storage, so it never opens the warehouse a run may be writing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from .resources import DayKey
from .sources.aptrinsic.replace_days import DAY_COLUMN

ROWS = "aptrinsic/rows"


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


def record(context: dg.AssetExecutionContext, key: dg.AssetKey, counts: dict[dt.date, int]) -> None:
    for day, rows in counts.items():
        context.log_event(dg.AssetObservation(asset_key=key, partition=day.isoformat(), metadata={ROWS: rows}))


def recorded(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], days: Sequence[dt.date]) -> dict[DayKey, int]:
    """The latest recorded rows per table and day; a day never loaded is absent."""
    partitions = [day.isoformat() for day in days]
    counts: dict[DayKey, int] = {}
    for key in keys:
        table = key.path[-1]
        result = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
            limit=50 * len(partitions),
            ascending=False,
        )
        for record_ in result.records:
            observation = record_.asset_observation
            value = observation.metadata.get(ROWS) if observation else None
            if value is not None and observation.partition:
                counts.setdefault((table, dt.date.fromisoformat(observation.partition)), int(value.value))
    return counts


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else value.date()
