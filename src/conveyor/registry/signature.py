"""What a model takes and gives: input and output names, dtypes and shapes, inferred from an
example and enforced before every prediction with errors that say what to fix.

A table (a pandas DataFrame, or a list of records) has one input per column, each of shape
``[-1]``; an array has one input named ``input`` of shape ``[-1, ...]``. ``-1`` is any size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from conveyor.foundation.errors import ConveyorError


class SignatureError(ConveyorError):
    exit_code = 2


class Column(NamedTuple):
    name: str
    dtype: str  # numpy's name: float64, int64, bool, object (strings)
    shape: tuple[int, ...]
    required: bool = True  # False: a table's column a request may leave out (MLflow's optional)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if not self.required:  # only then: manifests written before stay byte for byte the same
            out["required"] = False
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Column:
        shape = tuple(int(d) for d in raw["shape"])
        return cls(str(raw["name"]), str(raw["dtype"]), shape, raw.get("required", True) is True)


class Signature(NamedTuple):
    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...]

    @property
    def tabular(self) -> bool:
        return not (len(self.inputs) == 1 and self.inputs[0].name == "input")

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Signature:
        return cls(
            tuple(Column.from_dict(c) for c in raw.get("inputs", [])),
            tuple(Column.from_dict(c) for c in raw.get("outputs", [])),
        )


def infer(example: Any, prediction: Any) -> Signature:
    """The signature of a model that maps ``example`` to ``prediction``."""
    return Signature(_columns(example, "input"), _columns(prediction, "output"))


# MLflow's column types as numpy dtypes (the ones a column of a table can have here).
_MLFLOW_TYPES = {
    "boolean": "bool", "integer": "int32", "long": "int64", "float": "float32",
    "double": "float64", "string": "object", "binary": "object",
}  # fmt: skip


def from_mlflow(raw: dict[str, Any]) -> Signature | None:
    """An MLmodel's signature (``inputs``/``outputs`` as lists of column or tensor specs) in
    this module's terms; None if it has none (several tensors, nested or datetime types).

    An output MLflow left unnamed (``[{"type": "long"}]``: every scikit-learn classifier saved
    from an input example) is ``output``; outputs conveyor has no words for are left out, as
    nothing is checked against them, rather than losing the inputs too."""
    try:
        inputs = _mlflow_columns(raw["inputs"], "input")
    except (KeyError, TypeError, ValueError):
        return None
    try:
        outputs = _mlflow_columns(raw.get("outputs") or [], "output")
    except (KeyError, TypeError, ValueError):
        outputs = ()
    return Signature(inputs, outputs) if inputs else None


def _mlflow_columns(specs: list[dict[str, Any]], default: str) -> tuple[Column, ...]:
    if len(specs) == 1 and specs[0]["type"] == "tensor":
        tensor = specs[0]["tensor-spec"]
        return (Column(default, _dtype_name(tensor["dtype"]), tuple(tensor["shape"])),)
    if len(specs) == 1 and "name" not in specs[0]:  # one unnamed column: a 1-D array
        return (Column(default, _MLFLOW_TYPES[specs[0]["type"]], (-1,)),)
    return tuple(
        Column(str(s["name"]), _MLFLOW_TYPES[s["type"]], (-1,), s.get("required", True) is True)
        for s in specs
    )


def _dtype_name(name: str) -> str:
    import numpy as np

    return _dtype(np.empty(0, dtype=name))


def _columns(data: Any, default: str) -> tuple[Column, ...]:
    import numpy as np

    if _is_frame(data):
        return tuple(Column(str(c), _dtype(data[c].to_numpy()), (-1,)) for c in data.columns)
    array = np.asarray(data)
    return (Column(default, _dtype(array), (-1, *array.shape[1:])),)


def _dtype(array: Any) -> str:
    kind = array.dtype.kind
    if kind in "OUS":
        return "object"
    return str(array.dtype)


def _is_frame(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


# Casts a model is fed as a matter of course: an int column may feed a float input, not the
# reverse; float64 data (numpy's default) may feed a float32 model (ONNX graphs mostly are).
_SAFE = {
    ("int8", "int64"), ("int16", "int64"), ("int32", "int64"),
    ("int8", "float64"), ("int16", "float64"), ("int32", "float64"), ("int64", "float64"),
    ("float32", "float64"), ("bool", "int64"), ("bool", "float64"),
    ("int64", "float32"), ("int32", "float32"), ("float64", "float32"),
}  # fmt: skip


def enforce(signature: Signature, data: Any) -> Any:
    """``data`` as the model expects it (columns in order, safe casts done), or a
    SignatureError naming the input and what is wrong."""
    import numpy as np

    if signature.tabular:
        import pandas as pd

        frame = data if _is_frame(data) else pd.DataFrame(data)
        names = [c.name for c in signature.inputs]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SignatureError(
                f"the input lacks column(s) {', '.join(missing)}",
                hint=f"the model takes: {', '.join(names)}",
            )
        out = {}
        for col in signature.inputs:
            out[col.name] = _cast(frame[col.name].to_numpy(), col)
        return pd.DataFrame(out, columns=names)
    (col,) = signature.inputs
    array = np.asarray(data)
    want = col.shape
    if array.ndim != len(want) or any(
        w not in (-1, g) for w, g in zip(want, array.shape, strict=True)
    ):
        shown = ["-1" if d == -1 else str(d) for d in want]
        raise SignatureError(
            f"input has shape {list(array.shape)}; the model takes [{', '.join(shown)}]",
            hint="-1 is any size (the number of rows)",
        )
    return _cast(array, col)


def _cast(values: Any, col: Column) -> Any:
    have = _dtype(values)
    if col.dtype == "object":
        if values.dtype.kind in "biuf":  # numbers for a text column: as text, as MLflow's reads
            return values.astype(str).astype(object)
        return values
    if have == col.dtype:
        return values
    if (have, col.dtype) in _SAFE:
        return values.astype(col.dtype)
    if col.dtype.startswith(("int", "uint")) and (have == "object" or have.startswith("float")):
        whole = _whole(values, col)
        if whole is not None:
            return whole
    elif have == "object":  # numbers sent as text in JSON or CSV; None is a missing value
        try:
            return values.astype(col.dtype)
        except (TypeError, ValueError, OverflowError):
            pass
    raise SignatureError(
        f"input {col.name!r} is {have}; the model takes {col.dtype}",
        hint="send values of that type (an integer column may feed a float input, not back)",
    )


def _whole(values: Any, col: Column) -> Any:
    """Numbers (or numbers as text) for an integer input: cast when each is a whole number in
    the type's range (JSON writes 3.0 for 3; so does pandas for an int column beside a float
    one), refused when one is not, never truncated. None when they are not numbers at all."""
    import numpy as np

    try:
        floats = values.astype("float64")
    except (TypeError, ValueError, OverflowError):
        return None
    missing = np.flatnonzero(np.isnan(floats))
    if missing.size:
        raise SignatureError(
            f"input {col.name!r} has a missing value (null or NaN) in row {missing[0] + 1}; "
            f"the model takes {col.dtype}, which has none",
            hint="send a number there, or save the model with a float column if it can be missing",
        )
    info = np.iinfo(col.dtype)
    bad = np.flatnonzero(
        (floats != np.floor(floats)) | (floats < info.min) | (floats >= float(int(info.max) + 1))
    )
    if bad.size:
        shown = values[bad[0]]
        raise SignatureError(
            f"input {col.name!r} has {getattr(shown, 'item', lambda: shown)()!r} in row "
            f"{bad[0] + 1}; "
            f"the model takes {col.dtype}: whole numbers from {info.min} to {info.max}",
            hint="send whole numbers (rounding is the client's choice, not the server's)",
        )
    try:  # from the values themselves: an int beyond 2**53 keeps its last digits
        return values.astype(col.dtype)
    except (TypeError, ValueError, OverflowError):  # "3.0" as text
        return floats.astype(col.dtype)


def enforce_columns(signature: Signature, columns: dict[str, Any]) -> dict[str, Any]:
    """A table given as columns (name -> values), checked and cast column by column without
    building a DataFrame: what a server does to each request before batching them."""
    import numpy as np

    names = [c.name for c in signature.inputs]
    missing = [c.name for c in signature.inputs if c.name not in columns and c.required]
    if missing:
        raise SignatureError(
            f"the input lacks column(s) {', '.join(missing)}",
            hint=f"the model takes: {', '.join(names)}",
        )
    extra = sorted(set(columns) - set(names))
    if extra:
        raise SignatureError(
            f"the model takes no column(s) {', '.join(extra)}",
            hint=f"the model takes: {', '.join(names)}",
        )
    out: dict[str, Any] = {}
    rows = None
    for col in signature.inputs:
        if col.name not in columns:  # an optional column left out
            continue
        values = np.asarray(columns[col.name])
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise SignatureError(
                f"column {col.name!r} has shape {list(values.shape)}; a column is [-1]"
            )
        if rows is not None and len(values) != rows:
            raise SignatureError(
                f"column {col.name!r} has {len(values)} values, the others {rows}",
                hint="every column needs one value per row",
            )
        rows = len(values)
        try:
            out[col.name] = _cast(values, col)
        except SignatureError:
            if col.required or not _has_missing(values):
                raise
            out[col.name] = values  # an optional column's missing values: the model decides
    return out


def _has_missing(values: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(values).any())
