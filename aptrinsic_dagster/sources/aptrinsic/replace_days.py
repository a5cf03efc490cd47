"""Each load of an event window replaces the UTC days it covers, so a loaded day holds exactly what
the API holds for it now: records added, changed, and those the API no longer returns removed.

dlt's ``delete-insert`` merge does it, keyed on the day column: it deletes the loaded days' rows and
inserts the new ones in one transaction per table, so a reader sees the old day or the new one. A day
the API now has nothing for would send no row to delete by, so every load also sends one marker row
per day; dlt deletes that day's rows for it and, as a ``hard_delete`` row, never inserts it.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from .errors import AptrinsicConfigError
from .windows import Window

DAY_COLUMN = "_aptrinsic_day"  # the UTC date of the event's `date`: the merge key
MARKER_COLUMN = "_aptrinsic_day_marker"  # true on marker rows only, which never land
WRITE_DISPOSITION = {"disposition": "merge", "strategy": "delete-insert"}
COLUMN_HINTS = {
    DAY_COLUMN: {
        "data_type": "date",
        "description": "The UTC date of `date`, added by the loader: each load replaces the days it covers.",
    },
    MARKER_COLUMN: {
        "data_type": "bool",
        "hard_delete": True,
        "description": "Added by the loader: true only on per-day marker rows, which are never stored (always null).",
    },
}


def whole_days(window: Window) -> list[dt.date]:
    """The days of a window that starts and ends at 00:00 UTC; an error for any other window."""
    start, end = window
    if any((t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0) for t in window):
        raise AptrinsicConfigError(
            f"Event windows are whole UTC days (a load replaces the days it covers); got [{start.isoformat()}, "
            f"{end.isoformat()}). Pass dates, or instants at 00:00 UTC."
        )
    return [start.date() + dt.timedelta(days=i) for i in range((end - start).days)]


def with_day(page: pa.Table) -> pa.Table:
    """The page with its day column, from the `date` column (UTC)."""
    return page.append_column(DAY_COLUMN, page.column("date").cast(pa.date32()))


def day_markers(days: list[dt.date], primary_key: str) -> pa.Table:
    """One marker row per day: ``~<day>`` can never be an event id (the API's are UUIDs)."""
    return pa.table(
        {
            primary_key: pa.array([f"~{day.isoformat()}" for day in days], pa.string()),
            DAY_COLUMN: pa.array(days, pa.date32()),
            MARKER_COLUMN: pa.array([True] * len(days), pa.bool_()),
        }
    )
