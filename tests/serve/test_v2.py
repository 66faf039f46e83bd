"""The Open Inference Protocol v2 parser and bodies, on plain bytes and arrays."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from conveyor.registry.signature import Column, Signature
from conveyor.serve import v2
from conveyor.serve.errors import RequestError

ARRAY = Signature((Column("input", "float64", (-1, 2)),), (Column("output", "int64", (-1,)),))
TABLE = Signature(
    (Column("age", "int64", (-1,)), Column("city", "object", (-1,))),
    (Column("output", "float64", (-1,)),),
)


def body(*inputs: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def test_flat_and_nested_data_give_the_declared_shape() -> None:
    flat = v2.parse_infer(
        body({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]})
    )
    nested = v2.parse_infer(
        body({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}, id="r1")
    )
    for request in (flat, nested):
        array = request.inputs["x"]
        assert array.dtype == np.float32 and array.shape == (2, 2)
        assert array.tolist() == [[1, 2], [3, 4]]
    assert nested.id == "r1" and flat.id is None and flat.outputs is None


def test_binary_tensor_data_after_the_json_header() -> None:
    values = np.array([[0.5, 1.5], [2.5, 3.5]], dtype="<f8")
    texts = [b"ab", b"cde"]
    strings = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    head = body(
        {"name": "x", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": 32}},
        {
            "name": "s",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(strings)},
        },
    )
    request = v2.parse_infer(head + values.tobytes() + strings, json_length=len(head))
    assert request.inputs["x"].tolist() == values.tolist()
    assert request.inputs["s"].tolist() == ["ab", "cde"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (body(), "non-empty list"),
        (
            body({"name": "x", "shape": [2], "datatype": "FP99", "data": [1, 2]}),
            "unknown datatype 'FP99'",
        ),
        (
            body({"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2]}),
            "shape [3] holds 3 values; the data has 2",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]}),
            "input 'x': FP64 data must be numbers; it holds text, like 'a'",
        ),
        (
            body({"name": "x", "shape": "2", "datatype": "FP64", "data": [1]}),
            "shape must be a list",
        ),
        (body({"shape": [1], "datatype": "FP64", "data": [1]}), "has no name"),
        (body({"name": "x", "shape": [1], "datatype": "FP64", "data": 1}), "'data' must be a list"),
        (
            body({"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}, outputs="y"),
            "'outputs'",
        ),
    ],
)
def test_bad_requests_name_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        v2.parse_infer(raw)


def test_binary_size_past_the_body_is_refused() -> None:
    head = body(
        {"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
    )
    with pytest.raises(RequestError, match="binary_data_size"):
        v2.parse_infer(head + b"1234", json_length=len(head))


def test_model_input_for_array_and_table_models() -> None:
    x = np.zeros((1, 2))
    assert v2.model_input(ARRAY, {"input": x}) is x
    with pytest.raises(RequestError, match="the model has no input 'whatever'") as info:
        v2.model_input(ARRAY, {"whatever": x})
    assert info.value.hint is not None and "its inputs: input" in info.value.hint
    with pytest.raises(RequestError, match="the model has no input 'b'"):
        v2.model_input(ARRAY, {"input": x, "b": x})
    with pytest.raises(RequestError, match="one input tensor"):
        v2.model_input(None, {"a": x, "b": x})
    columns = {"age": np.array([3]), "city": np.array(["x"], dtype=object)}
    assert v2.model_input(TABLE, columns) is columns
    rows = np.array([[3, "x"]], dtype=object)
    assert v2.model_input(TABLE, {"rows": rows}) is rows
    with pytest.raises(RequestError, match="the model has no input 'town'"):
        v2.model_input(TABLE, {"age": np.array([3]), "town": np.array(["x"], dtype=object)})


def test_response_and_metadata_bodies() -> None:
    answer = v2.infer_response("clf", "3", "r1", {"output": np.array([[1, 2]], dtype=np.int64)})
    assert answer["model_name"] == "clf" and answer["model_version"] == "3" and answer["id"] == "r1"
    (out,) = answer["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("output", "INT64", [1, 2])
    assert list(out["data"]) == [1, 2]
    strings = v2.tensor("s", np.array(["a", "b"], dtype=object))
    assert strings["datatype"] == "BYTES" and strings["data"] == ["a", "b"]
    meta = v2.metadata("clf", ["3"], "conveyor-sklearn", TABLE)
    assert meta["inputs"] == [
        {"name": "age", "datatype": "INT64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP64", "shape": [-1]}]
