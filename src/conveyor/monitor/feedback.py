"""Feedback: the true labels of requests the server answered, which arrive later (a customer
churned, a transaction was disputed) and are joined with the prediction log by request id.

Layout: JSON-lines segments in one folder, ``<project>/.conveyor/feedback/``, named, written and
read like the prediction log's (:mod:`conveyor.monitor.segments`): a segment being written is
``.jsonl.part``, renamed when finished; a reader takes finished segments whole and, from a
``.part`` (one being written, or one a killed process left), every complete line, never a
half-written one. One record per line (:class:`Label`): the request id, the label (a JSON
scalar), and when it was received.

    Writer(folder).write(labels)   the server's: one open segment, appended to per request
    append(root_or_dir, labels)    one finished segment at once
    add(root_or_dir, file)         a CSV or Parquet file's labels (``conveyor feedback add``)
    read(folder)                   every label, oldest segment first
    Seen(folder)                   the ids labelled so far, read incrementally
    join(predictions, labels)      per-version labelled/correct counts, and what did not join
                                   (:class:`conveyor.monitor.joiner.Joiner` keeps one up to date)

Duplicates: the first label of a request id wins (the earliest received). The server and
``conveyor feedback add`` skip an id already labelled and say how many they skipped; two
processes taking the same id at the same instant may both write it, and :func:`join` keeps the
first and counts the other.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import orjson

from conveyor.foundation import atomic
from conveyor.foundation.errors import ConveyorError, PathError
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.monitor import segments
from conveyor.monitor.predlog import Record

FOLDER = "feedback"  # under the project's .conveyor/
MAX_ID = 128  # characters: the longest request id a server gives or takes
LATE_AFTER = 7 * 24 * 3600.0  # seconds from a prediction to its label, past which it is late
SEGMENT_RECORDS = 50_000
SEGMENT_SECONDS = 300.0


class FeedbackError(ConveyorError):
    """A label that cannot be taken (its item is named), or feedback that cannot be stored."""


class Label(TypedDict):
    id: str
    label: Any  # a JSON scalar: a string, a number or a boolean
    ts: float  # when it was received, seconds since the epoch


def folder(root: Path) -> Path:
    """A project's feedback folder."""
    return root / CONTROL_DIR / FOLDER


def label(request_id: str, value: Any, ts: float | None = None) -> Label:
    """A label received now (or at ``ts``)."""
    return {"id": request_id, "label": value, "ts": round(time.time() if ts is None else ts, 6)}


# -- what a label may be (pure) -------------------------------------------------------------


def check(item: Any, where: str) -> tuple[str, Any]:
    """``item``'s request id and label; a :class:`FeedbackError` naming ``where`` (``item 3``,
    ``row 7``) and what is wrong with it otherwise."""
    if not isinstance(item, dict):
        raise FeedbackError(f'{where}: not an object with "id" and "label" (got {_kind(item)})')
    if "id" not in item:
        raise FeedbackError(f'{where}: no "id" (the x-request-id of the answer it labels)')
    request_id = check_id(item["id"], where)
    if "label" not in item:
        raise FeedbackError(f'{where}: no "label"')
    return request_id, check_label(item["label"], where)


def check_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FeedbackError(f"{where}: id is not a string (got {_kind(value)})")
    if not value:
        raise FeedbackError(f"{where}: id is empty")
    if len(value) > MAX_ID:
        raise FeedbackError(
            f"{where}: id is {len(value)} characters; request ids have at most {MAX_ID}"
        )
    return value


def check_label(value: Any, where: str) -> Any:
    if value is None:
        raise FeedbackError(f"{where}: label is null")
    if not isinstance(value, str | int | float):  # bool is an int
        raise FeedbackError(f"{where}: label is not a JSON scalar (got {_kind(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise FeedbackError(f"{where}: label is {value}, not a number JSON can hold")
    return value


def fresh(
    pairs: Iterable[tuple[str, Any]], seen: set[str] | frozenset[str], now: float
) -> tuple[list[Label], int]:
    """The labels of ids neither in ``seen`` nor earlier in ``pairs``, and how many were
    skipped as duplicates (pure)."""
    taken: list[Label] = []
    ids: set[str] = set()
    duplicates = 0
    for request_id, value in pairs:
        if request_id in seen or request_id in ids:
            duplicates += 1
            continue
        ids.add(request_id)
        taken.append(label(request_id, value, now))
    return taken, duplicates


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", type(None): "null", str: "a string"}
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    return names.get(type(value), type(value).__name__)


# -- writing ----------------------------------------------------------------------------------


class Writer:
    """Appends labels to one open ``.jsonl.part`` segment per process, finished (renamed) when
    it holds :data:`SEGMENT_RECORDS` labels, is :data:`SEGMENT_SECONDS` old, or at
    :meth:`close`. Each :meth:`write` is one batch of whole lines, on disk (``fdatasync``)
    before it returns: a label the server said it accepted survives a crash. A write that fails
    cuts what it half wrote and raises :class:`FeedbackError`; the next one starts a new segment.
    Thread-safe (the server writes from worker threads)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._segment: segments.Segment | None = None

    def write(self, labels: Sequence[Label]) -> None:
        if not labels:
            return
        data = _lines(labels)
        with self._lock:
            segment = self._segment
            if segment is not None and (segment.full() or segment.gone()):
                segment.finish()
                segment = self._segment = None
            try:
                if segment is None:
                    segment = self._segment = segments.Segment(
                        self.folder,
                        records=SEGMENT_RECORDS,
                        seconds=SEGMENT_SECONDS,
                        durable=True,  # a label the server said it took is kept
                    )
                segment.write(data, len(labels))
            except OSError as exc:
                if self._segment is not None:
                    self._segment.abandon()
                    self._segment = None
                raise _cannot_store(self.folder, exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._segment is not None:
                self._segment.finish()
                self._segment = None


def append(root_or_dir: Path, labels: Sequence[Label]) -> Path | None:
    """Write ``labels`` as one finished segment in a project's feedback folder (``root_or_dir``
    holds ``.conveyor/``) or in the folder ``root_or_dir``; the segment's path (None for no
    labels). Written under a hidden name and renamed: readers see all of them or none."""
    target = folder(root_or_dir) if (root_or_dir / CONTROL_DIR).is_dir() else root_or_dir
    if not labels:
        return None
    path = target / segments.new_name(time.time())
    data = _lines(labels)
    try:
        atomic.write_bytes(path, data, parents=True)
    except OSError as exc:
        raise _cannot_store(target, exc) from exc
    return path


_CHUNK = 10_000  # labels serialised per join


def _lines(labels: Sequence[Label]) -> bytes:
    """The labels as JSON lines. Joined a chunk at a time: one join of a million small results
    keeps them all alive at once (gigabytes of heap and a page fault each, 10x slower)."""
    out = bytearray()
    for start in range(0, len(labels), _CHUNK):
        chunk = labels[start : start + _CHUNK]
        out += b"".join([orjson.dumps(one, option=orjson.OPT_APPEND_NEWLINE) for one in chunk])
    return bytes(out)


def _cannot_store(target: Path, exc: OSError) -> FeedbackError:
    return FeedbackError(
        f"cannot store feedback in {target}: {exc.strerror or exc}",
        hint="check that the folder can be written and the disk has room",
    )


# -- a table of labels (conveyor feedback add) -------------------------------------------------


@dataclass(frozen=True)
class Added:
    accepted: int
    duplicates: int  # ids already labelled, or twice in the file: skipped
    segment: Path | None  # where the accepted labels are (None: there were none)


def add(target: Path, table_file: Path, now: float | None = None) -> Added:
    """Take the labels of a CSV or Parquet file with ``id`` and ``label`` columns into the
    feedback folder ``target`` (or a project's, given its root): ids labelled already, there or
    earlier in the file, are skipped and counted. All the file's labels or none are written."""
    pairs = table(table_file)
    place = folder(target) if (target / CONTROL_DIR).is_dir() else target
    labels, duplicates = fresh(pairs, Seen(place).refresh(), time.time() if now is None else now)
    return Added(len(labels), duplicates, append(place, labels))


def table(path: Path) -> list[tuple[str, Any]]:
    """The (request id, label) pairs of a CSV (``.csv``) or Parquet (``.parquet``) file; a
    :class:`FeedbackError` naming the file and the line (or row) of a bad one."""
    if not path.is_file():
        raise PathError(
            f"{path}: no such file",
            hint="give a CSV or Parquet file with id and label columns",
        )
    frame = _frame(path)
    missing = [name for name in ("id", "label") if name not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        raise FeedbackError(
            f"{path} has no {' and no '.join(missing)} column (its columns: {have})",
            hint="a feedback file has an id column (the x-request-id of each answer) and a "
            "label column (the true value)",
        )
    csv = path.suffix.lower() == ".csv"
    pairs = []
    for n, (request_id, value) in enumerate(
        zip(frame["id"].tolist(), frame["label"].tolist(), strict=True)
    ):
        where = f"{path} line {n + 2}" if csv else f"{path} row {n + 1}"
        if _empty(request_id):
            raise FeedbackError(f"{where}: id is empty")
        if _empty(value):
            raise FeedbackError(f"{where}: label is empty")
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            request_id = str(request_id)
        pairs.append((check_id(request_id, where), check_label(value, where)))
    return pairs


def _frame(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Only an empty cell is missing: "NA" or "null" may well be a label.
            return pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except ImportError as exc:
        raise FeedbackError(
            f"{path}: reading Parquet needs pyarrow ({exc})",
            hint="pip install 'conveyor[parquet]', or give a CSV file",
        ) from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise FeedbackError(f"{path}: cannot read it: {exc}") from exc
    raise FeedbackError(
        f"{path}: not a .csv or .parquet file",
        hint="give a CSV or Parquet file with id and label columns",
    )


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- reading ----------------------------------------------------------------------------------


def read(folder: Path) -> Iterator[Label]:
    """Every label in ``folder``, oldest segment first; nothing for a folder not made yet."""
    for path in segments.files(folder):
        yield from segments.records(segments.complete(path, path.read_bytes()))


class Seen:
    """The request ids labelled in a folder so far. :meth:`refresh` reads only what was added
    since the last call (new segments, and the new whole lines of segments being written, by
    this process or another), so a server can ask before every write which ids are taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ids: set[str] = set()
        self._tail = segments.Tail(folder)

    def refresh(self) -> set[str]:
        try:
            for _, _, data in self._tail.read():
                self.ids.update(one["id"] for one in segments.records(data))
        except OSError as exc:
            raise cannot_read(Path(exc.filename or self.folder), exc) from exc
        return self.ids


def cannot_read(path: Path, exc: OSError) -> FeedbackError:
    return FeedbackError(
        f"cannot read feedback in {path}: {exc.strerror or exc}",
        hint="check that the feedback folder is a folder this user can read",
    )


# -- joining with the prediction log (pure) ---------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """One version's joined labels: how many, and how many equal its prediction."""

    labelled: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class Joined:
    """What :func:`join` found. ``joined`` labels met a prediction; ``duplicates`` were a second
    label of an id (the first wins); ``unknown`` met no prediction (not logged, not sampled, or
    a wrong id); ``late`` joined, but more than ``late_after`` seconds after the prediction;
    ``uncomparable`` joined a prediction that is not one value (several rows in one request, or
    a row of several outputs) and are not in any version's tally."""

    versions: dict[str, Tally] = field(default_factory=dict)
    joined: int = 0
    duplicates: int = 0
    unknown: int = 0
    late: int = 0
    uncomparable: int = 0

    def tally(self, version: str | int) -> Tally:
        return self.versions.get(str(version), Tally())


def join(
    predictions: Iterable[Record | dict[str, Any]],
    labels: Iterable[Label],
    *,
    late_after: float = LATE_AFTER,
    since: float | None = None,
) -> Joined:
    """Labels joined with the predictions of one model by request id (the caller reads that
    model's log: ``predlog.read(folder, model)``). A label joins every version that answered its
    id (a shadow copy, say), once each; ``since`` leaves out predictions made before it (the
    start of a rollout). A prediction is correct when its one value equals the label: a
    classifier's output row, a scalar or a one-element list; ``1``, ``1.0``, ``True`` and ``"1"``
    are equal."""
    first: dict[str, Label] = {}
    duplicates = 0
    for one in labels:
        kept = first.get(one["id"])
        if kept is None:
            first[one["id"]] = one
            continue
        duplicates += 1
        if one["ts"] < kept["ts"]:  # written by two processes: the earliest received wins
            first[one["id"]] = one
    matched: dict[str, dict[str, tuple[float, Any]]] = {}  # id -> version -> (ts, outputs)
    before: set[str] = set()  # ids predicted before ``since`` only: neither joined nor unknown
    for record in predictions:
        request_id = record["id"]
        if request_id not in first:
            continue
        if since is not None and record["ts"] < since:
            before.add(request_id)
            continue
        answered = matched.setdefault(request_id, {})
        answered.setdefault(str(record["version"]), (record["ts"], record["outputs"]))
    counts: dict[str, list[int]] = {}
    late = uncomparable = 0
    for request_id, answered in matched.items():
        one = first[request_id]
        if any(one["ts"] - ts > late_after for ts, _ in answered.values()):
            late += 1
        for version, (_, outputs) in answered.items():
            value = single(outputs)
            if value is MANY:
                uncomparable += 1
                continue
            tally = counts.setdefault(version, [0, 0])
            tally[0] += 1
            tally[1] += same(one["label"], value)
    return Joined(
        {version: Tally(n, ok) for version, (n, ok) in sorted(counts.items())},
        joined=len(matched),
        duplicates=duplicates,
        unknown=len(first.keys() - matched.keys() - before),
        late=late,
        uncomparable=uncomparable,
    )


MANY = object()  # what :func:`single` says of a prediction that is not one value


def single(outputs: Any) -> Any:
    """The one value of a one-row prediction: ``1``, ``[1]`` and ``[[1]]`` are ``1``."""
    while isinstance(outputs, list):
        if len(outputs) != 1:
            return MANY
        outputs = outputs[0]
    return MANY if isinstance(outputs, dict) else outputs


def same(label: Any, prediction: Any) -> bool:
    """Whether a label equals a prediction, across the types a CSV, JSON and a model give the
    same class in (``"1"`` and ``1``)."""
    if isinstance(label, str) != isinstance(prediction, str):
        text, number = (label, prediction) if isinstance(label, str) else (prediction, label)
        try:
            return isinstance(number, int | float) and float(text) == float(number)
        except ValueError:
            return False
    return bool(label == prediction)
