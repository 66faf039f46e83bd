"""The Open Inference Protocol v2 parser and bodies, on plain bytes and arrays."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import orjson
import pytest

from conveyor.registry.signature import Column, Signature
from conveyor.serve import v2, v2_numbers
from conveyor.serve.errors import RequestError

ARRAY = Signature((Column("input", "float64", (-1, 2)),), (Column("output", "int64", (-1,)),))
TABLE = Signature(
    (Column("age", "int64", (-1,)), Column("city", "object", (-1,))),
    (Column("output", "float64", (-1,)),),
)


@pytest.fixture(autouse=True)
def _fast_way_for_small_bodies_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every body here is read as a large one is (simdjson first), unless a test says not."""
    monkeypatch.setattr(v2_numbers, "MIN_BYTES", 0)


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
        (  # a 300 KB body whose shape's product took seconds of the event loop
            body({"name": "x", "shape": [2**40] * 20_000, "datatype": "FP64", "data": []}),
            "shape has 20000 dimensions",
        ),
        (
            body({"name": "x", "shape": [2**63], "datatype": "FP64", "data": []}),
            "shape must be a list of sizes",
        ),
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


def tensor_body(data: object, datatype: str, shape: list[int] | None = None) -> bytes:
    size = len(data) if isinstance(data, list) else 1
    return body({"name": "x", "shape": shape or [size], "datatype": datatype, "data": data})


@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [
        ([300], "INT8", "input 'x': 300 is out of the range of INT8"),
        ([-1], "UINT8", "input 'x': -1 is out of the range of UINT8"),
        ([10**20], "INT64", "input 'x': 1e+20 is out of the range of INT64"),
        ([-1, 2**63], "INT64", "out of the range of INT64"),
        ([2**64], "UINT64", "out of the range of UINT64"),
        ([70000], "FP16", "input 'x': 70000 is out of the range of FP16"),
        ([1e300], "FP32", "out of the range of FP32"),
        ([1, 1.5], "INT64", "input 'x': INT64 data must be integers; it holds 1.5"),
        (["1.0"], "FP64", "input 'x': FP64 data must be numbers; it holds text, like '1.0'"),
        ([1, "2"], "INT32", "INT32 data must be numbers; it holds text"),
        ([True, 1.0], "FP64", "input 'x': FP64 data must be numbers; it holds booleans"),
        ([[1, 2], [3, False]], "INT64", "INT64 data must be numbers; it holds booleans"),
        ([True], "INT64", "INT64 data must be numbers; it holds booleans"),
        ([None], "FP64", "FP64 data must be numbers; it holds null"),
        ([{"a": 1}], "FP64", "FP64 data must be numbers; it holds an object"),
        ([1], "BOOL", "input 'x': BOOL data must be true or false; it holds numbers"),
        ([1], "BYTES", "input 'x': BYTES data must be strings; it holds numbers"),
        ([[1, 2], [3]], "FP64", "input 'x': data is not a regular nested list"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_refused(
    data: object, datatype: str, message: str
) -> None:
    shape = [2, 2] if data == [[1, 2], [3, False]] else None
    with pytest.raises(RequestError, match=re.escape(message)):
        v2.parse_infer(tensor_body(data, datatype, shape))


@pytest.mark.parametrize(
    ("data", "datatype", "expected"),
    [
        ([127, -128], "INT8", [127, -128]),
        ([0, 255], "UINT8", [0, 255]),
        ([2**63], "UINT64", [2**63]),
        ([2.0, -3], "INT64", [2, -3]),  # whole numbers written with a point are whole
        ([1, 2.5], "FP32", [1.0, 2.5]),
        ([True, False], "BOOL", [True, False]),
        (["a", "b"], "BYTES", ["a", "b"]),
        ([], "INT64", []),
    ],
)
def test_values_that_fit_keep_their_value(data: object, datatype: str, expected: object) -> None:
    array = v2.parse_infer(tensor_body(data, datatype)).inputs["x"]
    assert array.dtype == np.dtype(v2.DATATYPES[datatype])
    assert array.tolist() == expected


def test_ids_names_and_trailing_bytes_are_checked() -> None:
    one = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}
    with pytest.raises(RequestError, match="'id' must be a string, not an object"):
        v2.parse_infer(body(one, id={"a": 1}))
    with pytest.raises(RequestError, match="'id' must be a string, not int"):
        v2.parse_infer(body(one, id=7))
    with pytest.raises(RequestError, match="input 'x' is given twice"):
        v2.parse_infer(body(one, one))
    binary = {"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
    head = body(binary)
    value = struct.pack("<d", 2.5)
    assert v2.parse_infer(head + value, json_length=len(head)).inputs["x"].tolist() == [2.5]
    with pytest.raises(RequestError, match="the body has 3 bytes after its last binary input"):
        v2.parse_infer(head + value + b"xyz", json_length=len(head))
    json_only = body(one)
    with pytest.raises(RequestError, match="the body has 8 bytes after its last binary input"):
        v2.parse_infer(json_only + value, json_length=len(json_only))
    with pytest.raises(RequestError, match="input 'x' is given twice"):
        v2.parse_infer(body(binary, binary) + value * 2, json_length=len(body(binary, binary)))


def test_an_impossible_shape_without_data_is_refused() -> None:
    # found by the OpenAPI conformance test: numpy refused to reshape, and the server said 500
    shape = [12110, 0, 60, 8548, 33, 27675, 20145]
    with pytest.raises(RequestError, match=r"input 'x': shape \[12110, 0, .*\] is not possible"):
        v2.parse_infer(tensor_body([], "FP64", shape))


PARITY = [
    {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [0.1, -0.0, 5e-324, 1e308, 3, -7]},
    {"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2.5, 16777217]},
    {"name": "x", "shape": [1], "datatype": "FP32", "data": [1e300]},  # out of range
    {"name": "x", "shape": [1], "datatype": "FP16", "data": [70000]},
    {"name": "x", "shape": [2], "datatype": "FP64", "data": [2**63, -(2**63)]},
    {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, True]},
    {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, None]},
    {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, "2"]},
    {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]},
    {"name": "x", "shape": [2], "datatype": "FP64", "data": [[1, 2], []]},  # ragged
    {"name": "x", "shape": [3], "datatype": "FP64", "data": [1, [2], 3]},
    {"name": "x[0]", "shape": [2], "datatype": "FP64", "data": [1, 2]},  # a "[" in a string
    {"name": "x", "shape": [0], "datatype": "FP64", "data": []},
    {"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 2]},
    {"name": "x", "shape": [1], "datatype": "FP64", "data": [1], "parameters": {"a": [1, [2]]}},
]


@pytest.mark.parametrize("tensor", PARITY, ids=[json.dumps(t["data"]) for t in PARITY])
def test_numbers_read_by_simdjson_are_what_the_general_way_reads(
    tensor: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = body(tensor, parameters={"p": [1, 2]})

    def parse() -> object:
        try:
            request = v2.parse_infer(raw)
        except RequestError as exc:
            return ("refused", exc.message)
        ((name, array),) = request.inputs.items()
        return name, array.dtype, array.shape, array.tobytes(), array.flags.writeable

    fast = parse()
    monkeypatch.setattr(v2, "_read", v2.loads)  # the general way alone
    assert fast == parse()


def test_a_repeated_key_counts_once_as_orjson_reads_it() -> None:
    raw = (
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5],'
        b' "data": [2.5]}], "id": "a", "id": "b"}'
    )
    request = v2.parse_infer(raw)
    assert request.inputs["x"].tolist() == [2.5] and request.id == "b"


def test_only_flat_data_is_left_to_simdjson() -> None:
    def kept(tensor: dict[str, object]) -> bool:
        (read,) = v2._read(body(tensor))["inputs"]
        return not isinstance(read["data"], list)

    assert kept({"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2]})
    assert not kept({"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [[1.5, 2]]})
    assert not kept({"name": "[", "shape": [2], "datatype": "FP64", "data": [1.5, 2]})


@pytest.mark.parametrize(
    ("shape", "data"),
    [([2, 3], [1.5, 2, -3e-7, 4, 5, 6]), ([3, 1], [1.0, 2.0, 3.0]), ([3], [0.1, 0.2, 0.3])],
)
def test_the_log_gets_the_rows_as_sent_nested_as_the_array(
    shape: list[int], data: list[float]
) -> None:
    request = v2.parse_infer(body({"name": "x", "shape": shape, "datatype": "FP64", "data": data}))
    array = request.inputs["x"]
    logged = v2.sent_rows(request, array)
    assert isinstance(logged, orjson.Fragment)
    assert orjson.loads(orjson.dumps(logged)) == array.tolist()
    assert v2.sent_rows(request, array.copy()) is not logged  # not what the model took: itself


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [[1.5, 2]]},  # nested
        {"name": "x", "shape": [2], "datatype": "FP32", "data": [0.1, 2]},  # the text is finer
        {"name": "data", "shape": [2], "datatype": "FP64", "data": [0.1, 2]},  # "data" twice
    ],
)
def test_rows_not_sent_as_flat_fp64_are_logged_as_the_model_took_them(
    tensor: dict[str, object],
) -> None:
    request = v2.parse_infer(body(tensor))
    (array,) = request.inputs.values()
    assert v2.sent_rows(request, array) is array


def test_a_large_body_is_read_the_fast_way_and_a_small_one_by_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(v2_numbers, "MIN_BYTES", 8192)
    rows = np.random.default_rng(0).normal(size=(1000, 30))
    large = body(
        {"name": "x", "shape": [1000, 30], "datatype": "FP64", "data": rows.ravel().tolist()}
    )
    request = v2.parse_infer(large)
    assert request.sent is not None and np.array_equal(request.inputs["x"], rows)
    logged = orjson.loads(orjson.dumps(v2.sent_rows(request, request.inputs["x"])))
    assert logged == rows.tolist()
    small = v2.parse_infer(body({"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]}))
    assert small.sent is None and small.inputs["x"].tolist() == [0.5]
