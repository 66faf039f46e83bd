"""One request's input, checked against the model's signature, and how requests are merged
into one batch and the predictions split back.

A payload is what the model takes: an array (``rows x ...``) for a model whose signature is one
array input, or a mapping of column name -> 1-D array for a table. Both protocols parse their
bodies into plain values; :func:`conform` checks and casts them here, request by request, so a
bad request fails alone and never spoils the batch it would have joined.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from conveyor.registry.signature import Signature, SignatureError, enforce, enforce_columns
from conveyor.serve.errors import RequestError


class Named(NamedTuple):
    """Rows whose columns have names (a CSV body, MLflow's ``dataframe_split``)."""

    columns: list[str]
    rows: list[Any]


class Columns(dict[str, Any]):
    """Columns by name from MLflow's scoring protocol (records, or a mapping of columns). As
    with :class:`Named` rows, a column the model does not take is left out, as MLflow's server
    does (a client may send an id column along); Open Inference Protocol tensors the model does
    not take are refused."""


class Rows(list[Any]):
    """Rows whose values have no column names (MLflow's ``instances``/``inputs`` lists, a
    ``dataframe_split`` without ``columns``). An array model reads them as they are; a table
    model refuses them, as MLflow's server does: values matched to columns by their position
    give wrong answers, not errors, when the order is not the model's."""


def conform(signature: Signature | None, data: Any) -> Any:
    """``data`` (an array, nested lists, :class:`Named` rows or a mapping of columns) as the
    model takes it."""
    import numpy as np

    if isinstance(data, list) and signature is not None and not signature.tabular:
        declared = _as_declared(signature, data)
        if declared is not None:
            return declared
    lenient = isinstance(data, Named | Columns)
    try:
        if isinstance(data, Named):
            if signature is not None and not signature.tabular:
                data = data.rows  # an array model reads the values in the order given
            else:
                table = np.asarray(data.rows, dtype=object).reshape(len(data.rows), -1)
                data = {name: table[:, i] for i, name in enumerate(data.columns)}
                if signature is None:  # the names go along: the model checks them, or not
                    data = {name: _inferred(values) for name, values in data.items()}
        if signature is None:
            return dict(data) if isinstance(data, Mapping) else np.asarray(data)
        if signature.tabular:
            if isinstance(data, Rows):
                raise _unnamed(signature)
            if not isinstance(data, Mapping):
                data = _columns_by_position(signature, data)
            if lenient:
                data = {c.name: data[c.name] for c in signature.inputs if c.name in data}
            return enforce_columns(signature, dict(data))
        if isinstance(data, Mapping):
            data = _array_from_columns(signature, data)
        return enforce(signature, data)
    except SignatureError as exc:
        raise RequestError(exc.message, hint=exc.hint) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise RequestError(f"the input is not a table of values: {exc}") from exc


def _inferred(values: Any) -> Any:
    """A column for a model with no signature, typed as pandas reads a CSV or a JSON table:
    numbers as numbers (text that reads as numbers too), anything else as it came."""
    import pandas as pd

    column = pd.Series(values.tolist())
    if column.dtype == object:
        with contextlib.suppress(TypeError, ValueError):
            column = pd.to_numeric(column)
    return column.to_numpy()


def _unnamed(signature: Signature) -> RequestError:
    names = [c.name for c in signature.inputs]
    return RequestError(
        f"the model takes a table (columns {', '.join(names)}) and these rows name no columns",
        hint=f'send {{"dataframe_split": {{"columns": {json.dumps(names)}, "data": [[...]]}}}}, '
        "records, or a mapping of columns",
    )


def _as_declared(signature: Signature, rows: list[Any]) -> Any:
    """Rows that already are what a one-array model takes (its dtype, its shape), as an array;
    else None, for :func:`~conveyor.registry.signature.enforce` to cast or explain. The common
    request, spared the general path."""
    import numpy as np

    if len(signature.inputs) != 1 or signature.inputs[0].dtype == "object":
        return None
    (col,) = signature.inputs
    try:
        array = np.asarray(rows)
    except (TypeError, ValueError):
        return None
    want = col.shape
    if (
        array.dtype == _numpy_dtype(col.dtype)
        and array.ndim == len(want)
        and all(w in (-1, g) for w, g in zip(want, array.shape, strict=True))
    ):
        return array
    return None


@functools.cache
def _numpy_dtype(name: str) -> Any:
    import numpy as np

    return np.dtype(name)


def _columns_by_position(signature: Signature, rows: Any) -> dict[str, Any]:
    """A table model fed plain rows: the values are its columns, in signature order."""
    import numpy as np

    array = np.asarray(rows, dtype=object)
    names = [c.name for c in signature.inputs]
    if array.ndim != 2 or array.shape[1] != len(names):
        raise RequestError(
            f"rows of {len(names)} values expected (columns {', '.join(names)}); "
            f"got shape {list(array.shape)}",
            hint="or send the columns by name",
        )
    return {name: array[:, i] for i, name in enumerate(names)}


def _array_from_columns(signature: Signature, columns: Mapping[str, Any]) -> Any:
    """An array model fed named columns: a single column named like its input, or the columns
    side by side in the order given."""
    import numpy as np

    (only,) = signature.inputs
    if only.name in columns and len(columns) == 1:
        return columns[only.name]
    return np.column_stack([np.asarray(v) for v in columns.values()])


def rows(payload: Any) -> int:
    if isinstance(payload, dict):
        return len(next(iter(payload.values()))) if payload else 0
    return int(payload.shape[0]) if getattr(payload, "ndim", 0) else 1


def merge(signature: Signature | None, payloads: Sequence[Any]) -> Any:
    """One input for the model out of several requests' payloads (a DataFrame for a table)."""
    import numpy as np

    if isinstance(payloads[0], dict):
        import pandas as pd

        names = list(payloads[0])
        if len(payloads) == 1:
            return pd.DataFrame(payloads[0], columns=names, copy=False)
        merged = {n: np.concatenate([p[n] for p in payloads]) for n in names}
        return pd.DataFrame(merged, columns=names, copy=False)
    return payloads[0] if len(payloads) == 1 else np.concatenate(payloads)


def split(output: Any, sizes: Sequence[int]) -> list[Any]:
    """The model's output for a merged batch, cut back into each request's rows."""
    import numpy as np

    array = _as_array(output)
    if len(sizes) == 1:
        return [array]
    if array.shape[0] != sum(sizes):
        raise RuntimeError(f"the model gave {array.shape[0]} rows for {sum(sizes)} inputs")
    return np.split(array, np.cumsum(sizes)[:-1])


def _as_array(output: Any) -> Any:
    import numpy as np

    if hasattr(output, "to_numpy"):  # a DataFrame or Series from a python or mlflow model
        return output.to_numpy()
    return np.asarray(output)
