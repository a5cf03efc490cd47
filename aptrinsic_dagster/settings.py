"""The project's own settings: every ``APTRINSIC_*`` variable is read here, and only when a run or an
entry point starts, never at import. A resource field set in code or run config wins over them.

dlt's own settings (``.dlt/config.toml``, ``.dlt/secrets.toml``, ``SOURCES__APTRINSIC__*``) are read by
dlt itself and come last: the API key falls back to ``[sources.aptrinsic] api_key``.
"""

from __future__ import annotations

import os

from .sources.aptrinsic.pipeline import DEFAULT_DUCKDB_PATH

API_KEY = "APTRINSIC_API_KEY"
BASE_URL = "APTRINSIC_BASE_URL"
DUCKDB_PATH = "APTRINSIC_DUCKDB_PATH"
DESTINATION = "APTRINSIC_DESTINATION"
PIPELINES_DIR = "APTRINSIC_PIPELINES_DIR"
START_DATE = "APTRINSIC_START_DATE"
DRIFT_DAYS = "APTRINSIC_DRIFT_DAYS"
DRIFT_INTERVAL_SECONDS = "APTRINSIC_DRIFT_INTERVAL_SECONDS"
EVENTS_DEADLINE_CRON = "APTRINSIC_EVENTS_DEADLINE_CRON"
SNAPSHOTS_MAX_AGE_HOURS = "APTRINSIC_SNAPSHOTS_MAX_AGE_HOURS"
ALERT_WEBHOOK_URL = "APTRINSIC_ALERT_WEBHOOK_URL"

DEFAULT_DESTINATION = "duckdb"
DEFAULT_PIPELINES_DIR = ".dlt/pipelines"
DEFAULT_START_DATE = "2026-01-01"
DEFAULT_DRIFT_DAYS = 7
DEFAULT_DRIFT_INTERVAL_SECONDS = 3600
# Yesterday's events load at 00:15 UTC; from 03:00 UTC on, a missing partition is overdue.
DEFAULT_EVENTS_DEADLINE_CRON = "0 3 * * *"
# Snapshots refresh daily at 00:45 UTC; a day and two hours leaves room for one slow refresh.
DEFAULT_SNAPSHOTS_MAX_AGE_HOURS = 26.0


def _read(name: str) -> str | None:
    return os.environ.get(name) or None


def api_key() -> str | None:
    """None: dlt resolves ``[sources.aptrinsic] api_key`` from ``.dlt/secrets.toml``."""
    return _read(API_KEY)


def base_url() -> str | None:
    """None: the region's host."""
    return _read(BASE_URL)


def duckdb_path() -> str:
    return _read(DUCKDB_PATH) or DEFAULT_DUCKDB_PATH


def destination() -> str:
    return _read(DESTINATION) or DEFAULT_DESTINATION


def pipelines_dir() -> str:
    return _read(PIPELINES_DIR) or DEFAULT_PIPELINES_DIR


def start_date() -> str:
    return _read(START_DATE) or DEFAULT_START_DATE


def drift_days() -> int:
    """How many days back the drift sensor re-counts (read when the definitions load)."""
    return int(_read(DRIFT_DAYS) or DEFAULT_DRIFT_DAYS)


def drift_interval_seconds() -> int:
    return int(_read(DRIFT_INTERVAL_SECONDS) or DEFAULT_DRIFT_INTERVAL_SECONDS)


def events_deadline_cron() -> str:
    """By when (UTC cron) the latest complete day's events partition must exist (read when definitions load)."""
    return _read(EVENTS_DEADLINE_CRON) or DEFAULT_EVENTS_DEADLINE_CRON


def snapshots_max_age_hours() -> float:
    """How old the last snapshot refresh may get before it is overdue (read when definitions load)."""
    return float(_read(SNAPSHOTS_MAX_AGE_HOURS) or DEFAULT_SNAPSHOTS_MAX_AGE_HOURS)


def alert_webhook_url() -> str | None:
    """A Slack-compatible incoming-webhook URL; None: no alerts are sent (read at each sensor tick)."""
    return _read(ALERT_WEBHOOK_URL)


def api_arguments(key: str | None = None, url: str | None = None) -> dict[str, str]:
    """The source's ``api_key`` and ``base_url``, given in code or by the variables above. What is
    left out, dlt injects from ``[sources.aptrinsic]`` (an explicit None would stop it looking)."""
    given = {"api_key": key or api_key(), "base_url": url or base_url()}
    return {name: value for name, value in given.items() if value}
