"""What the catalog shows per materialization: row counts, the table's full name, described columns."""

import datetime as dt
import json

import pytest

from aptrinsic_dagster.sources.aptrinsic.arrow import column_name
from aptrinsic_dagster.sources.aptrinsic.column_docs import COLUMN_DOCS
from aptrinsic_dagster.sources.aptrinsic.contract_docs import CONTRACT, column_docs, load_contract, record_schema
from aptrinsic_dagster.sources.aptrinsic.settings import EVENT_TABLES, TABLES

from .helpers import DAY_MS, ms, query, row_count
from .test_assets import RANGE, run

DAYS = ["2026-03-12", "2026-03-13"]


def _documented(contract: dict, table: str) -> dict[str, str]:
    """``{column: contract description}`` of the fields the contract describes, one level of $ref deep."""
    definitions = contract["definitions"]
    out = {}

    def walk(schema: dict, prefix: str) -> None:
        for name, field in (schema.get("properties") or {}).items():
            target = definitions[field["$ref"].rsplit("/", 1)[-1]] if "$ref" in field else field
            if target.get("properties") and name not in TABLES[table].json_fields:
                walk(target, prefix + name + ".")
            elif field.get("description") and name != "customAttributes":
                out[prefix + name] = " ".join(field["description"].split()).rstrip(".")

    walk(record_schema(contract, TABLES[table]), "")
    return out


def test_committed_column_docs_equal_what_the_contract_gives():
    assert CONTRACT.exists(), f"the vendor contract belongs at {CONTRACT} (shared/ beside the repository)"
    assert column_docs(load_contract()) == COLUMN_DOCS, "regenerate: python -m ...contract_docs --regenerate"


@pytest.mark.slow
def test_materializations_carry_row_counts_table_names_and_described_columns(defs, deploy):
    deployment = deploy(users=120, accounts=20, events_per_day=50)
    snapshots = run(defs, deployment, "aptrinsic_snapshots")
    events = run(defs, deployment, "aptrinsic_daily_events", tags=RANGE)
    assert snapshots.success and events.success
    sandbox, path = deployment.sandbox, deployment.duckdb_path
    materializations = [
        m
        for result in (snapshots, events)
        for node in ("load_aptrinsic_snapshots", "load_aptrinsic_user_preferences", "load_aptrinsic_events")
        for m in result.asset_materializations_for_node(node)
    ]
    assert {m.asset_key.path[-1] for m in materializations} == set(TABLES)

    # Rows: the whole table on every materialization; each day's own rows on each partition.
    for m in materializations:
        table = m.asset_key.path[-1]
        assert m.metadata["dagster/row_count"].value == row_count(path, table), table
        assert m.metadata["dagster/table_name"].value == f"aptrinsic.aptrinsic_data.{table}"
    for table in EVENT_TABLES:
        per_day = {
            m.partition: m.metadata["dagster/partition_row_count"].value
            for m in materializations
            if m.asset_key.path[-1] == table.name
        }
        expected = {
            day: sandbox.count(
                "/v1" + table.path, ms(dt.date.fromisoformat(day)), ms(dt.date.fromisoformat(day)) + DAY_MS
            )
            for day in DAYS
        }
        assert per_day == expected, table.name
        assert sum(per_day.values()) == row_count(path, table.name) > 0

    # Columns: on each asset's latest materialization (a range's last partition), which the catalog
    # shows, every field the contract describes carries that description, in Dagster's column schema
    # and in dlt's stored schema; every loaded column has a description of some kind.
    latest = {
        m.asset_key: deployment.instance.get_latest_materialization_event(m.asset_key).asset_materialization
        for m in materializations
    }
    with_columns = {(m.asset_key, m.partition) for m in materializations if "dagster/column_schema" in m.metadata}
    assert with_columns == {(key, m.partition) for key, m in latest.items()}
    assert {m.partition for m in latest.values() if m.partition} == {DAYS[-1]}
    # So is what describes the load rather than the day (dagster-dlt's jobs and timings); the range's
    # other partitions keep the day's and the table's fields.
    for m in materializations:
        load_facts = {"jobs", "started_at", "rows_loaded"} & set(m.metadata)
        assert load_facts == ({"jobs", "started_at", "rows_loaded"} if m.partition in (None, DAYS[-1]) else set())
        if m.partition:
            assert {"dagster/row_count", "dagster/table_name", "aptrinsic/window"} <= set(m.metadata)
    contract = load_contract()
    (stored,) = query(path, "SELECT schema FROM aptrinsic_data._dlt_version ORDER BY inserted_at DESC LIMIT 1")[0]
    dlt_tables = json.loads(stored)["tables"]
    documented = set()
    for m in latest.values():
        table = m.asset_key.path[-1]
        columns = {c.name: c.description for c in m.metadata["dagster/column_schema"].value.columns}
        loaded = {c for (c,) in query(path, f"SELECT column_name FROM (DESCRIBE aptrinsic_data.{table})")}
        assert set(columns) == loaded, table
        for field, text in _documented(contract, table).items():
            column = column_name(field)
            if column in loaded:
                documented.add((table, column))
                assert text in columns[column], (table, column)
                assert text in dlt_tables[table]["columns"][column]["description"], (table, column)
        assert all(d for c, d in columns.items() if not c.startswith("_dlt")), table
    assert len(documented) >= 35  # the sandbox sends most documented fields, over all tables
