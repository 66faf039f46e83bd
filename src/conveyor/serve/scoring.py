"""MLflow's scoring protocol (``POST /invocations``): request parsing and response bodies.

JSON bodies hold exactly one of ``dataframe_split`` (``{"columns", "data"}``),
``dataframe_records`` (a list of ``{column: value}``), ``instances`` or ``inputs`` (rows, or a
mapping of column -> values); ``text/csv`` bodies have a header line. Answers are
``{"predictions": [...]}``; errors ``{"error_code": "BAD_REQUEST", "message": ...}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from conveyor.serve.errors import RequestError, Unsupported
from conveyor.serve.payload import Named
from conveyor.serve.v2 import loads

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NOT_IN_ROWS = (b'"', b"t", b"f", b"\n", b"\r")


def parse(body: bytes, content_type: str) -> Any:
    """The body's table: rows (a list or array) or a mapping of column -> values."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("application/json", ""):
        return parse_json(body)
    if kind == "text/csv":
        return parse_csv(body)
    raise Unsupported(
        f"content type {content_type!r} is not read here",
        hint="send application/json or text/csv",
    )


def parse_json(body: bytes) -> Any:
    doc = loads(body)
    given = [k for k in FORMATS if k in doc]
    if len(given) != 1:
        raise RequestError(
            "the body must hold exactly one of "
            + ", ".join(FORMATS)
            + (
                f"; it holds {', '.join(given)}"
                if given
                else f"; it holds {', '.join(doc) or 'nothing'}"
            ),
            hint='e.g. {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}',
        )
    (key,) = given
    value = doc[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "dataframe_records":
        return _records(value)
    if isinstance(value, dict):
        return value  # columns
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _records(value)
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list of rows or a mapping of columns")
    return value


def _split(value: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise RequestError('\'dataframe_split\' must be {"columns": [...], "data": [[...]]}')
    data, columns = value["data"], value.get("columns")
    if columns is None:
        return data
    if not isinstance(columns, list):
        raise RequestError("'dataframe_split.columns' must be a list of names")
    width = len(columns)
    if any(not isinstance(row, list) or len(row) != width for row in data):
        raise RequestError(f"every row of 'dataframe_split.data' must hold {width} values")
    return Named([str(c) for c in columns], data)


def _records(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise RequestError("records must be a list of {column: value} objects")
    if not value:
        raise RequestError("the request holds no rows")
    names = list(value[0])
    try:
        return {str(n): [r[n] for r in value] for n in names}
    except KeyError as exc:
        raise RequestError(f"a record lacks column {exc.args[0]!r}") from exc


def parse_csv(body: bytes) -> Named:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the CSV body is not UTF-8: {exc}") from exc
    lines = list(csv.reader(io.StringIO(text)))
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise RequestError("a CSV body needs a header line and at least one row")
    header, *data = lines
    width = len(header)
    for n, row in enumerate(data, start=2):
        if len(row) != width:
            raise RequestError(f"CSV line {n} has {len(row)} values; the header has {width}")
    return Named(header, data)


def sent_rows(body: bytes, checked: Any) -> Any:
    """The rows of a ``{"inputs": [[...]]}`` (or ``instances``) body as the JSON text sent, for
    the prediction log, when the model took them unchanged: numbers only, parsed into the
    float64 array ``checked``. Else None. Logging that text spares serializing the rows again
    (a millisecond for a thousand rows of 30 values); it reads back to the same numbers."""
    if getattr(checked, "dtype", None) != "float64":
        return None
    for key in (b'{"inputs"', b'{"instances"'):
        if body.startswith(key):
            colon = body.find(b":", len(key))
            end = body.rfind(b"}")
            if colon < 0 or body[len(key) : colon].strip() or body[end + 1 :].strip():
                return None
            if body[colon + 1 : colon + 64].lstrip()[:1] != b"[":
                return None
            # no quote: no other key, no strings; no t or f: no true or false; one line
            if any(body.find(c, colon, end) >= 0 for c in _NOT_IN_ROWS):
                return None
            return orjson.Fragment(body[colon + 1 : end])
    return None


def response(predictions: Any) -> dict[str, Any]:
    return {"predictions": predictions if predictions.dtype != object else predictions.tolist()}


def error(exc: RequestError) -> dict[str, Any]:
    message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return {"error_code": exc.code, "message": message}
