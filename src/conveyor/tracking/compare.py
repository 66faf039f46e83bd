"""Params and metrics of several runs (or revisions) side by side, with the change: pure.

The relative change is ``(new - old) / |old|``: measured against the old value's magnitude, so
its sign is the sign of the change even when the old value is negative (a loss of -2 that
becomes -1 went up: +50 %). It is None when the old value is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def compare(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per param and metric (``params.NAME`` / ``metrics.NAME``): each side's value
    (None where absent) and, for two numbers, the change from the first side to the last."""
    out: list[dict[str, Any]] = []
    for kind in ("params", "metrics"):
        names = sorted({k for r in runs for k in r[kind]})
        for name in names:
            values = [r[kind].get(name) for r in runs]
            row: dict[str, Any] = {"name": f"{kind}.{name}", "values": values}
            first, last = values[0], values[-1]
            if _number(first) and _number(last):
                row["delta"] = last - first
                row["relative"] = (last - first) / abs(first) if first else None
            out.append(row)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def shown(value: object) -> str:
    """A value in a table: "-" for none, floats to 6 significant digits, text as it is."""
    import json

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def delta_cells(row: Mapping[str, Any]) -> list[str]:
    """A compared row's values, its change and its relative change, as table cells (the CLI's
    tables and the pull-request report show the same text)."""
    values = [shown(v) for v in row["values"]]
    return [row["name"], *values, _signed(row.get("delta")), _percent(row.get("relative"))]


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.6g}"


def _percent(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:+.2f} %"
