"""Daily (UTC) partitions of the event tables; a partition's window is exactly the window loaded."""

import dagster as dg

from . import settings


def daily_partitions(start_date: str | None = None) -> dg.DailyPartitionsDefinition:
    """From ``start_date``, default ``APTRINSIC_START_DATE`` (read when definitions load)."""
    return dg.DailyPartitionsDefinition(start_date=start_date or settings.start_date(), timezone="UTC")
