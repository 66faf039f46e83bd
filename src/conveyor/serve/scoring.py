"""MLflow's scoring protocol (``POST /invocations``): request parsing and response bodies.

JSON bodies hold exactly one of ``dataframe_split`` (``{"columns", "data"}``),
``dataframe_records`` (a list of ``{column: value}``), ``instances`` or ``inputs`` (rows, or a
mapping of column -> values); ``text/csv`` bodies have a header line. Answers are
``{"predictions": [...]}``; errors ``{"error_code": "BAD_REQUEST", "message": ...}``.

Requests are read as ``mlflow models serve`` reads them, so a client of MLflow's server gets
the same answers here (tests/serve/test_mlflow_parity.py sends both servers the same requests):
columns the model does not take are left out, rows without column names are refused for a
table, JSON's ``NaN`` is a missing value, only UTF-8 is read. Where conveyor answers otherwise,
docs/serving.md says why.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import orjson

from conveyor.serve.errors import RequestError, Unsupported
from conveyor.serve.payload import Columns, Named, Rows

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NOT_IN_ROWS = (b'"', b"t", b"f", b"\n", b"\r")


def parse(body: bytes, content_type: str) -> Any:
    """The body's table: rows (a list or array) or a mapping of column -> values."""
    kind, _, rest = content_type.partition(";")
    kind = kind.strip().lower()
    params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
    if not kind:
        raise Unsupported(
            "the request has no Content-Type",
            hint="send Content-Type: application/json (or text/csv), as MLflow's server needs too",
        )
    charset = params.pop("charset", "utf-8").strip().strip('"').lower()
    if charset not in ("utf-8", "utf8"):
        raise Unsupported(f"charset {charset!r} is not read here", hint="send UTF-8")
    if params:  # MLflow 1.x clients sent format=pandas-split; MLflow 2+ refuses it too
        raise Unsupported(
            f"content type parameter(s) {', '.join(params)} are not read here",
            hint='name the format in the body: {"dataframe_split": ...} (MLflow 2 protocol)',
        )
    if kind == "application/json":
        return parse_json(body)
    if kind == "text/csv":
        return parse_csv(body)
    raise Unsupported(
        f"content type {content_type!r} is not read here",
        hint="send application/json or text/csv",
    )


def loads(body: bytes) -> dict[str, Any]:
    """A JSON object. orjson reads it, unless it holds ``NaN`` (or ``Infinity``), which is not
    JSON but is how MLflow's client writes a DataFrame's missing values: the standard library
    reads those, and the signature decides whether a column may hold them."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RequestError(
            "the body must be a JSON object",
            hint='e.g. {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}',
        )
    return doc


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
        if value and not any(isinstance(v, list | dict) for v in value.values()):
            return Columns({k: [v] for k, v in value.items()})  # one value per column: a row
        return Columns(value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _records(value)
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list of rows or a mapping of columns")
    return Rows(value)


_SPLIT_KEYS = frozenset(("columns", "data", "index"))


def _split(value: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise RequestError('\'dataframe_split\' must be {"columns": [...], "data": [[...]]}')
    extra = sorted(set(value) - _SPLIT_KEYS)
    if extra:
        raise RequestError(
            f"'dataframe_split' holds {', '.join(map(repr, extra))}",
            hint="it takes columns, data and index only (pandas' split orient)",
        )
    data, columns = value["data"], value.get("columns")
    if columns is None:
        return Rows(data)
    if not isinstance(columns, list):
        raise RequestError("'dataframe_split.columns' must be a list of names")
    width = len(columns)
    if any(not isinstance(row, list) or len(row) != width for row in data):
        raise RequestError(f"every row of 'dataframe_split.data' must hold {width} values")
    return Named([str(c) for c in columns], data)


def _records(value: Any) -> Columns:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise RequestError("records must be a list of {column: value} objects")
    if not value:
        raise RequestError("the request holds no rows")
    # A key a record leaves out is a missing value there, as in a DataFrame made of records
    # (MLflow's server): the signature decides whether its column may have one.
    names = dict.fromkeys(n for r in value for n in r)
    return Columns({str(n): [r.get(n) for r in value] for n in names})


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
    # An empty field is a missing value, as pandas.read_csv (MLflow's server) reads it.
    return Named(header, [[v if v != "" else None for v in row] for row in data])


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
