"""Checks on every table, built on the API counts the load recorded (``_aptrinsic_api_counts``).

- ``rows_match_api`` (ERROR, blocking): rows in the warehouse for the run's window (events) or
  for the snapshot equal what the API reported: ``totalHits`` on scroll endpoints, else the
  records the API delivered.
- ``no_duplicate_keys`` (ERROR): no primary key appears twice (in the window, for events).
- ``not_empty`` (WARN): the API reported records but the table holds none.

Event checks read the run's partition window from its tags; run on their own (no partition),
they check the most recently loaded API window. ``rows_match_api`` on an event table also re-counts
every other window loaded before (the latest load of each): an ``event_id`` that moved to another day
is moved by the merge on ``event_id``, and the day that lost the row would otherwise stay green.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from . import day_counts
from .assets import EVENT_NAMES, POOL, SNAPSHOT_NAMES
from .names import asset_key
from .resources import AptrinsicResource, WarehouseResource
from .sources.aptrinsic import API_COUNTS_TABLE, TABLES
from .sources.aptrinsic.arrow import column_name
from .sources.aptrinsic.replace_days import whole_days
from .sources.aptrinsic.windows import Window, split_windows, window_key

ROWS_MATCH_API = "rows_match_api"
NO_DUPLICATE_KEYS = "no_duplicate_keys"
NOT_EMPTY = "not_empty"
STILL_MATCHES_API = "still_matches_api"
# What a load runs; still_matches_api re-counts the API, so it runs on demand (its own job).
DRIFT_REPAIR_CHECKS = (ROWS_MATCH_API, NO_DUPLICATE_KEYS, NOT_EMPTY)


def _specs(tables: Sequence[str]) -> list[dg.AssetCheckSpec]:
    specs = []
    for name in tables:
        key = asset_key(name)
        specs += [
            dg.AssetCheckSpec(
                ROWS_MATCH_API,
                asset=key,
                blocking=True,
                description="Rows in the warehouse equal what the API reported for the window or snapshot.",
            ),
            dg.AssetCheckSpec(NO_DUPLICATE_KEYS, asset=key, description="No primary key appears twice."),
            dg.AssetCheckSpec(NOT_EMPTY, asset=key, description="Warns when the API had records and none landed."),
        ]
    return specs


def run_window(tags: dict[str, str], daily: dg.DailyPartitionsDefinition) -> Window | None:
    """The event window of a run from its partition tags (a single key or a range)."""
    key = tags.get("dagster/partition")
    first = tags.get("dagster/asset_partition_range_start", key)
    last = tags.get("dagster/asset_partition_range_end", key)
    if not first or not last:
        return None
    return (
        daily.time_window_for_partition_key(first).start,
        daily.time_window_for_partition_key(last).end,
    )


class _Reconciliation:
    """Reads the warehouse for one table: the API counts the load recorded, and the rows that landed."""

    def __init__(self, sql: Any, table: str) -> None:
        self.sql, self.table = sql, table
        self.counts = sql.make_qualified_table_name(API_COUNTS_TABLE)
        self.target = sql.make_qualified_table_name(table)

    def _one(self, query: str, *args: Any) -> tuple:
        try:
            rows = self.sql.execute_sql(query, *args)
        except DatabaseUndefinedRelation:  # nothing was ever loaded into it
            return (None,)
        return tuple(rows[0]) if rows else (None,)

    def expected(self, keys: list[str]) -> tuple[int | None, list[str]]:
        """Sum of what the API reported for ``keys``, and the keys it has no API counts for."""
        placeholders = ", ".join(["%s"] * len(keys))
        try:
            rows = self.sql.execute_sql(
                f"SELECT window_key, coalesce(total_hits, records_fetched - duplicates_skipped) FROM {self.counts} "
                f"WHERE table_name = %s AND window_key IN ({placeholders})",
                self.table,
                *keys,
            )
        except DatabaseUndefinedRelation:
            rows = []
        found = dict(rows or [])
        missing = [k for k in keys if k not in found]
        return (None if missing else sum(found.values())), missing

    def latest_window(self) -> Window | None:
        start, *rest = self._one(
            f"SELECT window_start, window_end FROM {self.counts} WHERE table_name = %s AND window_start IS NOT NULL "
            "ORDER BY fetched_at DESC LIMIT 1",
            self.table,
        )
        return None if start is None else (start, rest[0])

    def changed_windows(self, window: Window) -> list[tuple[Any, Any, int, int]]:
        """Earlier-loaded windows outside ``window`` whose rows no longer equal what the API reported
        when they were loaded: ``(start, end, reported, rows)``. A window overlapped by a later load
        is that load's to answer for, and so is one whose load has not finished: runs load at once into
        a server warehouse, and another run's counts can commit before its rows (``_dlt_loads`` gets a
        load's row when all its tables are in)."""
        loads = self.sql.make_qualified_table_name("_dlt_loads")
        try:
            rows = self.sql.execute_sql(
                f"""
                WITH c AS (
                    SELECT window_start, window_end, total_hits, fetched_at FROM {self.counts}
                    WHERE table_name = %s AND window_start IS NOT NULL AND total_hits IS NOT NULL
                    AND _dlt_load_id IN (SELECT load_id FROM {loads} WHERE status = 0)
                ), live AS (
                    SELECT * FROM c WHERE NOT EXISTS (
                        SELECT 1 FROM c AS later WHERE later.fetched_at > c.fetched_at
                        AND later.window_start < c.window_end AND later.window_end > c.window_start)
                    AND (c.window_end <= %s OR c.window_start >= %s)
                )
                SELECT live.window_start, live.window_end, live.total_hits,
                    (SELECT count(*) FROM {self.target} AS t
                     WHERE t.date >= live.window_start AND t.date < live.window_end) AS landed
                FROM live ORDER BY live.window_start
                """,
                self.table,
                window[0],
                window[1],
            )
        except DatabaseUndefinedRelation:
            return []
        return [tuple(r) for r in rows or [] if r[2] != r[3]]

    def rows(self, window: Window | None) -> tuple[int, int]:
        """``(rows, rows - distinct primary keys)`` in the table, within ``window`` if given."""
        pk = column_name(TABLES[self.table].primary_key)
        where, args = ("WHERE date >= %s AND date < %s", window) if window else ("", ())
        rows, dupes = self._one(f"SELECT count(*), count(*) - count(DISTINCT {pk}) FROM {self.target} {where}", *args)
        return rows or 0, dupes or 0


def _evaluate(sql: Any, table: str, window: Window | None, window_days: int, selected: set[str]) -> Iterator[Any]:
    counts = _Reconciliation(sql, table)
    windowed = TABLES[table].windowed
    if windowed:
        window = window or counts.latest_window()
        keys = [window_key(a, b) for a, b in split_windows(*window, window_days)] if window else []
    else:
        keys = [window_key(None, None)]
    expected, missing = counts.expected(keys) if keys else (None, ["(no load recorded)"])
    actual, duplicates = counts.rows(window if windowed else None)
    meta = {
        "expected": expected if expected is not None else "unknown",
        "actual": actual,
        "window": f"[{window[0].isoformat()}, {window[1].isoformat()})" if windowed and window else "snapshot",
    }
    key = asset_key(table)
    if ROWS_MATCH_API in selected:
        description = (
            f"No API counts for window(s) {', '.join(missing)}: was this window loaded?"
            if missing
            else f"{actual} rows in the warehouse, {expected} reported by the API"
        )
        changed = counts.changed_windows(window) if windowed and window else []
        if changed:
            meta["changed_windows"] = "; ".join(
                f"[{a.isoformat()}, {b.isoformat()}): {n} rows, {hits} reported" for a, b, hits, n in changed
            )
            description += (
                f". {len(changed)} earlier-loaded window(s) no longer hold what the API reported "
                f"({meta['changed_windows']}): an event_id in this load was also on another day, and the load's "
                "delete-insert removed it there. Re-run those days' partitions (the drift sensor does it by itself "
                "within its days)."
            )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=ROWS_MATCH_API,
            passed=not missing and actual == expected and not changed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**meta, "detail": description},
        )
    if NO_DUPLICATE_KEYS in selected:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=NO_DUPLICATE_KEYS,
            passed=duplicates == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**meta, "duplicate_rows": duplicates},
        )
    if NOT_EMPTY in selected:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=NOT_EMPTY,
            passed=not (expected and actual == 0),
            severity=dg.AssetCheckSeverity.WARN,
            metadata=meta,
        )


def _build(name: str, tables: Sequence[str], daily: dg.DailyPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(specs=_specs(tables), name=name, can_subset=True, pool=POOL)
    def _checks(
        context: dg.AssetCheckExecutionContext, aptrinsic: AptrinsicResource, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected: dict[str, set[str]] = {}
        for check in context.selected_asset_check_keys:
            selected.setdefault(check.asset_key.path[-1], set()).add(check.name)
        window = run_window(context.run.tags, daily)
        with warehouse.sql(context.run.run_id) as sql:
            for table in tables:
                if table in selected:
                    yield from _evaluate(sql, table, window, aptrinsic.window_days, selected[table])

    return _checks


def _build_still_matches(daily: dg.DailyPartitionsDefinition, drift_days: int) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(
            STILL_MATCHES_API,
            asset=asset_key(name),
            description=(
                "Re-counts the API now against the warehouse, per day: the run's partition(s), else the loaded "
                f"days among the last {drift_days} (WARN)."
            ),
        )
        for name in EVENT_NAMES
    ]

    @dg.multi_asset_check(specs=specs, name="aptrinsic_still_matches_api_checks", can_subset=True, pool=POOL)
    def _checks(
        context: dg.AssetCheckExecutionContext, aptrinsic: AptrinsicResource, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        keys = [check.asset_key for check in context.selected_asset_check_keys]
        window = run_window(context.run.tags, daily)
        if window:
            days = whole_days(window)
        else:
            today = dt.datetime.now(dt.UTC).date()
            recent = [today - dt.timedelta(days=k) for k in range(drift_days, 0, -1)]
            days = sorted({day for _, day in day_counts.recorded(context.instance, keys, recent)})
        tables = [key.path[-1] for key in keys]
        api = aptrinsic.count_days([(t, d) for t in tables for d in days], aptrinsic.share(context.instance))
        with warehouse.sql(context.run.run_id) as sql:
            for table in tables:
                landed = day_counts.warehouse_counts(sql, table, days) if days else {}
                changed = {
                    d.isoformat(): f"{landed[d]} -> {api[(table, d)]}" for d in days if landed[d] != api[(table, d)]
                }
                yield dg.AssetCheckResult(
                    asset_key=asset_key(table),
                    check_name=STILL_MATCHES_API,
                    passed=bool(days) and not changed,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(f"Changed at the source since loaded: {', '.join(changed)}" if changed else None)
                    if days
                    else "No loaded day to re-count.",
                    metadata={
                        "days": ", ".join(d.isoformat() for d in days) or "none",
                        "expected": sum(api[(table, d)] for d in days),
                        "actual": sum(landed.values()),
                        "changed_days": list(changed) or "none",
                    },
                )

    return _checks


def build_checks(daily: dg.DailyPartitionsDefinition, drift_days: int) -> list[dg.AssetChecksDefinition]:
    return [
        _build("aptrinsic_event_checks", EVENT_NAMES, daily),
        _build_still_matches(daily, drift_days),
        _build("aptrinsic_snapshot_checks", SNAPSHOT_NAMES, daily),
        # Apart from the snapshots: users' blocking check must pass before preferences load.
        _build("aptrinsic_user_preferences_checks", ["user_preferences"], daily),
    ]
