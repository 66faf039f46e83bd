"""Reading an Open Inference Protocol v2 body's numbers fast.

Flat numbers for a float tensor, the usual large request, are read by simdjson straight into
an array: no Python float is made for each value, which is most of the cost of a 1,000-row
request read with ``orjson.loads`` and ``numpy.asarray``. Anything else (nested lists, text,
booleans, a body simdjson refuses) is left to :mod:`conveyor.serve.v2`'s general way, which
says what is wrong; tests/serve/test_v2.py holds both ways to the same arrays and errors.

The prediction log takes the numbers as the JSON text the client sent, nested by rows, rather
than serializing them again: :func:`data_text` finds that text and :func:`rows_text` nests it.
"""

from __future__ import annotations

from typing import Any

import simdjson

MIN_BYTES = 8192  # below this, orjson and numpy read a body faster (10 us against 35 us)


def read(head: bytes) -> dict[str, Any] | None:
    """The JSON object as ``orjson.loads`` reads it, except that an input's ``data`` that is a
    flat list stays a simdjson array, for :func:`floats` to take its numbers from; None for a
    body simdjson does not read (or reads otherwise than orjson), for orjson to read or
    explain."""
    try:
        # A parser of its own for each body: it holds the document (and memory as large as
        # the largest body it read) as long as a value read from it lives, and no longer.
        doc = simdjson.Parser().parse(head)
    except Exception:  # whatever simdjson refuses: orjson reads it, or says what is wrong
        return None
    out = _members(doc) if isinstance(doc, simdjson.Object) else None
    if out is None:
        return None
    inputs = out.get("inputs")
    if not isinstance(inputs, simdjson.Array):
        return out
    tensors = []
    for item in inputs:
        members = _members(item, keep="data") if isinstance(item, simdjson.Object) else None
        if members is None:
            return None
        tensors.append(members)
    out["inputs"] = tensors
    kept = [t for t in tensors if isinstance(t.get("data"), simdjson.Array)]
    # A kept array must hold no list (simdjson would flatten a ragged one): each "[" of the
    # body is then one of the lists read, or a kept array's own. (A "[" in a string sends
    # the data the general way, which is only slower.)
    lists = 1 + _lists([v for k, v in out.items() if k != "inputs"])
    lists += sum(_lists([v for k, v in t.items() if k != "data"]) for t in tensors)
    if kept and _count(head, b"[") != lists + len(kept):
        for t in kept:
            t["data"] = t["data"].as_list()
    return out


def _count(text: bytes, char: bytes) -> int:
    import numpy as np  # counts a byte several times faster than bytes.count

    return int(np.count_nonzero(np.frombuffer(text, dtype=np.uint8) == ord(char)))


def _members(obj: Any, keep: str = "inputs") -> dict[str, Any] | None:
    """An object's members as Python values, but for ``keep``'s array; None when a key is
    repeated (orjson keeps the last, simdjson finds the first)."""
    keys = list(obj.keys())
    if len(set(keys)) != len(keys):
        return None
    out: dict[str, Any] = {}
    for key in keys:
        value = obj[key]
        if isinstance(value, simdjson.Array):
            out[key] = value if key == keep else value.as_list()
        elif isinstance(value, simdjson.Object):
            out[key] = value.as_dict()
        else:
            out[key] = value
    return out


def _lists(values: list[Any]) -> int:
    """How many lists ``values`` hold, nested ones too (not ``values`` itself)."""
    count = 0
    for value in values:
        if isinstance(value, list):
            count += 1 + _lists(value)
        elif isinstance(value, dict):
            count += _lists(list(value.values()))
    return count


def floats(data: Any, target: Any) -> Any:
    """A flat simdjson array of numbers as an array of the float dtype ``target``, the same as
    the general way makes; None when it holds anything else or a value that does not fit (the
    general way says which)."""
    import numpy as np

    if not isinstance(data, simdjson.Array):
        return None
    try:
        raw = data.as_buffer(of_type="d")
    except (TypeError, ValueError):  # not numbers only
        return None
    found = np.frombuffer(raw, dtype=np.float64)  # read-only: the buffer's
    if found.size == 0:
        return np.empty(0, dtype=target)
    with np.errstate(over="ignore", invalid="ignore"):
        array = found.astype(target)  # a copy, and writable, even to the same dtype
    return None if np.isinf(array).any() else array


def data_text(head: bytes) -> bytes | None:
    """The text of the one ``"data": [...]`` of a body whose data simdjson read as a flat list
    of numbers; None unless that is certain (:func:`rows_text` counts the numbers)."""
    first = head.find(b'"data"')
    key = first + len(b'"data"')
    colon = head.find(b":", key)
    start = head.find(b"[", colon)
    if first < 0 or colon < 0 or start < 0:
        return None
    if head[key:colon].strip() or head[colon + 1 : start].strip():
        return None
    end = head.find(b"]", start)
    text = head[start : end + 1]
    # the body's only "data": none before the first, none among numbers (they hold no quote)
    if end < 0 or b'"' in text or head.find(b'"data"', end) >= 0:
        return None
    return text


def rows_text(text: bytes, shape: tuple[int, ...]) -> bytes | None:
    """A flat JSON list of numbers nested as an array of ``shape`` (one or two dimensions)
    is: "],[" for every width-th comma. None when it does not hold that many numbers."""
    import numpy as np

    if len(shape) == 1:
        return text if _count(text, b",") == shape[0] - 1 else None
    chars = np.frombuffer(text, dtype=np.uint8)
    rows, width = shape
    commas = np.flatnonzero(chars == ord(","))
    if len(commas) != rows * width - 1:
        return None
    cuts = commas[width - 1 :: width].tolist()
    starts, ends = [1, *(c + 1 for c in cuts)], [*cuts, len(text) - 1]
    return b"[[" + b"],[".join([text[a:b] for a, b in zip(starts, ends, strict=True)]) + b"]]"
