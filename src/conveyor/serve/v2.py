"""The Open Inference Protocol v2 (KServe, MLServer, Triton): request parsing and response
bodies, pure functions over bytes and arrays.

An infer request carries named tensors: ``{"name", "shape", "datatype", "data"}`` with ``data``
flat or nested in row-major order, or (Triton's binary extension, which ``tritonclient`` uses by
default) ``parameters.binary_data_size`` bytes appended after the JSON, whose length the
``Inference-Header-Content-Length`` header gives.
"""

from __future__ import annotations

import math
import struct
from typing import Any, NamedTuple

import orjson

from conveyor.registry.signature import Signature
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


def datatype(dtype: Any) -> str:
    """The v2 datatype of a numpy dtype (strings and other objects are BYTES)."""
    return _NAMES.get(str(dtype), "BYTES")


def parse_infer(body: bytes, json_length: int | None = None) -> InferRequest:
    head = body if json_length is None else body[:json_length]
    binary = b"" if json_length is None else body[json_length:]
    doc = loads(head)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    tensors: dict[str, Any] = {}
    offset = 0
    for i, item in enumerate(inputs):
        name, shape, dtype = _header(item, i)
        params = item.get("parameters") or {}
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(f"input {name!r}: binary_data_size does not match the body")
            tensors[name] = _from_bytes(binary[offset : offset + size], name, shape, dtype)
            offset += size
        else:
            tensors[name] = _from_data(item.get("data"), name, shape, dtype)
    outputs = doc.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise RequestError("'outputs' must be a list of {\"name\": ...}")
        wanted = [o["name"] for o in outputs]
    rid = doc.get("id")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("'parameters' must be an object")
    return InferRequest(None if rid is None else str(rid), tensors, wanted, parameters)


def loads(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RequestError("the body must be a JSON object")
    return doc


def _header(item: Any, i: int) -> tuple[str, list[int], str]:
    if not isinstance(item, dict):
        raise RequestError(f"inputs[{i}] must be an object with name, shape, datatype, data")
    name, shape, dtype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str):
        raise RequestError(f"inputs[{i}] has no name")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(f"input {name!r}: shape must be a list of sizes, like [1, 30]")
    if dtype not in DATATYPES:
        raise RequestError(
            f"input {name!r}: unknown datatype {dtype!r}",
            hint=f"one of: {', '.join(DATATYPES)}",
        )
    return name, shape, str(dtype)


def _from_data(data: Any, name: str, shape: list[int], dtype: str) -> Any:
    import numpy as np

    if not isinstance(data, list):
        raise RequestError(f"input {name!r}: 'data' must be a list")
    try:
        array = np.asarray(data, dtype=DATATYPES[dtype])
    except (TypeError, ValueError) as exc:
        raise RequestError(f"input {name!r}: data is not {dtype}: {exc}") from exc
    return _shaped(array, name, shape)


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
    return array.reshape(shape)


def model_input(signature: Signature | None, tensors: dict[str, Any]) -> Any:
    """The tensors as one model input: the single tensor of an array model, or the columns of a
    table (one tensor per column, or one 2-D tensor with the columns in order)."""
    if signature is None or not signature.tabular:
        if len(tensors) != 1:
            want = signature.inputs[0].name if signature else "one input"
            raise RequestError(f"the model takes one input tensor ({want}); got {len(tensors)}")
        return next(iter(tensors.values()))
    if len(tensors) == 1 and len(signature.inputs) > 1:
        (array,) = tensors.values()
        return array  # rows of all columns; payload.conform splits them by position
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
