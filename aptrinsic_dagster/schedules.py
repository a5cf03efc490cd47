"""Schedules, in UTC: yesterday's events at 00:15, the snapshot refresh at 00:45."""

import dagster as dg

from .jobs import daily_events_job, snapshots_job

# The daily partition for day D closes at midnight UTC; the 00:15 tick asks for it.
daily_events_schedule = dg.build_schedule_from_partitioned_job(
    daily_events_job, hour_of_day=0, minute_of_hour=15, default_status=dg.DefaultScheduleStatus.RUNNING
)

snapshots_schedule = dg.ScheduleDefinition(
    job=snapshots_job,
    cron_schedule="45 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
