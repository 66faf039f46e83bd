"""A column's values for profiling, with or without pandas: what is missing, what is a number,
how often each value occurs.

    column([1, None, 2.5])          # -> float64 array [1.0, nan, 2.5], as pd.Series([...]) infers
    coerce(np.array(["3", "x"], dtype=object))   # -> [3.0, nan], as pd.to_numeric(errors="coerce")
    looks_numeric(values)           # numbers, as pd.api.types.infer_dtype says, or mostly numbers
    value_counts(values)            # -> Counts(values, counts, nulls), missing ones apart

A serving install has no pandas, so the monitor profiles with numpy and the standard library;
each function here gives what its pandas counterpart gives on the values the monitor meets (a
column of a DataFrame, of a CSV read without pandas, of logged JSON rows): the same profile in
every install (tests/monitor/test_columns.py runs both). pandas remains an accelerator where it
is much faster: counting a big column of objects (:data:`PANDAS_FROM` values and more), and the
columns of a DataFrame it made are read through it.

Pure: numpy, the standard library, and pandas only when the caller's values are pandas' or a
big count finds it installed.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Objects = npt.NDArray[np.object_]

MOSTLY_NUMBERS = 0.9  # a column with this share of numbers is numeric, the rest invalid
PANDAS_FROM = 50_000  # objects from which a count goes through pandas, when it is installed
# What pd.to_numeric reads as a number in text: Python's float grammar without its digit
# separators (1_000) and non-ASCII digits, whitespace around.
_NUMBER = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|nan)\s*", re.ASCII | re.IGNORECASE
)


@dataclass(frozen=True)
class Counts:
    """Each distinct value present (first seen first) and how often; missing values apart."""

    values: list[Any]
    counts: npt.NDArray[np.int64]
    nulls: int


# ----------------------------------------------------------------------------------- values


def is_frame(value: Any) -> bool:
    """A pandas DataFrame (told without importing pandas)."""
    return _from_pandas(value) and hasattr(value, "columns") and hasattr(value, "iloc")


def is_series(value: Any) -> bool:
    return _from_pandas(value) and type(value).__name__ == "Series"


def _from_pandas(value: Any) -> bool:
    return type(value).__module__.partition(".")[0] == "pandas"


def is_null(value: Any) -> bool:
    """Missing as pandas' ``isna`` says: None, NaN, pandas' NA and NaT (not ±inf)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(math.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def column(values: Any) -> Any:
    """A column as numpy (a pandas Series as it is): numbers as a float or int array, numbers
    with missing values as floats with NaN (as a Series of them is), anything else as objects."""
    if isinstance(values, np.ndarray) or is_series(values):
        return values
    items = values if isinstance(values, list | tuple) else list(values)
    try:
        array = np.array(items)
    except (ValueError, TypeError):  # ragged: rows, not values
        array = None
    if array is not None and array.ndim == 1 and array.dtype.kind in "iuf":
        return array
    objects = np.fromiter(items, dtype=object, count=len(items))
    if _numbers_and_nulls(objects):
        return np.array([math.nan if is_null(v) else v for v in objects], dtype=np.float64)
    return objects


def _numbers_and_nulls(objects: Objects) -> bool:
    """Numbers (not booleans) and missing values, at least one number: a float Series."""
    kinds = _kinds(objects.tolist())
    return bool(kinds) and kinds <= {"integer", "floating"}


def objects(values: Any) -> Objects:
    """The values as an array of Python objects."""
    if is_series(values):
        return values.to_numpy(dtype=object)  # type: ignore[no-any-return]
    array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    return array.astype(object, copy=False).ravel()


def floats(values: Any) -> Floats | None:
    """float64 values of a column of numbers (not booleans), without copying where possible;
    None for a column of anything else."""
    if is_series(values):
        import pandas as pd  # values are pandas': it is there

        dtype = values.dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            as_floats: Floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
            return as_floats
        return None
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    if array.dtype.kind in "iuf":
        return array.astype(np.float64, copy=False).ravel()
    return None


def is_time(values: Any) -> bool:
    """Dates or durations by their dtype (numpy's, or pandas' with a time zone)."""
    return getattr(getattr(values, "dtype", None), "kind", "") in ("M", "m")


# ---------------------------------------------------------------------------------- numbers


def coerce(values: Objects) -> Floats:
    """Each value as a float, NaN where it is missing or not a number (``pd.to_numeric(...,
    errors="coerce")``): numbers and booleans as they are, text that reads as a number."""
    return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value: Any) -> float:
    if isinstance(value, str):
        return float(value) if _NUMBER.fullmatch(value) else math.nan
    if isinstance(value, int | float | np.integer | np.floating | Decimal):
        return float(value)
    if isinstance(value, bytes):
        return _number(value.decode("ascii", errors="replace"))
    return math.nan  # missing, or an object that is no number


def looks_numeric(values: Any) -> bool:
    """Numbers (not booleans), possibly with missing values and a little text among them:
    what ``pd.api.types.infer_dtype(values, skipna=True)`` calls integer, floating, mixed
    integer-float or decimal, or a mix of kinds whose values are mostly (MOSTLY_NUMBERS)
    numbers."""
    if floats(values) is not None:
        return True
    if is_series(values):  # pandas' own column: told by pandas (in C, no copy)
        import pandas as pd

        inferred = pd.api.types.infer_dtype(values, skipna=True)
        numbers = inferred in ("floating", "integer", "mixed-integer-float", "decimal")
        mixed = inferred in ("mixed", "mixed-integer")
    else:
        kinds = _kinds(objects(values).tolist())
        numbers = bool(kinds) and (kinds <= {"integer", "floating"} or kinds == {"decimal"})
        mixed = len(kinds) > 1 and not numbers  # one kind that is no number: text, booleans
    if numbers or not mixed:
        return numbers
    items = objects(values)
    present = sum(not is_null(v) for v in items)
    return int(np.count_nonzero(~np.isnan(coerce(items)))) >= MOSTLY_NUMBERS * present


def _kinds(items: list[Any]) -> set[str]:
    """The kinds of the values present, told by their types (a set made in C: a column of a
    million strings in milliseconds), floats looked at one by one only to skip NaN."""
    kinds = set()
    for kind in set(map(type, items)):
        if issubclass(kind, float | np.floating):
            if any(v == v for v in items if type(v) is kind):  # a float that is not NaN
                kinds.add("floating")
        elif kind is type(None) or kind.__name__ in ("NAType", "NaTType"):
            continue
        elif issubclass(kind, bool | np.bool_):
            kinds.add("boolean")
        elif issubclass(kind, int | np.integer):
            kinds.add("integer")
        elif issubclass(kind, Decimal):
            kinds.add("decimal")
        else:
            kinds.add(kind.__name__)  # str, bytes, date, ...: each its own kind
    return kinds


# ------------------------------------------------------------------------------- categories


def value_counts(values: Any) -> Counts:
    """How often each value occurs, and how many are missing (pandas' ``value_counts``)."""
    if is_series(values):
        return _series_counts(values)
    array = values if isinstance(values, np.ndarray) else column(values)
    if array.dtype.kind in "biuf":
        present = array[~np.isnan(array)] if array.dtype.kind == "f" else array
        found, counts = np.unique(present, return_counts=True)
        return Counts(found.tolist(), counts.astype(np.int64), len(array) - len(present))
    items = objects(array)
    if len(items) >= PANDAS_FROM and _pandas_installed():
        import pandas as pd

        return _series_counts(pd.Series(items, dtype=object, copy=False))
    try:
        tally: Counter[Any] = Counter(items.tolist())  # counted in C; missing ones taken out
    except TypeError:  # unhashable values among them
        tally = Counter(_hashable(v) for v in items.tolist())
    nulls = 0
    for key in [k for k in tally if is_null(k)]:  # None, and each NaN object (NaN != NaN)
        nulls += tally.pop(key)
    return Counts(list(tally), np.fromiter(tally.values(), np.int64, len(tally)), nulls)


def _series_counts(series: Any) -> Counts:
    import pandas as pd  # the values are pandas'

    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        tally = np.bincount(codes + 1, minlength=len(series.cat.categories) + 1)
        kept = tally[1:] > 0
        found = [v for v, k in zip(series.cat.categories.tolist(), kept, strict=True) if k]
        return Counts(found, tally[1:][kept].astype(np.int64), int(tally[0]))
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable values: keyed by their text, as the count without pandas
        counts = series.map(_hashable, na_action="ignore").value_counts(dropna=True, sort=False)
    tally = counts.to_numpy(dtype=np.int64)
    return Counts(counts.index.tolist(), tally, len(series) - int(tally.sum()))


def _hashable(value: Any) -> Any:
    """A value a count can key: an unhashable one (a list in a logged row) by its text."""
    try:
        hash(value)
    except TypeError:
        return str(value)
    return value


@cache
def _pandas_installed() -> bool:
    if "pandas" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("pandas") is not None
    except (ImportError, ValueError):  # a finder that refuses it
        return False
