"""Reading a dataset (CSV, TSV, Parquet, JSON Lines, or a folder of them) into a DataFrame.

The one place where data files become tables for validation and drift: every failure is a
:class:`~conveyor.foundation.errors.ConveyorError` naming the file (and, for a CSV that does
not parse, the line), never a pandas traceback.

    frame = read_table("data/prepared/train.csv")
    frame = read_table("data/prepared")   # every table file inside, by name, one after another
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import DataError, PathError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
# pandas decompresses these itself, by the file name.
COMPRESSIONS = (".gz", ".bz2", ".xz")
SUPPORTED = ", ".join(sorted(FORMATS)) + f" (text ones also {'/'.join(COMPRESSIONS)})"


def read_table(path: str | Path) -> pd.DataFrame:
    """The table in ``path``: a data file, or a folder whose table files (found recursively,
    hidden ones and other files skipped) are read in name order and stacked.

    Files in one folder must have the same columns: stacking ``train.csv`` with a file of
    other columns would turn every missing cell into a null the schema then blames.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.exists():
        raise PathError(f"{path} does not exist")
    return _read_file(path, table_format(path))


def read_bytes(data: bytes, name: str) -> pd.DataFrame:
    """A table held in memory (an object from the cache), read as its file name's format says."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        return read_table(path)


def table_format(path: Path) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl``, by the file's name; PathError otherwise."""
    found = _format_of(path)
    if found is None:
        raise PathError(
            f"{path}: cannot read a {''.join(path.suffixes) or 'file without extension'} "
            "as a table",
            hint=f"conveyor reads {SUPPORTED}",
        )
    return found


def _format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
        if suffixes and FORMATS.get(suffixes[-1]) == "parquet":
            return None  # parquet compresses inside the file
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _read_folder(folder: Path) -> pd.DataFrame:
    import pandas as pd

    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and _format_of(p) is not None
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise PathError(
            f"{folder} holds no table files", hint=f"conveyor reads {SUPPORTED}; or name one file"
        )
    frames: list[pd.DataFrame] = []
    for file in files:
        frame = _read_file(file, table_format(file))
        if frames and list(frame.columns) != list(frames[0].columns):
            raise DataError(
                f"{file} has other columns than {files[0]}: "
                f"{_columns(frame.columns)} vs {_columns(frames[0].columns)}",
                hint="point at one file of the folder instead",
            )
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _columns(names: Iterable[Any]) -> str:
    shown = [str(n) for n in names]
    return ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "")


def _read_file(path: Path, kind: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if kind in ("csv", "tsv"):
            # low_memory=False: types from the whole column, not chunk by chunk (which warns
            # and may type one column two ways).
            return pd.read_csv(path, sep="," if kind == "csv" else "\t", low_memory=False)
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        return _read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: no header, no rows") from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else str(path)
        raise DataError(
            f"{where}: not valid {kind.upper()}: {_first_line(exc)}",
            hint="a row with more fields than the header often means an unquoted separator",
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from None
    except PermissionError:
        raise PathError(f"{path} cannot be read: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        if kind == "jsonl":
            raise DataError(f"{_bad_json_line(path)}: not valid JSON Lines: {exc}") from None
        raise DataError(f"{path}: not a valid {kind} file: {_first_line(exc)}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        import pyarrow.lib
    except ImportError:
        raise PathError(
            f"{path}: reading Parquet needs pyarrow", hint="pip install 'conveyor[parquet]'"
        ) from None

    try:
        return pd.read_parquet(path, engine="pyarrow")
    except pyarrow.lib.ArrowException as exc:
        raise DataError(f"{path}: not a valid Parquet file: {_first_line(exc)}") from None


def _bad_json_line(path: Path) -> str:
    """``path:line`` of the first line that is not a JSON object (read only on failure)."""
    import json

    try:
        with path.open() as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        if not isinstance(json.loads(line), dict):
                            return f"{path}:{number}"
                    except ValueError:
                        return f"{path}:{number}"
    except (OSError, UnicodeDecodeError):
        pass
    return str(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
