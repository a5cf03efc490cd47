"""Column descriptions from the vendor contract, as committed data (``column_docs.py``).

The Swagger file (``../shared/aptrinsic/gainsight-px-rest-api-openapi.yml``) is not shipped with the
package, so its field docs are turned into a Python module once and committed:

    .venv/bin/python -m aptrinsic_dagster.sources.aptrinsic.contract_docs --regenerate

Each table's record definition is walked the way ``arrow.py`` lays the record out: nested objects
become ``parent__child`` columns, lists and free-form maps (``Table.json_fields``) stay one JSON
column, a free-form ``customAttributes`` map has no fixed columns. A column's description is the
contract's description of the field, its allowed values, and the API field it comes from.
A test checks that the committed module equals what the contract gives today.
"""

from __future__ import annotations

import argparse
import pprint
import subprocess
import sys
from pathlib import Path
from typing import Any

from .arrow import column_name
from .settings import TABLES, Table

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = ROOT.parent / "shared" / "aptrinsic" / "gainsight-px-rest-api-openapi.yml"
OUTPUT = Path(__file__).with_name("column_docs.py")


def _ref(definitions: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def record_schema(contract: dict[str, Any], table: Table) -> dict[str, Any]:
    """The contract's definition of one record of ``table``'s GET endpoint."""
    definitions = contract["definitions"]
    # The contract names the attribute endpoints once, as /admin/model/{type}/attributes.
    path = table.path.replace("/model/user/", "/model/{type}/").replace("/model/account/", "/model/{type}/")
    body = _ref(definitions, contract["paths"]["/v1" + path]["get"]["responses"]["200"]["schema"])
    if table.record_key is not None and "properties" in body:
        body = body["properties"][table.record_key]
    if body.get("type") == "array":
        body = body["items"]
    return _ref(definitions, body)


def _describe(field: dict[str, Any], path: str) -> str:
    parts = []
    if field.get("description"):
        parts.append(" ".join(str(field["description"]).split()).rstrip(".") + ".")
    if field.get("enum"):
        parts.append("One of " + ", ".join(str(v) for v in field["enum"]) + ".")
    if path.rsplit(".", 1)[-1] == "date" or path.endswith("Date"):
        parts.append("Epoch milliseconds in the API (0: never), a UTC timestamp here.")
    parts.append(f"API field `{path}`.")
    return " ".join(parts)


def _walk(definitions: dict[str, Any], schema: dict[str, Any], table: Table, prefix: str, out: dict[str, str]) -> None:
    for name, raw in (schema.get("properties") or {}).items():
        path = prefix + name
        field = _ref(definitions, raw) if "$ref" in raw else raw
        nested = field.get("type", "object") == "object" and field.get("properties")
        if nested and name not in table.json_fields:
            _walk(definitions, field, table, path + ".", out)
        elif field.get("type") == "object" and not field.get("properties") and name == "customAttributes":
            continue  # free-form: its keys become columns, unknown to the contract
        else:
            out[column_name(path)] = _describe(raw if raw.get("description") else field, path)


# Columns the loader adds to what the API answers.
ADDED = {
    "user_preferences": {
        "identify_id": "The user these preferences belong to: the identifyId in the request path "
        "(added by the loader; the API's answer does not repeat it).",
    },
}
CUSTOM_PREFIX = column_name("customAttributes") + "__"
VARIANT = "__v_"


def column_docs(contract: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{table: {column: description}}`` for every table, from the parsed contract."""
    docs = {}
    for table in TABLES.values():
        out: dict[str, str] = dict(ADDED.get(table.name, {}))
        _walk(contract["definitions"], record_schema(contract, table), table, "", out)
        docs[table.name] = dict(sorted(out.items()))
    return docs


def describe(table: str, column: str) -> str | None:
    """A loaded column's description: the contract's, or what the loader knows of columns the
    contract cannot name (custom attributes, variant columns of a type change)."""
    from .column_docs import COLUMN_DOCS
    from .replace_days import COLUMN_HINTS

    known = COLUMN_DOCS.get(table, {})
    if column in known:
        return known[column]
    if column in COLUMN_HINTS:
        return COLUMN_HINTS[column]["description"]
    if VARIANT in column:
        base, kind = column.rsplit(VARIANT, 1)
        parent = describe(table, base)
        return f"Values of type {kind} of `{base}`, whose first type differs (type drift). {parent or ''}".strip()
    if column.startswith(CUSTOM_PREFIX):
        return (
            f"Custom attribute `{column.removeprefix(CUSTOM_PREFIX)}`: a key of the free-form customAttributes "
            "map (apiName to value) that the subscription defines; not in the contract."
        )
    return None


def load_contract(path: Path = CONTRACT) -> dict[str, Any]:
    import yaml  # a dependency of dagster; only the generator and its test need it

    return yaml.safe_load(path.read_text())


def render(docs: dict[str, dict[str, str]]) -> str:
    return (
        '"""Generated by ``python -m aptrinsic_dagster.sources.aptrinsic.contract_docs --regenerate``\n'
        'from the vendor contract: do not edit. ``{table: {column: description}}``."""\n\n'
        f"COLUMN_DOCS: dict[str, dict[str, str]] = {pprint.pformat(docs, width=110, sort_dicts=False)}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Regenerate column_docs.py from the vendor contract.")
    parser.add_argument("--regenerate", action="store_true", help="write column_docs.py")
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    args = parser.parse_args()
    docs = column_docs(load_contract(args.contract))
    if not args.regenerate:
        print(f"{sum(map(len, docs.values()))} columns over {len(docs)} tables; --regenerate writes {OUTPUT}")
        return 0
    OUTPUT.write_text(render(docs))
    ruff = Path(sys.executable).with_name("ruff")
    subprocess.run([str(ruff), "format", "--quiet", str(OUTPUT)], check=False)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
