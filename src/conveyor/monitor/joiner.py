"""Feedback joined with a prediction log as both grow: :func:`conveyor.monitor.feedback.join`
kept up to date by reading only what was written since the last update.

A rollout's controller asks every few seconds how many labelled and correct predictions each
version has since the rollout began. Joining from scratch each time reads everything logged
since then, so each join costs more the longer the rollout runs; :class:`Joiner` reads each
segment once (a ``.part`` line by line as it grows, and not again once renamed) and keeps only
what the join needs: per request id, each version's first answer (when, and its one value), the
ids answered before ``since``, and each id's first label. Its result is ``join``'s over
everything read so far, whatever order labels and predictions arrived in.

    Running(since=...)             the join's bookkeeping over plain values (pure)
    Joiner(predictions, feedback)  a Running fed from the segments' new lines
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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

# Where a record was read: its segment's key and its line there. Positions compare as
# ``predlog.read`` and ``feedback.read`` give the records.
Position = tuple[str, int]
# A version's first answer to a request: the version, where it was read, when it was made, its
# one value (or MANY). An id keeps a tuple of them, one per version: most ids have one, and a
# tuple of one is smaller than a dict.
Answer = tuple[str, Position, float, Any]

_T = TypeVar("_T")


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
        self._joined = self._unknown = self._late = self._uncomparable = 0

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
        self, request_id: str, ts: float, version: str, value: Any, where: Position
    ) -> None:
        """``value``: the one value of the prediction's outputs (what
        :func:`~conveyor.monitor.feedback.single` says of them)."""
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
        self._answers[request_id] = (*answers, (version, where, ts, value))
        if labelled:
            self._count(request_id, 1)

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
        if any(received - ts > self.late_after for _, _, ts, _ in answers):
            self._late += sign
        for version, _, _, output in answers:
            if output is MANY:
                self._uncomparable += sign
                continue
            tally = self._counts.setdefault(version, [0, 0])
            tally[0] += sign
            tally[1] += sign * same(value, output)


class Joiner:
    """One model's prediction log (the folder ``predlog.model_folder`` names) joined with a
    feedback folder, from ``since`` on. Each :meth:`update` reads what was written to either
    since the last one (only complete lines) and returns the join of everything so far.
    :attr:`parsed` counts the lines it has read. Not thread-safe: one caller updates it."""

    def __init__(
        self,
        predictions: Path,
        feedback: Path,
        *,
        since: float | None = None,
        late_after: float = LATE_AFTER,
    ) -> None:
        self.predictions = predictions
        self.feedback = feedback
        self.parsed = 0
        self._running = Running(since=since, late_after=late_after)
        self._logged = segments.Tail(predictions)
        self._labelled = segments.Tail(feedback)
        self._logged_lines: dict[str, int] = {}
        self._labelled_lines: dict[str, int] = {}

    def update(self) -> Joined:
        running = self._running
        labelled = self._new(self._labelled, self._labelled_lines, _label, cannot_read)
        for where, (request_id, ts, value) in labelled:
            running.label(request_id, ts, value, where)
        for where, answer in self._new(self._logged, self._logged_lines, _answer, _unlogged):
            running.prediction(*answer, where)
        return running.result()

    def _new(
        self,
        tail: segments.Tail,
        lines: dict[str, int],
        take: Callable[[Any], _T],
        unreadable: Callable[[Path, OSError], FeedbackError],
    ) -> Iterator[tuple[Position, _T]]:
        """What ``take`` keeps of each record added to ``tail``'s segments, where it was read
        (``lines`` counts the records taken of each segment). A chunk is taken whole before any
        of it counts: one with a bad line raises, and raises again next time, never half
        counted."""
        try:
            for name, offset, data in tail.read():
                try:
                    taken = [take(one) for one in self._parsed(data)]
                except (ValueError, KeyError, TypeError) as exc:
                    raise FeedbackError(
                        f"{tail.folder / name}: a line after byte {offset} is not a record "
                        f"of its kind ({type(exc).__name__}: {exc})",
                        hint="move the file out of the folder if it does not belong there",
                    ) from exc
                first = lines.get(name, 0)
                lines[name] = first + len(taken)
                for i, one in enumerate(taken):
                    yield (name, first + i), one
        except OSError as exc:
            raise unreadable(Path(exc.filename or tail.folder), exc) from exc

    def _parsed(self, data: bytes) -> Iterator[Any]:
        for one in segments.records(data):
            self.parsed += 1
            yield one


def _label(one: Any) -> tuple[str, float, Any]:
    return one["id"], one["ts"], one["label"]


def _answer(one: Any) -> tuple[str, float, str, Any]:
    """A logged prediction without its inputs, its outputs down to their one value."""
    return one["id"], one["ts"], str(one["version"]), single(one["outputs"])


def _unlogged(path: Path, exc: OSError) -> FeedbackError:
    return FeedbackError(
        f"cannot read the prediction log in {path}: {exc.strerror or exc}",
        hint="check that the prediction log's folder (conveyor serve --log-dir) is a folder "
        "this user can read",
    )
