"""Event windows: half-open ``[start, end)`` instants in UTC, and their split into API windows.

An event at exactly ``end`` belongs to the next window. The API refuses windows longer than
190 days, so a long range is fetched as consecutive windows with no gap and no overlap.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .errors import AptrinsicConfigError
from .settings import MAX_WINDOW_DAYS

Window = tuple[dt.datetime, dt.datetime]
SNAPSHOT_WINDOW = "snapshot"  # the window key of a table that is not windowed


def instant(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A date, datetime or ISO-8601 string as an aware UTC datetime (naive values are UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def event_window(start: Any = None, end: Any = None, today: dt.date | None = None) -> Window:
    """``[start, end)``; ``end`` defaults to today 00:00 UTC and ``start`` to one day before ``end``."""
    today = today or dt.datetime.now(dt.UTC).date()
    end_at = instant(end) if end is not None else instant(today)
    start_at = instant(start) if start is not None else end_at - dt.timedelta(days=1)
    if start_at >= end_at:
        raise AptrinsicConfigError(f"start ({start_at.isoformat()}) must be before end ({end_at.isoformat()})")
    return start_at, end_at


def split_windows(start: dt.datetime, end: dt.datetime, days: int = MAX_WINDOW_DAYS) -> list[Window]:
    """``[start, end)`` as consecutive half-open windows of at most ``days``: no gap, no overlap."""
    windows, step = [], dt.timedelta(days=days)
    while start < end:
        windows.append((start, min(start + step, end)))
        start += step
    return windows


def window_key(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """How the API counts table names a window: ``<start ISO>/<end ISO>``, or ``snapshot``."""
    if start is None or end is None:
        return SNAPSHOT_WINDOW
    return f"{start.astimezone(dt.UTC).isoformat()}/{end.astimezone(dt.UTC).isoformat()}"


def epoch_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def date_filter(window: Window) -> str:
    """The API's filter for a window: ``date>=<start ms>;date<<end ms>``."""
    return f"date>={epoch_ms(window[0])};date<{epoch_ms(window[1])}"
