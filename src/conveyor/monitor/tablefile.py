"""A reference table's bytes as named columns, with pandas or without it.

    names, columns = read(raw, "data/train.csv")   # columns: name -> numpy array (or Series)

A CSV is read by pandas when it is installed (much faster on a big file), else by the csv
module into columns typed as ``pd.read_csv`` types them: integers, else floats (an integer
column with missing values too), else booleans, else text, each missing value (an empty field,
``NA``, ``null``, ...: pandas' list) as NaN. Both give the same profile
(tests/monitor/test_tablefile.py). A Parquet file needs pandas or pyarrow: without either, a
:class:`~conveyor.foundation.extras.MissingExtra` naming the extra that brings one.

I/O-free: bytes in, columns out.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from conveyor.foundation.errors import DataError
from conveyor.foundation.extras import MissingExtra

PARQUET = (".parquet", ".pq")
# pandas' default missing values (pandas._libs.parsers.STR_NA_VALUES)
NA_VALUES = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip
TRUE, FALSE = frozenset({"True", "TRUE", "true"}), frozenset({"False", "FALSE", "false"})
_INTEGER = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_FLOAT = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?)\s*", re.ASCII | re.IGNORECASE
)
_INT64 = (-(2**63), 2**63 - 1)
_INT_CHARS = 40  # an integer field longer than this (spaces and sign included) is past int64


def read(raw: bytes, path: str) -> tuple[list[str], dict[str, Any]]:
    """The table's column names (in order) and columns; a DataError for an unreadable one."""
    if PurePosixPath(path).suffix.lower() in PARQUET:
        return _parquet(raw, path)
    try:
        import pandas as pd
    except ImportError:
        return read_csv(raw)
    try:
        options: dict[str, Any] = {}
        if int(pd.__version__.partition(".")[0]) < 3:  # 3 reads floats as Python does already
            options["float_precision"] = "round_trip"
        frame = pd.read_csv(io.BytesIO(raw), **options)
    except Exception as exc:  # pandas raises many kinds for a bad file
        raise DataError(str(exc)) from exc
    return [str(c) for c in frame.columns], {str(c): frame[c] for c in frame.columns}


def read_csv(raw: bytes) -> tuple[list[str], dict[str, Any]]:
    """A CSV file with a header row read by the csv module, typed as pandas types it."""
    try:
        text = raw.decode("utf-8-sig")
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(str(exc)) from exc
    if not rows:
        raise DataError("No columns to parse from file")
    names = _names(rows[0])
    width = len(names)
    for n, row in enumerate(rows[1:], start=2):
        if len(row) > width:
            raise DataError(f"Error tokenizing data. Expected {width} fields in line {n}, "
                            f"saw {len(row)}")  # fmt: skip
    fields = [[row[i] if i < len(row) else "" for row in rows[1:]] for i in range(width)]
    return names, {name: typed(values) for name, values in zip(names, fields, strict=True)}


def typed(fields: Sequence[str]) -> Any:
    """One column's fields as pandas reads them: int64, else float64, else bool, else text
    (objects), missing values as NaN."""
    missing = [f in NA_VALUES for f in fields]
    present = [f for f, m in zip(fields, missing, strict=True) if not m]
    if not present:
        return np.full(len(fields), math.nan)
    if not any(missing) and all(_INTEGER.fullmatch(f) for f in present):
        # int64 has 19 digits: a longer field is never parsed (int() of more than 4,300
        # digits raises, and of fewer but very many takes quadratic time); pandas reads
        # integers past int64 as objects
        numbers = [int(f) for f in present] if max(map(len, present)) <= _INT_CHARS else []
        if numbers and _INT64[0] <= min(numbers) and max(numbers) <= _INT64[1]:
            return np.array(numbers, dtype=np.int64)
        return _objects(fields, missing, booleans=False)
    if all(_INTEGER.fullmatch(f) or _FLOAT.fullmatch(f) for f in present):
        return np.array([math.nan if m else float(f) for f, m in zip(fields, missing, strict=True)])
    return _objects(fields, missing, booleans=all(f in TRUE or f in FALSE for f in present))


def _objects(fields: Sequence[str], missing: Sequence[bool], *, booleans: bool) -> Any:
    """Text (or booleans) as objects, missing values as NaN; booleans with none missing as
    a bool array."""
    out = np.empty(len(fields), dtype=object)
    for i, (f, m) in enumerate(zip(fields, missing, strict=True)):
        out[i] = math.nan if m else (f in TRUE if booleans else f)
    return out.astype(bool) if booleans and not any(missing) else out


def _names(header: Sequence[str]) -> list[str]:
    """Column names as pandas makes them: ``Unnamed: i`` for an empty one, ``a.1`` for the
    second ``a``."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name or f"Unnamed: {i}"
        if name in seen:
            base, k = name, seen[name]
            while f"{base}.{k}" in seen:
                k += 1
            seen[base] = k + 1
            name = f"{base}.{k}"
        seen[name] = 1
        names.append(name)
    return names


def _parquet(raw: bytes, path: str) -> tuple[list[str], dict[str, Any]]:
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except ImportError:
            pass  # pandas without pyarrow: read by pyarrow, which says it is missing
        except Exception as exc:
            raise DataError(str(exc)) from exc
        else:
            return [str(c) for c in frame.columns], {str(c): frame[c] for c in frame.columns}
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra(
            f"reading the Parquet file {path} needs pyarrow (or pandas), which this install of "
            "conveyor leaves out",
            hint="pip install 'conveyor[parquet]', or give the reference as a CSV file",
        ) from None
    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises many kinds for a bad file
        raise DataError(str(exc)) from exc
    names = [str(c) for c in table.column_names]
    return names, {name: _arrow_column(table.column(i)) for i, name in enumerate(names)}


def _arrow_column(chunked: Any) -> Any:
    """A pyarrow column as pandas would hold it: numbers with nulls as floats with NaN, text
    and booleans with nulls as objects with NaN, dictionaries decoded."""
    import pyarrow as pa

    kind = chunked.type
    if pa.types.is_dictionary(kind):
        chunked = chunked.cast(kind.value_type)
        kind = kind.value_type
    nulls = chunked.null_count
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if nulls:
            return chunked.cast(pa.float64()).to_numpy()
        return chunked.to_numpy()
    if pa.types.is_boolean(kind) and not nulls:
        return chunked.to_numpy()
    if pa.types.is_temporal(kind):
        return chunked.to_numpy()
    values = np.empty(len(chunked), dtype=object)
    values[:] = [math.nan if v is None else v for v in chunked.to_pylist()]
    return values
