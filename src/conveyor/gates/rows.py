"""Which rows break a schema's value rules, over plain values: the monitor's share of live rows
a data gate's schema refuses, in an install without pandas as in one with it.

    broken_values({"age": [30, 150, "x"]}, schema)   # -> [False, True, True]

The rules are :func:`conveyor.gates.schema.broken_rows`'s on the DataFrame those columns make
(tests/gates/test_rows.py compares the two): a missing value (None, NaN) where none is allowed,
a value of another type, out of range, not in the category set. Each column is first typed as
pandas types a list of Python values (integers, floats when numbers mix with floats or missing
values, booleans, else objects), since the rules read the column's type: a boolean in a column
of booleans is no integer, in a column of mixed values it reads as 1 or 0. Dates are read as ISO
8601 (``datetime.fromisoformat``), the format the schema's bounds use.

Pure: the standard library; no files, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from conveyor.gates.schema import Column, Schema

_BOOLEAN_WORDS = frozenset({"true", "false", "1", "0", "1.0", "0.0", "yes", "no", "t", "f"})
_NUMBER = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|nan)\s*", re.ASCII | re.IGNORECASE
)


def broken_values(columns: Mapping[str, Sequence[Any]], schema: Schema) -> list[bool]:
    """For each row (the columns' values at one position), whether it breaks a value rule of
    ``schema``; columns the schema does not name, and rules on whole tables, are left out."""
    rows = len(next(iter(columns.values()))) if columns else 0
    broken = [False] * rows
    for rule in schema.columns:
        values = columns.get(rule.name)
        if values is None:
            continue
        kind = _dtype(values)
        present = [i for i, v in enumerate(values) if not _missing(v)]
        if not rule.nullable:
            for i in set(range(rows)) - set(present):
                broken[i] = True
        given = [values[i] for i in present]
        # Whole floats (integers a reader widened) read as text without their ".0"
        whole = kind == "f" and all(_whole(float(v)) for v in given)
        for i, value in zip(present, _typed(given, kind, rule.type), strict=True):
            if not broken[i] and _breaks(value, rule, whole):
                broken[i] = True
    return broken


_BAD = object()  # a value that is not of the column's type


def _breaks(value: Any, rule: Column, whole: bool) -> bool:
    if value is _BAD:
        return True
    for name, bound in (("min", rule.min), ("max", rule.max)):
        if bound is not None:
            limit = _timestamp(bound) if rule.type == "datetime" else bound
            try:
                if (value < limit) if name == "min" else (value > limit):
                    return True
            except TypeError:  # not comparable (text against a number): pandas raises too
                return True
    if rule.categories is not None:
        keyed = (str(int(value)) if whole else str(value)) if rule.type == "string" else value
        return keyed not in rule.categories
    return False


def _dtype(values: Sequence[Any]) -> str:
    """The kind of the column pandas makes of these values: "i", "f", "b" or "O"."""
    kinds = {_kind(v) for v in values}
    if kinds == {"b"}:
        return "b"
    if kinds == {"i"}:
        return "i"
    if kinds and kinds <= {"i", "f", "null"} and kinds != {"null"}:
        return "f"
    return "O"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "null" if math.isnan(value) else "f"
    return "null" if value is None else "O"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _typed(values: list[Any], kind: str, wanted: str) -> list[Any]:
    """The present values as the rule's type, _BAD where one is not of it."""
    if wanted == "string":
        return values
    if wanted == "datetime":
        return [_BAD if kind != "O" else _date(v) for v in values]
    if wanted == "boolean":
        if kind == "b":
            return values
        if kind in "if":
            return [v if v in (0, 1) else _BAD for v in values]
        return [v if str(v).lower() in _BOOLEAN_WORDS else _BAD for v in values]
    if kind == "i":
        return values
    if kind == "b":
        return [_BAD] * len(values)
    out = []
    for v in values:
        number = float(v) if kind == "f" else _number(v)
        if math.isnan(number) or (wanted == "integer" and not _whole(number)):
            out.append(_BAD)
        else:
            out.append(number)
    return out


def _whole(number: float) -> bool:
    return math.isfinite(number) and number == round(number)


def _number(value: Any) -> float:
    """A value as pd.to_numeric(errors="coerce") reads it: NaN when it is no number."""
    if isinstance(value, str):
        return float(value) if _NUMBER.fullmatch(value) else math.nan
    if isinstance(value, int | float | Decimal):
        return float(value)
    return math.nan


def _date(value: Any) -> Any:
    """An ISO 8601 date and time (or a datetime) as a naive UTC datetime; _BAD otherwise."""
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        return _BAD
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return _BAD


def _timestamp(bound: Any) -> Any:
    parsed = _date(str(bound))
    if parsed is _BAD:
        raise ValueError(f"not an ISO 8601 date: {bound!r}")
    return parsed


def _utc(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo is not None else stamp
