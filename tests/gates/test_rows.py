"""The monitor's row check without pandas gives what broken_rows gives on the DataFrame the
same logged values make."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from conveyor.gates.rows import broken_values
from conveyor.gates.schema import Column, Schema, broken_rows

COLUMNS: dict[str, list[Any]] = {
    "ints": [30, 150, -1, 7, 0, 1],
    "floats": [1.5, None, 2.0, math.nan, 99.0, 0.0],
    "whole": [1.0, 2.0, None, 3.0, 4.0, 1.0],
    "mixed": [3, "x", "4.5", True, None, " 7 "],
    "bools": [True, False, True, True, False, False],
    "text": ["a", "b", None, "c", "a", "zz"],
    "words": ["yes", "no", "maybe", "TRUE", "0", "1.0"],
    "dates": ["2026-01-01", "2026-03-01T10:00:00Z", "soon", None, "2025-12-31", "2026-02-01"],
}
RULES = [
    Column("ints", "integer", nullable=False, min=0, max=120),
    Column("ints", "float", max=10.5),
    Column("ints", "boolean"),
    Column("ints", "string", categories=("30", "7", "0")),
    Column("floats", "integer"),
    Column("floats", "float", nullable=False, min=1.0, max=50),
    Column("floats", "boolean"),
    Column("whole", "string", categories=("1", "2", "3")),
    Column("whole", "integer", categories=(1, 2)),
    Column("mixed", "float", min=4),
    Column("mixed", "integer"),
    Column("mixed", "boolean"),
    Column("mixed", "string", categories=("3", "x")),
    Column("bools", "integer"),
    Column("bools", "boolean", nullable=False),
    Column("bools", "string", categories=("True",)),
    Column("text", "string", nullable=False, categories=("a", "b", "c")),
    Column("text", "float"),
    Column("words", "boolean"),
    Column("dates", "datetime", min="2026-01-01", max="2026-02-15T00:00:00+00:00"),
    Column("dates", "datetime", nullable=False),
    Column("absent", "integer", nullable=False),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}-{r.type}")
def test_each_rule_breaks_the_rows_broken_rows_breaks(rule: Column) -> None:
    schema = Schema((rule,))
    expected = broken_rows(pd.DataFrame(COLUMNS), schema).tolist()
    assert broken_values(COLUMNS, schema) == expected


def test_all_the_rules_at_once() -> None:
    schema = Schema(tuple(RULES[:3] + RULES[9:12] + RULES[16:18]))
    assert broken_values(COLUMNS, schema) == broken_rows(pd.DataFrame(COLUMNS), schema).tolist()
    assert broken_values({}, schema) == []
