"""The Aptrinsic query language: ``filter``, ``sort`` and event date windows.

``filter=f1==a;date>=X`` ANDs terms; repeating ``filter`` ORs the groups. Operators are
``== != < <= > >= ~ !~`` (``~`` is a like with ``*``/``?`` wildcards). Filter values compare
case-insensitively. Dates are epoch milliseconds or ISO-8601.

Window rules (the contract's, plus choices where it is silent, so clients can rely on them):
- the window of a group is half-open ``[start, end)``; ``<=`` and ``>`` are turned into it;
- no date term at all means the last day before "now"; a lower bound alone runs to "now";
  an upper bound alone starts one day before it;
- a window longer than 190 days answers 400 ``Exceeded date range190days``;
- on ``/events/custom`` ``dateRangeStart``/``dateRangeEnd`` give ``[start, end)`` too.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field

from .data import DAY_MS

MAX_WINDOW_MS = 190 * DAY_MS
_TERM = re.compile(r"^([A-Za-z_][\w.]*)(==|!=|<=|>=|!~|<|>|~)(.*)$")


class QueryError(ValueError):
    """A request the API answers with 400; the message is the API's."""


@dataclass
class Term:
    field: str
    op: str
    value: str

    def matches(self, record: dict) -> bool:
        actual = record
        for part in self.field.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if self.op in ("~", "!~"):
            hit = actual is not None and fnmatch.fnmatchcase(str(actual).lower(), self.value.lower())
            return hit if self.op == "~" else not hit
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            left, right = ("" if actual is None else str(actual)).lower(), self.value.lower()
        else:
            try:
                left, right = actual, float(self.value)
            except ValueError:
                return self.op == "!="
        return {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[self.op]


@dataclass
class Group:
    """One ``filter`` parameter: its date window (events only) and its other terms."""

    start_ms: int | None = None
    end_ms: int | None = None
    terms: list[Term] = field(default_factory=list)

    def matches(self, record: dict) -> bool:
        return all(t.matches(record) for t in self.terms)


def parse_instant(value: str) -> int:
    value = value.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"Invalid date value '{value}': use epoch milliseconds or ISO-8601") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def parse_groups(filters: list[str], windowed: bool) -> list[Group]:
    groups = []
    for raw in filters or [""]:
        group = Group()
        for chunk in (c for c in raw.split(";") if c.strip()):
            m = _TERM.match(chunk.strip())
            if not m:
                raise QueryError(f"Invalid filter term '{chunk}'")
            name, op, value = m.groups()
            if windowed and name == "date":
                narrow(group, op, parse_instant(value))
            else:
                group.terms.append(Term(name, op, value))
        groups.append(group)
    return groups


def narrow(group: Group, op: str, ms: int) -> None:
    if op in (">=", ">"):
        start = ms + (op == ">")
        group.start_ms = start if group.start_ms is None else max(group.start_ms, start)
    elif op in ("<", "<="):
        end = ms + (op == "<=")
        group.end_ms = end if group.end_ms is None else min(group.end_ms, end)
    elif op == "==":
        narrow(group, ">=", ms)
        narrow(group, "<=", ms)
    else:
        raise QueryError(f"Operator '{op}' is not supported on date")


def resolve_window(group: Group, now_ms: int) -> tuple[int, int]:
    if group.start_ms is None and group.end_ms is None:
        start, end = now_ms - DAY_MS, now_ms
    elif group.start_ms is None:
        start, end = group.end_ms - DAY_MS, group.end_ms
    elif group.end_ms is None:
        start, end = group.start_ms, now_ms
    else:
        start, end = group.start_ms, group.end_ms
    if end - start > MAX_WINDOW_MS:
        raise QueryError("Exceeded date range190days")
    return start, end


def parse_sort(raw: str | None, allowed: tuple[str, ...] | None) -> list[tuple[str, bool]]:
    """``sort=f1;-f2`` -> ``[(f1, False), (f2, True)]`` (second item: descending)."""
    keys = []
    for part in (p.strip() for p in (raw or "").split(";") if p.strip()):
        descending = part.startswith("-")
        name = part.lstrip("+-")
        if allowed is not None and name not in allowed:
            raise QueryError(f"Sort field '{name}' is not supported; allowed: {', '.join(allowed)}")
        keys.append((name, descending))
    return keys
