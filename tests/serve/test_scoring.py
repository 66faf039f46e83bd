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
        {"instances": [[1.5, 2], [3.5, 4]]},
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
        ({"dataframe_records": [{"a": 1, "b": 2}, {"a": 1}]}, "lacks column 'b'"),
        ({"inputs": 3}, "list of rows"),
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
    error = scoring.error(RequestError("bad", hint="fix it"))
    assert error == {"error_code": "BAD_REQUEST", "message": "bad (hint: fix it)"}
