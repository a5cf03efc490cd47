"""API pages to Arrow tables: the fast path into dlt (no per-row normalize), with stable types.

- Lists and free-form maps (``Table.json_fields``) become JSON text columns (DuckDB ``JSON``).
- Other nested objects are flattened: ``location.city`` -> ``location__city``,
  ``customAttributes.plan`` -> ``custom_attributes__plan`` (a new key is a new column).
- Epoch-millisecond ``date``/``*Date`` fields become ``timestamp[us, UTC]``; ``0`` (the API's
  "never") becomes null.
- Names are dlt's snake_case, so they are the DuckDB column names.
- A field null throughout a page still gets its column, typed as the contract types it
  (strings where the contract is silent); free-form ``customAttributes`` keys wait for a value.
- A column whose type changes (say a custom attribute from number to string) keeps its first
  type; values of the new type go to a variant column ``<name>__v_<type>``, as dlt does for JSON
  items, instead of failing the load or silently truncating.
- Integers beyond 64 bits (the client parses them exactly, never as floats) land as their exact
  digits in the variant ``<name>__v_text``; the column keeps its BIGINT type and values.
"""

from __future__ import annotations

import functools

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention

from .settings import CONTRACT_BOOLS, CONTRACT_DOUBLES, CONTRACT_INTS

_naming = NamingConvention()
_TIMESTAMP = pa.timestamp("us", tz="UTC")  # DuckDB TIMESTAMPTZ has microsecond precision


@functools.lru_cache(maxsize=4096)
def column_name(path: str) -> str:
    """``customAttributes.signupSource`` -> ``custom_attributes__signup_source``."""
    return _naming.normalize_path(_naming.make_path(*path.split(".")))


def family(dtype: pa.DataType) -> str | None:
    if pa.types.is_null(dtype):
        return None
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "bigint"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "double"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    return "json"


def to_arrow(records: list[dict], json_fields: tuple[str, ...]) -> pa.Table:
    for record in records:
        for name in json_fields:
            value = record.get(name)
            if value is not None:
                record[name] = orjson.dumps(value).decode()
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        table = _from_mixed(records)
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        leaf = name.rsplit(".", 1)[-1]
        if pa.types.is_null(column.type) and not name.startswith("customAttributes."):
            column = column.cast(_contract_type(leaf))
        if (leaf == "date" or leaf.endswith("Date")) and pa.types.is_integer(column.type):
            column = pc.multiply(pc.if_else(pc.equal(column, 0), None, column.cast(pa.int64())), 1000).cast(_TIMESTAMP)
        elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = pa.array(
                [None if v is None else orjson.dumps(v).decode() for v in column.to_pylist()], pa.string()
            )
        columns.append(column)
        names.append(column_name(name))
    return pa.table(columns, names=names)


def _contract_type(leaf: str) -> pa.DataType:
    """The type a field of the contract has, for a column that is null throughout a page."""
    if leaf == "date" or leaf.endswith("Date"):
        return pa.int64()  # epoch milliseconds, turned into a timestamp next
    if leaf in CONTRACT_BOOLS:
        return pa.bool_()
    if leaf in CONTRACT_INTS:
        return pa.int64()
    if leaf in CONTRACT_DOUBLES:
        return pa.float64()
    return pa.string()


def _from_mixed(records: list[dict]) -> pa.Table:
    """Slow path for a page whose values disagree on a type: such values become text."""
    flat = [_flatten(r) for r in records]
    names = list(dict.fromkeys(k for r in flat for k in r))
    columns = []
    for name in names:
        values = [r.get(name) for r in flat]
        big = [_beyond_int64(v) for v in values]
        if any(big):
            columns.append(
                (f"{name}__v_text", pa.array([str(v) if b else None for v, b in zip(values, big, strict=True)]))
            )
            values = [None if b else v for v, b in zip(values, big, strict=True)]
            if all(v is None for v in values):
                continue
        try:
            columns.append((name, pa.array(values)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns.append((name, pa.array([None if v is None else str(v) for v in values], pa.string())))
    return pa.table([c for _, c in columns], names=[n for n, _ in columns])


def _beyond_int64(value: object) -> bool:
    return type(value) is int and not -(2**63) <= value < 2**63


def _flatten(record: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


class TypeKeeper:
    """Keeps each column's first type across pages and loads (seeded from the dlt schema)."""

    def __init__(self, dlt_columns: dict[str, dict] | None = None) -> None:
        # JSON columns travel as text (see to_arrow); other dlt types are the families above.
        self.known = {
            name: "text" if col.get("data_type") == "json" else col["data_type"]
            for name, col in (dlt_columns or {}).items()
            if col.get("data_type")
        }

    def conform(self, table: pa.Table) -> pa.Table:
        columns, names = [], []
        for name, column in zip(table.column_names, table.columns, strict=True):
            got = family(column.type)
            want = self.known.setdefault(name, got) if got else None
            if want is None or got == want:
                pass
            elif want == "double" and got == "bigint":
                column = column.cast(pa.float64())
            elif want == "text" and got in ("bigint", "double", "bool"):
                column = column.cast(pa.string())
            else:
                name = f"{name}__v_{got}"
                self.known.setdefault(name, got)
            columns.append(column)
            names.append(name)
        return pa.table(columns, names=names)
