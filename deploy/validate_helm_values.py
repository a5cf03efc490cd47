"""Validates deploy/helm-values.yaml against the values schema of Dagster's Helm chart.

    .venv/bin/python deploy/validate_helm_values.py /path/to/values.schema.json [--defaults values.yaml]

The schema is the chart's ``helm/dagster/values.schema.json`` (not vendored here: fetch it from the
chart's source at the version you deploy). Helm merges the chart's own ``values.yaml`` under ours before
it validates; with ``--defaults`` that merge is done here and the schema applies as is. Without it, the
fields the schema requires but we leave to the chart's defaults are not demanded (``required`` is
dropped), and everything we do set is checked: types, enums, unknown keys of closed objects.

The schema points Kubernetes objects (env entries, resources, security contexts) at
kubernetesjsonschema.dev; those references are not fetched, so such values are checked as objects
only. Top-level keys the schema does not know are reported: that chart version ignores them.
Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

VALUES = Path(__file__).with_name("helm-values.yaml")


def offline(node: Any, keep_required: bool, in_then: bool = False) -> Any:
    """The schema without remote ``$ref``s (their sibling keywords stay) and, unless kept, without
    ``required`` (except inside ``if``/``then``, where it states which config goes with which type)."""
    if isinstance(node, list):
        return [offline(item, keep_required, in_then) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("http"):
            continue
        if key == "required" and isinstance(value, list) and not keep_required and not in_then:
            continue
        out[key] = offline(value, keep_required, in_then or key == "then")
    return out


def merged(defaults: Any, ours: Any) -> Any:
    """Helm's merge: maps merge key by key, anything else (lists included) is replaced by ours."""
    if isinstance(defaults, dict) and isinstance(ours, dict):
        return {k: merged(defaults[k], v) if k in defaults else v for k, v in ours.items()} | {
            k: v for k, v in defaults.items() if k not in ours
        }
    return ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("schema", type=Path, help="the chart's values.schema.json")
    parser.add_argument("--values", type=Path, default=VALUES)
    parser.add_argument("--defaults", type=Path, help="the chart's values.yaml, merged under ours")
    args = parser.parse_args(argv)

    schema = json.loads(args.schema.read_text())
    values = yaml.safe_load(args.values.read_text())
    if args.defaults:
        values = merged(yaml.safe_load(args.defaults.read_text()), values)
    validator = jsonschema.Draft7Validator(offline(schema, keep_required=bool(args.defaults)))
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    for error in errors:
        print(f"ERROR {'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}")
    unknown = sorted(set(values) - set(schema.get("properties", {})))
    for key in unknown:
        print(f"NOTE {key}: not in this chart version's schema; that version ignores it")
    print(f"{args.values.name}: {len(errors)} error(s) against {args.schema}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
