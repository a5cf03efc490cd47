"""Daily (UTC) partitions of the event tables; a partition's window is exactly the window loaded."""

import os

import dagster as dg

START_DATE_ENV = "APTRINSIC_START_DATE"

daily_partitions = dg.DailyPartitionsDefinition(start_date=os.environ.get(START_DATE_ENV, "2026-01-01"), timezone="UTC")
