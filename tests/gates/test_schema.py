from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.gates.schema import Column, Schema, Violation, dump, infer, load, validate


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "age": [30.0, 40.0, np.nan, 50.0, 60.0, 20.0],  # integers a CSV reader widened
            "city": ["Paris", "Paris", "Berlin", "Berlin", None, "Paris"],
            "score": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
            "ok": [True, False, True, True, False, True],
            "when": ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", None, "2020-01-11"],
        }
    )


def _rules(frame: pd.DataFrame, schema: Schema) -> set[tuple[str | None, str, int]]:
    return {(v.column, v.rule, v.count) for v in validate(frame, schema)}


def test_infer_types_nulls_ranges_categories_uniqueness() -> None:
    schema = infer(_frame(), slack=0.1)
    col = {c.name: c for c in schema.columns}
    assert [c.type for c in schema.columns] == [
        "integer",
        "integer",
        "string",
        "float",
        "boolean",
        "datetime",
    ]
    assert col["id"] == Column("id", "integer", nullable=False, unique=True, min=0, max=7)
    assert col["age"].nullable and col["age"].null_fraction == pytest.approx(1 / 6, abs=1e-6)
    assert (col["age"].min, col["age"].max) == (16, 64)  # 20..60 widened by 10% of 40
    assert col["city"].categories == ("Berlin", "Paris") and not col["city"].unique
    assert (col["score"].min, col["score"].max) == (0.0, 6.0)  # not below zero: none was
    assert col["ok"].min is None and col["ok"].categories is None
    assert (col["when"].min, col["when"].max) == ("2019-12-31", "2020-01-12")
    assert (schema.min_rows, schema.max_rows) == (3, 12)


def test_inference_rules_at_their_edges() -> None:
    frame = pd.DataFrame(
        {
            "label": [0, 1] * 10,  # few integers, each seen often: a category set
            "many": [f"v{i % 11}" for i in range(20)],  # 11 values in 20: too rare for a set
            "neg": [-5.0, 5.0] * 10,
            "stamp": pd.date_range("2021-01-01", periods=20, freq="h", tz="Europe/Paris"),
            "empty": [None] * 20,
            "flag": [True, None] * 10,
            "wild": [np.inf, np.nan] + [1.0] * 18,  # whole, with gaps, but not integers
        }
    )
    col = {c.name: c for c in infer(frame, max_categories=10, slack=0).columns}
    assert col["label"].categories == (0, 1) and col["label"].min == 0
    assert col["many"].categories is None
    assert (col["neg"].min, col["neg"].max) == (-5.0, 5.0)
    assert col["stamp"].type == "datetime" and col["stamp"].min == "2020-12-31T23:00:00"
    assert col["empty"] == Column("empty", "string", nullable=True, null_fraction=1.0)
    assert col["flag"].type == "boolean" and col["flag"].nullable
    assert (col["wild"].type, col["wild"].min, col["wild"].max) == ("float", 1.0, None)
    assert validate(frame, infer(frame)) == []


def test_clean_data_passes_its_own_schema() -> None:
    frame = _frame()
    assert validate(frame, infer(frame, slack=0)) == []


def test_every_column_rule_fails_when_broken() -> None:
    schema = infer(_frame())
    bad = pd.DataFrame(
        {
            "id": [1, 1, 1, None],
            "age": [30, 200, -1, "old"],
            "city": ["Pariss", "Pariss", "Lyon", None],
            "score": [0.5, 100.0, 1.0, 1.0],
            "ok": [True, "maybe", "yes", 1],
            "when": ["2020-01-05", "2021-06-01", "soon", None],
        }
    )
    found = validate(bad, schema)
    assert {(v.column, v.rule, v.count) for v in found} == {
        ("id", "nullable", 1),
        ("id", "unique", 2),
        ("age", "type", 1),
        ("age", "min", 1),
        ("age", "max", 1),
        ("city", "categories", 3),
        ("score", "max", 1),
        ("ok", "type", 1),
        ("when", "type", 1),
        ("when", "max", 1),
    }
    detail = {(v.column, v.rule): v.detail for v in found}
    assert detail["age", "max"] == "1 value above 64 (largest 200)"
    assert detail["age", "type"] == "1 value not an integer, e.g. 'old'"
    assert detail["city", "categories"] == "3 values not in the set: 'Pariss' (2), 'Lyon' (1)"
    assert detail["id", "unique"] == "2 repeated values, e.g. 1"
    assert (
        detail["when", "max"] == "1 value above 2020-01-12T00:00:00 (largest 2021-06-01T00:00:00)"
    )
    assert all(v.severity == "error" for v in found)


def test_table_rules_missing_and_unexpected_columns() -> None:
    schema = Schema((Column("a", "integer"), Column("b", "string")), min_rows=2, max_rows=3)
    frame = pd.DataFrame({"a": [1], "c": ["x"]})
    assert validate(frame, schema) == [
        Violation(None, "rows", 1, "1 rows, expected 2 to 3"),
        Violation("b", "missing column", 1, "not in the data"),
        Violation("c", "unexpected column", 1, "not in the schema", "warning"),
    ]
    strict = Schema(schema.columns, extra_columns="error")
    assert validate(frame, strict)[-1].severity == "error"
    lax = Schema(schema.columns, extra_columns="ignore")
    assert [v.rule for v in validate(frame, lax)] == ["missing column"]
    too_many = pd.DataFrame({"a": range(5), "b": list("abcde")})
    assert _rules(too_many, schema) == {(None, "rows", 5)}


def test_type_rules_accept_what_parses() -> None:
    schema = Schema(
        (
            Column("i", "integer"),
            Column("f", "float"),
            Column("b", "boolean"),
            Column("d", "datetime", min="2020-01-01", max="2020-12-31"),
            Column("s", "string", categories=("1", "2")),
            Column("n", "integer", max_null_fraction=0.25),
        )
    )
    good = pd.DataFrame(
        {
            "i": ["1", "2", None, "4"],  # text that is whole numbers
            "f": [1, 2, 3, 4],  # integers are floats
            "b": ["true", "False", "1", None],
            "d": pd.to_datetime(["2020-01-01", "2020-06-01", None, "2020-12-31"]),
            "s": [1.0, 2.0, None, 1.0],  # codes a CSV reader made floats
            "n": [1, 2, 3, None],
        }
    )
    assert validate(good, schema) == []
    bad = pd.DataFrame(
        {
            "i": [1.5, 2.0, np.inf, True],
            "f": ["x", "1e3", None, None],
            "b": [2, 1, 0, 1],
            "d": [20200101, None, None, None],
            "s": ["1", "2", "3", "2"],
            "n": [None, None, 1, 2],
        }
    )
    assert _rules(bad, schema) == {
        ("i", "type", 2),
        ("f", "type", 1),
        ("b", "type", 1),
        ("d", "type", 1),
        ("s", "categories", 1),
        ("n", "max_null_fraction", 2),
    }
    assert _rules(pd.DataFrame({"i": [True, False]}), Schema((Column("i", "integer"),))) == {
        ("i", "type", 2)
    }


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    schema = infer(_frame())
    text = dump(schema, source="data/train.csv")
    assert text.startswith("# conveyor data schema, inferred from data/train.csv.")
    assert "rows: {min: 3, max: 12}" in text and "categories: [Berlin, Paris]" in text
    assert text.index("  id:") < text.index("  age:") < text.index("  city:")  # data order
    (tmp_path / "schema.yaml").write_text(text)
    assert load(tmp_path / "schema.yaml") == schema
    assert dump(load(tmp_path / "schema.yaml"), source="data/train.csv") == text


def test_a_user_edited_schema_loads() -> None:
    data = {
        "columns": {
            "answer": {"type": "string", "categories": ["yes", "no"]},
            "day": {"type": "datetime", "min": pd.Timestamp("2020-01-01").date()},
            "n": {"type": "integer", "min": 0.0, "max": 10},
        }
    }
    schema = Schema.from_dict(data)
    assert schema.extra_columns == "warn" and schema.min_rows is None
    assert schema.columns[1].min == "2020-01-01" and schema.columns[2].min == 0


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("columns: [a\n", "schema.yaml:2: not valid YAML", None),
        ("- a\n", "schema.yaml: schema: expected a mapping", "schema infer"),
        ("colums: {}\n", "schema.yaml:1: colums: unknown key", "did you mean 'columns'?"),
        ("columns:\n  a: {type: int}\n", "schema.yaml:2: columns.a.type: 'int' is not one", None),
        (
            "columns:\n  a:\n    type: string\n    categories: [yes, no]\n",
            "schema.yaml:4: columns.a.categories: True is not text",
            "quote it",
        ),
        (
            "columns:\n  a:\n    type: float\n    min: 3\n    max: 1\n",
            "schema.yaml:2: columns.a: min 3 is above max 1",
            None,
        ),
        (
            "columns:\n  a:\n    type: string\n    max: 3\n",
            "schema.yaml:4: columns.a.max: a string column has no max",
            None,
        ),
        (
            "rows: {min: -1}\ncolumns:\n  a: {type: string}\n",
            "schema.yaml:1: rows.min: expected a row count",
            None,
        ),
        (
            "columns:\n  a: {type: string, nulable: false}\n",
            "schema.yaml:2: columns.a.nulable: unknown key",
            "did you mean 'nullable'?",
        ),
        ("extra_columns: maybe\ncolumns: {a: {type: string}}\n", "extra_columns: 'maybe'", None),
    ],
)
def test_schema_file_mistakes_name_file_line_and_key(
    tmp_path: Path, text: str, message: str, hint: str | None
) -> None:
    (tmp_path / "schema.yaml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(tmp_path / "schema.yaml", "schema.yaml")
    assert message in exc.value.message
    if hint:
        assert exc.value.hint and hint in exc.value.hint


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.yaml")
