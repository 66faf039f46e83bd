"""Feedback joined with a prediction log as both grow: :func:`conveyor.monitor.feedback.join`
kept up to date by reading only what was written since the last update.

A rollout's controller asks every few seconds how many labelled and correct predictions each
version has since the rollout began. Joining from scratch each time reads everything logged
since then, so each join costs more the longer the rollout runs; :class:`Joiner` reads each
segment once (a ``.part`` line by line as it grows, and not again once renamed) and keeps only
what the join needs: each id's first label, and the predictions of labelled ids (per version,
its first answer: when, and its one value; whether one came before ``since``). Labels are
usually a small share of predictions, and a label may come for any of them at any time, so of
the others it keeps only where they are (:class:`Index`: 20 bytes a line, not the ~400 of an
answer kept as Python objects) and reads a line again when its id is labelled. Its result is
``join``'s over everything read so far, whatever order labels and predictions arrived in.

    Running(since=...)             the join's bookkeeping over plain values (pure)
    Index()                        where lines are, by a hash of their id (pure)
    Joiner(predictions, feedback)  a Running fed from the segments' new lines
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from conveyor.monitor import segments
from conveyor.monitor.feedback import (
    LATE_AFTER,
    MANY,
    FeedbackError,
    Joined,
    Tally,
    cannot_read,
    same,
    single,
)

# Where a record was read: its segment's key and where its line starts there (a byte offset, or
# any number that orders the lines of a segment). Positions compare as ``predlog.read`` and
# ``feedback.read`` give the records.
Position = tuple[str, int]
# A version's first answer to a request: the version, where it was read, when it was made, its
# one value (or MANY), and the group it counts in (a monitoring window; None). An id keeps a tuple
# of them, one per version: most ids have one, and a tuple of one is smaller than a dict.
Answer = tuple[str, Position, float, Any, Hashable]
# What group a logged prediction's labels count in, from its record (a monitoring window).
Group = Callable[[Any], Hashable]

# An id's hash in an Index. Python's own: fast, and the same for an id all through one process,
# which is as long as an Index lives (it is salted per process, so never store one). A module
# attribute so that a test can make ids collide.
_hash: Callable[[Any], int] = hash


class Running:
    """A join that takes labels and predictions one at a time, in any order, each with its
    :data:`Position`, and says at any moment what :func:`~conveyor.monitor.feedback.join` would
    of those read so far, in the order of their positions: the earliest received label of an
    id wins (the first read, among equals), and the first prediction read of each version.

    Per id it keeps the winning label, each version's first answer since ``since`` (its time and
    one value, or :data:`~conveyor.monitor.feedback.MANY`) and whether one came before; the
    counts follow each change (an id's share is taken out, changed, and put back), so
    :meth:`result` costs nothing per id."""

    def __init__(self, *, since: float | None = None, late_after: float = LATE_AFTER) -> None:
        self.since = since
        self.late_after = late_after
        self._labels: dict[str, tuple[float, Position, Any]] = {}  # id -> (ts, where, label)
        self._answers: dict[str, tuple[Answer, ...]] = {}
        self._before: set[str] = set()  # ids answered before ``since``
        self._duplicates = 0
        self._counts: dict[str, list[int]] = {}  # version -> [labelled, correct]
        self._grouped: dict[tuple[str, Hashable], list[int]] = {}  # (version, group) -> same
        self._joined = self._unknown = self._late = self._uncomparable = 0

    def labelled(self, request_id: str) -> bool:
        """Whether a label of ``request_id`` came: its predictions are to be fed from then on."""
        return request_id in self._labels

    def label(self, request_id: str, ts: float, value: Any, where: Position) -> None:
        kept = self._labels.get(request_id)
        if kept is not None:
            self._duplicates += 1
            if (kept[0], kept[1]) < (ts, where):
                return
        self._count(request_id, -1)
        self._labels[request_id] = (ts, where, value)
        self._count(request_id, 1)

    def prediction(
        self,
        request_id: str,
        ts: float,
        version: str,
        value: Any,
        where: Position,
        group: Hashable = None,
    ) -> None:
        """``value``: the one value of the prediction's outputs (what
        :func:`~conveyor.monitor.feedback.single` says of them); ``group``: where its label
        also counts (:attr:`groups`), None for nowhere."""
        labelled = request_id in self._labels  # else no count changes: most ids, most of the time
        if self.since is not None and ts < self.since:
            if request_id not in self._before:
                if labelled:
                    self._count(request_id, -1)
                self._before.add(request_id)
                if labelled:
                    self._count(request_id, 1)
            return
        answers = self._answers.get(request_id, ())
        if answers:
            kept = next((a for a in answers if a[0] == version), None)
            if kept is not None and kept[1] < where:
                return  # the version's answer read before this one stays
            answers = tuple(a for a in answers if a is not kept)
        if labelled:
            self._count(request_id, -1)
        self._answers[request_id] = (*answers, (version, where, ts, value, group))
        if labelled:
            self._count(request_id, 1)

    @property
    def groups(self) -> dict[tuple[str, Hashable], Tally]:
        """(version, group) -> its labels so far, for the predictions given a group."""
        return {k: Tally(n, ok) for k, (n, ok) in self._grouped.items() if n}

    def result(self) -> Joined:
        return Joined(
            {v: Tally(n, ok) for v, (n, ok) in sorted(self._counts.items()) if n},
            joined=self._joined,
            duplicates=self._duplicates,
            unknown=self._unknown,
            late=self._late,
            uncomparable=self._uncomparable,
        )

    def _count(self, request_id: str, sign: int) -> None:
        """Add (1) or take out (-1) what ``request_id`` adds to the counts: nothing unless
        labelled; unknown when answered by no version, not even before ``since``."""
        labelled = self._labels.get(request_id)
        if labelled is None:
            return
        answers = self._answers.get(request_id)
        if not answers:
            if request_id not in self._before:
                self._unknown += sign
            return
        received, _, value = labelled
        self._joined += sign
        if any(received - ts > self.late_after for _, _, ts, _, _ in answers):
            self._late += sign
        for version, _, _, output, group in answers:
            if output is MANY:
                self._uncomparable += sign
                continue
            right = same(value, output)
            tally = self._counts.setdefault(version, [0, 0])
            tally[0] += sign
            tally[1] += sign * right
            if group is not None:
                grouped = self._grouped.setdefault((version, group), [0, 0])
                grouped[0] += sign
                grouped[1] += sign * right


class Index:
    """Where lines are, by a 64-bit hash of their request id: per line the hash, its segment's
    number and the byte offset it starts at, 20 bytes in numpy arrays (a Python tuple of the
    same would take ten times as much). :meth:`find` gives the lines of some hashes, among
    which those of other ids whose hash is the same: the caller reads them and checks the id.

    Lines come a chunk at a time and stay. Each chunk is a run sorted by hash; a run is merged
    into the one before while that one is less than twice its size, so there are at most
    log2(lines) runs to search and each line is merged that many times at most. A merge makes
    one column at a time, freeing the old one before the next: at its peak the index takes
    about 33 bytes a line, not twice 20."""

    def __init__(self) -> None:
        self._runs: list[list[NDArray[Any]]] = []  # [hashes (sorted), segments, offsets]

    def __len__(self) -> int:
        return sum(len(run[0]) for run in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for run in self._runs for column in run)

    def add(self, hashes: NDArray[np.int64], segment: int, offsets: NDArray[np.uint64]) -> None:
        """The lines of one segment that start at ``offsets``, their ids' ``hashes``."""
        if not len(hashes):
            return
        order = np.argsort(hashes, kind="stable")
        segment_of = np.full(len(order), segment, dtype=np.uint32)
        self._runs.append([hashes[order], segment_of, offsets[order]])
        while len(self._runs) > 1 and len(self._runs[-2][0]) < 2 * len(self._runs[-1][0]):
            small = self._runs.pop()
            self._runs[-1] = _merged(self._runs[-1], small)

    def find(self, hashes: Iterable[int]) -> list[tuple[int, int]]:
        """(segment, offset) of the lines of ``hashes``, each once."""
        wanted = np.unique(np.fromiter(hashes, dtype=np.int64))
        found: list[tuple[int, int]] = []
        for sorted_hashes, segment_of, offsets in self._runs:
            first = np.searchsorted(sorted_hashes, wanted, side="left")
            last = np.searchsorted(sorted_hashes, wanted, side="right")
            counts = last - first
            # Each hash's rows, first[i] up to last[i], all in one array.
            rows = np.arange(counts.sum()) + np.repeat(first - (np.cumsum(counts) - counts), counts)
            found.extend(zip(segment_of[rows].tolist(), offsets[rows].tolist(), strict=True))
        return found


def _merged(big: list[NDArray[Any]], small: list[NDArray[Any]]) -> list[NDArray[Any]]:
    """One run of two sorted ones; ``big`` and ``small`` are emptied, a column at a time."""
    size = len(big[0]) + len(small[0])
    moved = np.searchsorted(big[0], small[0], side="right")  # after big's equal hashes
    moved += np.arange(len(small[0]))
    stays = np.ones(size, dtype=bool)
    stays[moved] = False
    merged = []
    for i, column in enumerate(big):
        out = np.empty(size, dtype=column.dtype)
        out[moved] = small[i]
        out[stays] = column
        merged.append(out)
        big[i] = small[i] = out[:0]  # the old columns go before the next new one is made
    return merged


class Joiner:
    """One model's prediction log (the folder ``predlog.model_folder`` names) joined with a
    feedback folder, from ``since`` on. Each :meth:`update` reads what was written to either
    since the last one (only complete lines) and returns the join of everything so far.

    A prediction whose id has a label goes to the :class:`Running` join; one whose id has none
    yet (most of them), to the :class:`Index` only, and is read again from its segment when a
    label of its id comes (hash collisions are told apart by the id read). A segment removed
    since is not joined, as a full read would not. :attr:`parsed` counts the lines read once,
    :attr:`reread` those read again; :attr:`indexed` and :attr:`nbytes` say what the index
    holds. Not thread-safe: one caller updates it."""

    def __init__(
        self,
        predictions: Path,
        feedback: Path,
        *,
        since: float | None = None,
        late_after: float = LATE_AFTER,
        group: Group | None = None,
    ) -> None:
        self.predictions = predictions
        self.group = group
        self.feedback = feedback
        self.parsed = 0
        self.reread = 0
        self._running = Running(since=since, late_after=late_after)
        self._logged = segments.Tail(predictions)
        self._labelled = segments.Tail(feedback)
        self._index = Index()
        self._segments: list[str] = []  # the prediction log's segment keys, by their number
        self._numbers: dict[str, int] = {}
        # Ids first labelled whose earlier predictions are to be read again: kept until read,
        # so that an update that failed to read them tries again.
        self._wanted: list[str] = []

    @property
    def indexed(self) -> int:
        """Lines in the index: the predictions read while their id had no label."""
        return len(self._index)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds (those of labelled ids' answers are not counted)."""
        return self._index.nbytes

    @property
    def groups(self) -> dict[tuple[str, Hashable], Tally]:
        """(version, group) -> the labels joined so far, as ``group`` put the predictions."""
        return self._running.groups

    def update(self) -> Joined:
        running = self._running
        for name, offset, data in _chunks(self._labelled, cannot_read):
            labels = _taken(self._labelled, name, offset, data)
            self.parsed += len(labels)
            for where, (request_id, ts, value) in labels:
                if not running.labelled(request_id):
                    self._wanted.append(request_id)
                running.label(request_id, ts, value, where)
        self._read_again()
        for name, offset, data in _chunks(self._logged, _unlogged):
            self._logged_chunk(name, offset, data)
        return running.result()

    def _logged_chunk(self, name: str, offset: int, data: bytes) -> None:
        """A chunk of a prediction log's segment, taken whole before any of it counts: one
        with a bad line raises, and raises again next time, never half counted."""
        running = self._running
        hashes, offsets = array("q"), array("Q")  # 8 bytes a line, not a Python int's 32
        answers: list[tuple[Position, tuple[str, float, str, Any, Hashable]]] = []
        try:
            for at, line in segments.lines(data):
                request_id = _id_of(line)
                one = None
                if request_id is None:
                    one = orjson.loads(line)
                    _check(one)
                    request_id = one["id"]
                if running.labelled(request_id):
                    one = one or orjson.loads(line)
                    answers.append(((name, offset + at), _answer(one, self.group)))
                else:  # most: no label yet; read whole when one comes
                    hashes.append(_hash(request_id))
                    offsets.append(offset + at)
        except (ValueError, KeyError, TypeError) as exc:
            raise _not_records(self._logged.folder / name, offset, exc) from exc
        self.parsed += len(answers) + len(hashes)
        for where, (request_id, ts, version, value, group) in answers:
            running.prediction(request_id, ts, version, value, where, group)
        if hashes:
            number = self._numbers.setdefault(name, len(self._segments))
            if number == len(self._segments):
                self._segments.append(name)
            self._index.add(
                np.frombuffer(hashes, dtype=np.int64),
                number,
                np.frombuffer(offsets, dtype=np.uint64),
            )

    def _read_again(self) -> None:
        """The indexed predictions of the ids first labelled since the last update, read again
        and joined. Reading one twice (after a failed update) changes nothing."""
        if not self._wanted:
            return
        wanted = set(self._wanted)
        lines: dict[int, list[int]] = {}
        for number, start in self._index.find(_hash(request_id) for request_id in wanted):
            lines.setdefault(number, []).append(start)
        for number, offsets in sorted(lines.items()):
            name = self._segments[number]
            at = offsets[0]
            try:
                for at, line in segments.lines_at(self.predictions, name, sorted(offsets)):
                    self.reread += 1
                    request_id, ts, version, value, group = _answer(orjson.loads(line), self.group)
                    if request_id in wanted:  # else another id of the same hash
                        self._running.prediction(request_id, ts, version, value, (name, at), group)
            except OSError as exc:
                raise _unlogged(Path(exc.filename or self.predictions), exc) from exc
            except (ValueError, KeyError, TypeError) as exc:  # the segment changed since
                raise _not_records(self.predictions / name, at, exc) from exc
        self._wanted.clear()


def _chunks(
    tail: segments.Tail, unreadable: Callable[[Path, OSError], FeedbackError]
) -> Iterator[tuple[str, int, bytes]]:
    """``tail``'s new chunks, its OSError told as ``unreadable`` says (one counts as taken once
    the next is asked for)."""
    try:
        yield from tail.read()
    except OSError as exc:
        raise unreadable(Path(exc.filename or tail.folder), exc) from exc


def _taken(
    tail: segments.Tail, name: str, offset: int, data: bytes
) -> list[tuple[Position, tuple[str, float, Any]]]:
    """The labels of a chunk of feedback, each where it was read, or a FeedbackError naming
    the segment: a chunk is taken whole before any of it counts."""
    try:
        return [
            ((name, offset + at), _label(orjson.loads(line))) for at, line in segments.lines(data)
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise _not_records(tail.folder / name, offset, exc) from exc


def _not_records(path: Path, offset: int, exc: Exception) -> FeedbackError:
    return FeedbackError(
        f"{path}: a line after byte {offset} is not a record of its kind "
        f"({type(exc).__name__}: {exc})",
        hint="move the file out of the folder if it does not belong there",
    )


def _label(one: Any) -> tuple[str, float, Any]:
    return one["id"], one["ts"], one["label"]


_ID = b'{"id":"'  # how the server's log writes a record (predlog.record): its id first


def _id_of(line: bytes) -> str | None:
    """The id of a logged record as the server writes it, without parsing the rest (most are
    never labelled: parsing each whole was a fifth of a monitor's look); None for a line in
    any other form, which is parsed whole. The rest of a line read so is checked when a label
    of its id comes and it is read again."""
    if not line.startswith(_ID):
        return None
    end = line.find(b'"', len(_ID))
    if end < 0 or b"\\" in line[len(_ID) : end]:
        return None
    try:
        return line[len(_ID) : end].decode()
    except UnicodeDecodeError:
        return None


def _check(one: Any) -> None:
    """Raise as :func:`_answer` would for a record that is not a logged prediction."""
    if not (isinstance(one["id"], str) and "ts" in one and "version" in one and "outputs" in one):
        raise KeyError("id, ts, version or outputs")


def _answer(one: Any, group: Group | None) -> tuple[str, float, str, Any, Hashable]:
    """A logged prediction without its inputs, its outputs down to their one value, and the
    group its label counts in."""
    where = None if group is None else group(one)
    return one["id"], one["ts"], str(one["version"]), single(one["outputs"]), where


def _unlogged(path: Path, exc: OSError) -> FeedbackError:
    return FeedbackError(
        f"cannot read the prediction log in {path}: {exc.strerror or exc}",
        hint="check that the prediction log's folder (conveyor serve --log-dir) is a folder "
        "this user can read",
    )
