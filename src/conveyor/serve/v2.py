"""The Open Inference Protocol v2 (KServe, MLServer, Triton): request parsing and response
bodies, pure functions over bytes and arrays.

An infer request carries named tensors: ``{"name", "shape", "datatype", "data"}`` with ``data``
flat or nested in row-major order, or (Triton's binary extension, which ``tritonclient`` uses by
default) ``parameters.binary_data_size`` bytes appended after the JSON, whose length the
``Inference-Header-Content-Length`` header gives.

Flat numbers for a float tensor are read the fast way (:mod:`conveyor.serve.v2_numbers`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
import simdjson

from conveyor.registry.signature import Signature
from conveyor.serve import v2_numbers
from conveyor.serve.errors import RequestError

# v2 datatype -> numpy dtype name
DATATYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}  # fmt: skip
_NAMES = {v: k for k, v in DATATYPES.items()}


class InferRequest(NamedTuple):
    id: str | None
    inputs: dict[str, Any]  # name -> array of the declared shape
    outputs: list[str] | None  # names asked for; None: all
    parameters: dict[str, Any]
    # name -> its data as the JSON text sent, for a flat FP64 input read by simdjson
    sent: dict[str, bytes] | None = None


def datatype(dtype: Any) -> str:
    """The v2 datatype of a numpy dtype (strings and other objects are BYTES)."""
    return _NAMES.get(str(dtype), "BYTES")


def parse_infer(body: bytes, json_length: int | None = None) -> InferRequest:
    head = body if json_length is None else body[:json_length]
    binary = b"" if json_length is None else body[json_length:]
    doc = _read(head)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    # orjson reads true and false as Python bools, which numpy takes for 1 and 0 among numbers:
    # only a body that holds the words needs its numbers looked at one by one. The search costs
    # about as much as reading the numbers: done once, when a list of numbers needs it.
    bools = _Once(lambda: b"true" in head or b"false" in head)
    tensors: dict[str, Any] = {}
    sent: dict[str, bytes] | None = None
    offset = 0
    for i, item in enumerate(inputs):
        name, shape, dtype = _header(item, i)
        if name in tensors:
            raise RequestError(f"input {name!r} is given twice", hint="name each input once")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError(f"input {name!r}: 'parameters' must be an object")
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not _is_int(size) or size < 0 or offset + size > len(binary):
                raise RequestError(f"input {name!r}: binary_data_size does not match the body")
            if "data" in item:
                raise RequestError(f"input {name!r} has both 'data' and binary_data_size")
            tensors[name] = _from_bytes(binary[offset : offset + size], name, shape, dtype)
            offset += size
        else:
            data = item.get("data")
            tensors[name] = _from_data(data, name, shape, dtype, bools)
            if dtype == "FP64" and isinstance(data, simdjson.Array):
                text = v2_numbers.data_text(head)
                sent = None if text is None else {name: text}
    if offset != len(binary):
        raise RequestError(
            f"the body has {len(binary) - offset} bytes after its last binary input",
            hint="Inference-Header-Content-Length and the binary_data_size of each input must "
            "add up to the body's length",
        )
    outputs = doc.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise RequestError("'outputs' must be a list of {\"name\": ...}")
        wanted = [o["name"] for o in outputs]
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError(f"'id' must be a string, not {_kind(rid)}")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("'parameters' must be an object")
    return InferRequest(rid, tensors, wanted, parameters, sent if len(tensors) == 1 else None)


def loads(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RequestError("the body must be a JSON object")
    return doc


def _read(head: bytes) -> dict[str, Any]:
    # orjson reads a small body faster: simdjson's fixed costs pay off from a few hundred values
    doc = v2_numbers.read(head) if len(head) >= v2_numbers.MIN_BYTES else None
    return loads(head) if doc is None else doc


class _Once:
    def __init__(self, compute: Callable[[], bool]) -> None:
        self.compute = compute
        self.value: bool | None = None

    def __call__(self) -> bool:
        if self.value is None:
            self.value = self.compute()
        return self.value


MAX_DIMS = 32  # what numpy indexes


def _header(item: Any, i: int) -> tuple[str, list[int], str]:
    if not isinstance(item, dict):
        raise RequestError(f"inputs[{i}] must be an object with name, shape, datatype, data")
    name, shape, dtype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str):
        raise RequestError(f"inputs[{i}] has no name")
    if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d < 2**63 for d in shape):
        raise RequestError(f"input {name!r}: shape must be a list of sizes, like [1, 30]")
    if len(shape) > MAX_DIMS:  # the product of a million dimensions would stall every request
        raise RequestError(
            f"input {name!r}: shape has {len(shape)} dimensions (at most {MAX_DIMS})"
        )
    if dtype not in DATATYPES:
        raise RequestError(
            f"input {name!r}: unknown datatype {dtype!r}",
            hint=f"one of: {', '.join(DATATYPES)}",
        )
    return name, shape, str(dtype)


def _from_data(
    data: Any, name: str, shape: list[int], dtype: str, bools: Callable[[], bool] = lambda: True
) -> Any:
    """``data`` as an array of ``dtype``, or a RequestError naming the input: no value is
    converted into another kind (a string into a number, a float into an integer, a bool into
    either), nor out of the datatype's range."""
    import numpy as np

    target = np.dtype(DATATYPES[dtype])
    if target.kind == "f":
        fast = v2_numbers.floats(data, target)
        if fast is not None:
            return _shaped(fast, name, shape)
    if isinstance(data, simdjson.Array):
        data = data.as_list()
    if not isinstance(data, list):
        raise RequestError(f"input {name!r}: 'data' must be a list")
    try:
        found = np.asarray(data)  # numpy's own reading first: it says what kind of values came
    except (TypeError, ValueError) as exc:
        raise RequestError(f"input {name!r}: data is not a regular nested list: {exc}") from exc
    if found.size == 0:
        return _shaped(np.empty(found.shape, dtype=target), name, shape)
    kind = found.dtype.kind
    if dtype == "BYTES":
        if kind != "U":
            raise RequestError(f"input {name!r}: BYTES data must be strings; {_first(found)}")
        return _shaped(found.astype(object), name, shape)
    if dtype == "BOOL":
        if kind != "b":
            raise RequestError(f"input {name!r}: BOOL data must be true or false; {_first(found)}")
        return _shaped(found, name, shape)
    if target.kind in "iu" and kind == "O" and all(_is_int(v) for v in found.reshape(-1)):
        raise RequestError(  # numpy keeps integers past 64 bits as Python objects
            f"input {name!r}: a value is out of the range of {dtype}", hint="declare FP64"
        )
    if kind not in "iuf" or (bools() and _holds_bool(data)):
        held = "it holds booleans" if kind in "iuf" else _first(found)
        raise RequestError(
            f"input {name!r}: {dtype} data must be numbers; {held}",
            hint="send numbers unquoted, and booleans as a BOOL input",
        )
    if found.dtype == target:
        return _shaped(found, name, shape)
    with np.errstate(over="ignore", invalid="ignore"):
        array = found.astype(target)
    # JSON holds no infinities, so one here overflowed; an integer that does not come back the
    # same did not fit: a fraction, or out of range.
    lost = np.flatnonzero(np.isinf(array) if target.kind == "f" else array != found)
    if lost.size:
        value = found.reshape(-1)[lost[0]].item()
        if target.kind in "iu" and isinstance(value, float) and not value.is_integer():
            raise RequestError(f"input {name!r}: {dtype} data must be integers; it holds {value}")
        raise RequestError(
            f"input {name!r}: {value} is out of the range of {dtype}",
            hint="declare a datatype that holds it",
        )
    return _shaped(array, name, shape)


def _holds_bool(data: Any) -> bool:
    return any(_holds_bool(v) if isinstance(v, list) else v is True or v is False for v in data)


def _first(found: Any) -> str:
    """What the data holds instead, for an error message."""
    kinds = {"U": "it holds text", "b": "it holds booleans", "f": "it holds numbers"}
    kinds["i"] = kinds["u"] = kinds["f"]
    if found.dtype.kind in kinds:
        return f"{kinds[found.dtype.kind]}, like {found.reshape(-1)[0].item()!r}"
    for value in found.reshape(-1):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"it holds {_kind(value)}"
    return "it holds booleans"  # among numbers


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _from_bytes(raw: bytes, name: str, shape: list[int], dtype: str) -> Any:
    import numpy as np

    if dtype == "BYTES":  # each element: a 4-byte little-endian length, then the bytes
        items, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise RequestError(f"input {name!r}: truncated BYTES element")
            (n,) = struct.unpack_from("<I", raw, at)
            items.append(raw[at + 4 : at + 4 + n].decode("utf-8", "replace"))
            at += 4 + n
        array = np.asarray(items, dtype=object)
    else:
        width = np.dtype(DATATYPES[dtype]).itemsize
        if len(raw) % width:
            raise RequestError(f"input {name!r}: {len(raw)} bytes is not a whole number of {dtype}")
        array = np.frombuffer(raw, dtype=np.dtype(DATATYPES[dtype]).newbyteorder("<"))
    return _shaped(array, name, shape)


def _shaped(array: Any, name: str, shape: list[int]) -> Any:
    want = math.prod(shape)
    if array.size != want:
        raise RequestError(
            f"input {name!r}: shape {shape} holds {want} values; the data has {array.size}"
        )
    try:
        return array.reshape(shape)
    except ValueError as exc:  # no data, but a shape past what numpy can index
        raise RequestError(f"input {name!r}: shape {shape} is not possible: {exc}") from exc


def sent_rows(request: InferRequest, checked: Any) -> Any:
    """What to log of the input the model took: the JSON text the client sent (an
    ``orjson.Fragment``, nested as the array is) when the model took a flat FP64 input
    unchanged, else ``checked`` itself. The text reads back to the same numbers, and spares
    serializing them again (a millisecond for a thousand rows of 30 values)."""
    for name, text in (request.sent or {}).items():
        array = request.inputs[name]
        if array is checked and array.ndim <= 2 and array.size:
            nested = v2_numbers.rows_text(text, array.shape)
            return checked if nested is None else orjson.Fragment(nested)
    return checked


def model_input(signature: Signature | None, tensors: dict[str, Any]) -> Any:
    """The tensors as one model input: the single tensor of an array model, or the columns of a
    table (one tensor per column, or one 2-D tensor with the columns in order). A tensor must be
    named like the input it is, as ``GET /v2/models/{name}`` lists them."""
    if signature is None:
        if len(tensors) != 1:
            raise RequestError(f"the model takes one input tensor; got {len(tensors)}")
        return next(iter(tensors.values()))
    names = [c.name for c in signature.inputs]
    if signature.tabular and len(tensors) == 1 and len(names) > 1:
        ((given, array),) = tensors.items()
        if given not in names and getattr(array, "ndim", 0) == 2:
            return array  # rows of all columns; payload.conform splits them by position
    unknown = [n for n in tensors if n not in names]
    if unknown:
        raise RequestError(
            f"the model has no input {unknown[0]!r}",
            hint=f"its inputs: {', '.join(names)} (see GET /v2/models/<name>)",
        )
    if not signature.tabular:
        return next(iter(tensors.values()))
    return tensors


def infer_response(
    model: str, version: str, rid: str | None, outputs: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "outputs": [tensor(name, array) for name, array in outputs.items()],
    }
    if rid is not None:
        body["id"] = rid
    return body


def tensor(name: str, array: Any) -> dict[str, Any]:
    dtype = datatype(array.dtype)
    flat = array.reshape(-1)
    data = flat.tolist() if dtype in ("BYTES", "FP16") else flat
    return {"name": name, "datatype": dtype, "shape": list(array.shape), "data": data}


def metadata(
    name: str, versions: list[str], platform: str, signature: Signature | None
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs as v2 tensors (``-1``: any size)."""

    def spec(cols: Any) -> list[dict[str, Any]]:
        return [
            {"name": c.name, "datatype": datatype(c.dtype), "shape": list(c.shape)} for c in cols
        ]

    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": spec(signature.inputs) if signature else [],
        "outputs": spec(signature.outputs) if signature else [],
    }
