"""MLflow's scoring protocol: every request form, CSV, and the error body."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conveyor.registry.signature import Column, Signature
from conveyor.serve import payload, scoring
from conveyor.serve.errors import RequestError, Unsupported

TABLE = Signature(
    (Column("a", "float64", (-1,)), Column("b", "int64", (-1,))),
    (Column("output", "float64", (-1,)),),
)
ARRAY = Signature((Column("input", "float64", (-1, 2)),), (Column("output", "int64", (-1,)),))


def parsed(doc: object, content_type: str = "application/json") -> object:
    return scoring.parse(json.dumps(doc).encode(), content_type)


@pytest.mark.parametrize(
    "doc",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [3.5, 4]]}},
        {"dataframe_records": [{"a": 1.5, "b": 2}, {"a": 3.5, "b": 4}]},
        {"instances": [{"a": 1.5, "b": 2}, {"a": 3.5, "b": 4}]},
        {"inputs": {"a": [1.5, 3.5], "b": [2, 4]}},
        {"inputs": {"a": [1.5, 3.5], "b": [2.0, 4.0]}},  # whole numbers written as floats
        {"dataframe_split": {"columns": ["b", "a", "id"], "data": [[2, 1.5, "x"], [4, 3.5, "y"]]}},
        {"dataframe_records": [{"a": 1.5, "b": 2, "id": 7}, {"a": 3.5, "b": 4, "id": 8}]},
    ],
)
def test_every_json_form_reaches_a_table_model_as_the_same_columns(doc: object) -> None:
    columns = payload.conform(TABLE, parsed(doc))
    assert columns["a"].dtype == np.float64 and columns["a"].tolist() == [1.5, 3.5]
    assert columns["b"].dtype == np.int64 and columns["b"].tolist() == [2, 4]


def test_array_models_take_rows_in_any_form() -> None:
    for doc in (
        {"inputs": [[1, 2], [3, 4]]},
        {"instances": [[1, 2], [3, 4]]},
        {"dataframe_split": {"columns": ["0", "1"], "data": [[1, 2], [3, 4]]}},
        {"dataframe_records": [{"0": 1, "1": 2}, {"0": 3, "1": 4}]},
    ):
        array = payload.conform(ARRAY, parsed(doc))
        assert array.dtype == np.float64 and array.tolist() == [[1, 2], [3, 4]], doc


def test_rows_without_column_names_are_refused_by_a_table_model() -> None:
    # As MLflow's server does: matched by position, a wrong order mispredicts without an error.
    for doc in (
        {"instances": [[1.5, 2], [3.5, 4]]},
        {"inputs": [[1.5, 2]]},
        {"dataframe_split": {"data": [[1.5, 2]]}},
    ):
        with pytest.raises(RequestError, match="name no columns") as info:
            payload.conform(TABLE, parsed(doc))
        assert '"columns": ["a", "b"]' in str(info.value.hint)


def test_one_value_per_column_is_one_row() -> None:
    columns = payload.conform(TABLE, parsed({"inputs": {"a": 1.5, "b": 2}}))
    assert columns["a"].tolist() == [1.5] and columns["b"].tolist() == [2]


def test_json_nan_is_a_missing_value_where_the_signature_allows_one() -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[NaN, 2], [1.0, 3]]}}'
    columns = payload.conform(TABLE, scoring.parse(body, "application/json"))
    assert np.isnan(columns["a"][0]) and columns["a"][1] == 1.0
    assert columns["b"].dtype == np.int64
    body = b'{"inputs": {"a": [1.0, Infinity], "b": [NaN, 3]}}'
    with pytest.raises(RequestError, match=r"'b' has a missing value \(null or NaN\) in row 1"):
        payload.conform(TABLE, scoring.parse(body, "application/json"))
    with pytest.raises(RequestError, match="'b' has a missing value"):
        payload.conform(TABLE, parsed({"dataframe_records": [{"a": 1.0, "b": None}]}))
    # A key a record leaves out is a missing value: refused for an int, NaN for a float.
    with pytest.raises(RequestError, match=r"'b' has a missing value .* in row 2"):
        payload.conform(TABLE, parsed({"dataframe_records": [{"a": 1, "b": 2}, {"a": 1}]}))
    columns = payload.conform(TABLE, parsed({"dataframe_records": [{"b": 2}, {"a": 1, "b": 3}]}))
    assert np.isnan(columns["a"][0]) and columns["a"][1] == 1.0
    array = payload.conform(ARRAY, scoring.parse(b'{"inputs": [[NaN, 1]]}', "application/json"))
    assert np.isnan(array[0, 0])
    with pytest.raises(RequestError, match="not JSON"):
        scoring.parse(b'{"inputs": [[nan, 1]]}', "application/json")


def test_an_integer_column_takes_whole_numbers_only() -> None:
    for value, message in ((2.5, "has 2.5 in row 1"), (2**70, "in row 1; the model takes int64")):
        with pytest.raises(RequestError, match=message) as info:
            payload.conform(
                TABLE, parsed({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, value]]}})
            )
        assert "whole numbers" in str(info.value)
    with pytest.raises(RequestError, match="'b' has a missing value"):
        payload.conform(TABLE, scoring.parse(b"a,b\n1.5,\n", "text/csv"))
    columns = payload.conform(TABLE, scoring.parse(b"a,b\n,2\n", "text/csv"))
    assert np.isnan(columns["a"][0])


def test_csv_with_a_header_line() -> None:
    table = scoring.parse(b"a,b\n1.5,2\n3.5,4\n", "text/csv; charset=utf-8")
    columns = payload.conform(TABLE, table)
    assert columns["a"].tolist() == [1.5, 3.5] and columns["b"].tolist() == [2, 4]
    assert payload.conform(ARRAY, table).tolist() == [[1.5, 2], [3.5, 4]]
    with pytest.raises(RequestError, match="CSV line 3 has 1 values"):
        scoring.parse(b"a,b\n1,2\n3\n", "text/csv")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"instances": [[1, 2]], "inputs": [[1, 2]]}, "exactly one of"),
        ({"rows": [[1, 2]]}, "it holds rows"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "must hold 2 values"),
        ({"inputs": 3}, "list of rows"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1]], "orient": "split"}}, "'orient'"),
        ([[1, 2]], "must be a JSON object"),
    ],
)
def test_malformed_bodies(doc: object, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parsed(doc)


def test_signature_errors_and_unsupported_content() -> None:
    with pytest.raises(RequestError, match="lacks column"):
        payload.conform(TABLE, parsed({"inputs": {"a": [1.0]}}))
    with pytest.raises(RequestError, match="is object; the model takes int64"):
        payload.conform(TABLE, parsed({"inputs": {"a": [1.0], "b": ["x"]}}))
    with pytest.raises(Unsupported):
        scoring.parse(b"a=1", "application/x-www-form-urlencoded")
    body = b'{"inputs": [[1, 2]]}'
    for content_type, message in (
        ("", "no Content-Type"),
        ("application/json; charset=latin-1", "charset 'latin-1'"),
        ("application/json; format=pandas-split", "format are not read"),
    ):
        with pytest.raises(Unsupported, match=message):
            scoring.parse(body, content_type)
    assert scoring.parse(body, "application/json; charset=UTF-8") == [[1, 2]]
    error = scoring.error(RequestError("bad", hint="fix it"))
    assert error == {"error_code": "BAD_REQUEST", "message": "bad (hint: fix it)"}
