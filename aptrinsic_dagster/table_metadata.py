"""What a materialization tells the catalog about its table: rows, the fully qualified name, and a
column schema whose columns carry the vendor contract's descriptions.

- ``dagster/row_count``: rows in the whole table after the load (the asset page plots it).
- ``dagster/partition_row_count``: rows of each partition's day, per partition of the run (a
  backfill range gives each partition its own count, though the load was one).
- ``dagster/table_name``: ``<database>.<dataset>.<table>`` as the destination names it (dagster-dlt
  builds it from the dlt schema's name, which is not the database's).
- ``dagster/column_schema``: dagster-dlt's, with each column's description from ``column_docs.py``
  (dagster-dlt would list dlt's ``description`` hint as a constraint instead).

A range's partitions each carry the fields in ``EVERY_PARTITION``; what describes the load as a whole
(the column schema, dagster-dlt's jobs, timings and destination) is on its last partition only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from .day_counts import warehouse_counts
from .sources.aptrinsic import TABLES
from .sources.aptrinsic.contract_docs import describe

COLUMN_SCHEMA = "dagster/column_schema"
WINDOW = "aptrinsic/window"  # the API window the run loaded, ``[start, end)``
# On each partition of a range; the rest describes the load (dlt's jobs, timings, destination, the
# columns) and goes on the range's last partition only (assets.py).
EVERY_PARTITION = frozenset({"dagster/row_count", "dagster/table_name", "dagster/storage_kind", WINDOW})


def qualified_name(sql: Any, table: str) -> str:
    path = sql.make_qualified_table_name_path(table, quote=False)
    catalog = sql.catalog_name(quote=False)
    if catalog is None:  # DuckDB and Postgres clients leave the database out of their names
        try:
            catalog = sql.execute_sql("SELECT current_database()")[0][0]
        except Exception:  # a destination without current_database(): schema.table is still exact
            catalog = None
    return ".".join([catalog, *path] if catalog and path[0] != catalog else path)


def row_counts(sql: Any, table: str, partition_keys: Sequence[str]) -> tuple[int, dict[str, int]]:
    """Rows in ``table``, and rows per daily partition (its UTC day): one grouped query for a whole range."""
    (total,) = sql.execute_sql(f"SELECT count(*) FROM {sql.make_qualified_table_name(table)}")[0]
    if not partition_keys:
        return int(total), {}
    per_day = warehouse_counts(sql, table, [dt.date.fromisoformat(key) for key in partition_keys])
    return int(total), {day.isoformat(): rows for day, rows in per_day.items()}


def described(table: str, schema: dg.TableSchema | None) -> dg.TableSchema | None:
    if schema is None:
        return None
    columns = []
    for column in schema.columns:
        other = [c for c in (column.constraints.other or []) if c != "description"]
        columns.append(
            dg.TableColumn(
                name=column.name,
                type=column.type,
                description=describe(table, column.name) or column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=column.constraints.nullable, unique=column.constraints.unique, other=other
                ),
                tags=column.tags,
            )
        )
    return dg.TableSchema(columns=columns, constraints=schema.constraints)


def table_metadata(
    sql: Any, table: str, metadata: Mapping[str, Any], partition_keys: Sequence[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """Metadata for every partition of the materialization, and each partition's row count."""
    total, per_partition = row_counts(sql, table, partition_keys if TABLES[table].windowed else [])
    schema = metadata.get(COLUMN_SCHEMA)
    schema = described(table, schema.value if isinstance(schema, dg.TableSchemaMetadataValue) else schema)
    extra: dict[str, Any] = {"dagster/row_count": total, "dagster/table_name": qualified_name(sql, table)}
    if schema is not None:
        extra[COLUMN_SCHEMA] = schema
    return extra, per_partition
