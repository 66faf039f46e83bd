"""What a server following an environment exports of its rollouts: the events in the metadata
store counted by kind, the checks of the last analysis, the step and the failures in a row.

:class:`Activity` keeps the counts and the last analysis. It reads the store only when the
record's revision moves (every decision writes the record with its events), and then only the
events added since the last read, in plain SQL with no SQLAlchemy
(:func:`conveyor.registry.stored.deployment_activity`). :meth:`Activity.state` gives the plain
value :class:`~conveyor.serve.metrics.Metrics` renders.

The store is shared (a newer conveyor, a hand edit): only the kinds of
:data:`~conveyor.registry.deployment.EVENT_KINDS`, the metrics of
:data:`~conveyor.registry.deployment.CHECK_METRICS` and finite numbers become series, so that
the label sets stay bounded whatever a row holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.registry.deployment import CHECK_METRICS, EVENT_KINDS, VERDICTS, Deployment

if TYPE_CHECKING:
    from conveyor.tracking.events import Event

__all__ = ["Activity", "Check", "ReadActivity", "Rollout", "checks", "stored_activity"]

# (root, env, after) -> (new events by kind, the highest id read, the latest analysis or None)
ReadActivity = Callable[[Path, str, int], "tuple[dict[str, int], int, Event | None]"]


def stored_activity(root: Path, env: str, after: int) -> tuple[dict[str, int], int, Event | None]:
    from conveyor.registry.stored import deployment_activity

    return deployment_activity(root, env, after=after)


@dataclass(frozen=True)
class Check:
    """One check of an analysis: each side's value (None: not measured), its limit, each
    side's samples."""

    metric: str
    verdict: str
    stable: float | None
    candidate: float | None
    threshold: float | None
    samples: tuple[int, int] | None  # (stable, candidate)


@dataclass(frozen=True)
class Rollout:
    """An environment's rollout as exported: ``step`` and ``failures`` are the record's (None
    before its first deploy); ``analysed`` the time of the last analysis (None: none yet)."""

    env: str
    events: tuple[tuple[str, int], ...]  # (kind, count) for every kind, in EVENT_KINDS' order
    step: int | None = None
    failures: int | None = None
    analysed: float | None = None
    checks: tuple[Check, ...] = ()


def checks(data: Mapping[str, Any]) -> tuple[Check, ...]:
    """The checks of a ``rollout.analysis`` event's data that can be exported: a known metric
    and verdict, once per metric (the first)."""
    found: dict[str, Check] = {}
    items = data.get("checks")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        metric, verdict = item.get("metric"), item.get("verdict")
        if metric not in CHECK_METRICS or verdict not in VERDICTS or metric in found:
            continue
        samples = item.get("samples")
        pair = None
        if isinstance(samples, list) and len(samples) == 2:
            counts = [_number(n) for n in samples]
            if counts[0] is not None and counts[1] is not None:
                pair = (int(counts[0]), int(counts[1]))
        found[metric] = Check(
            metric,
            verdict,
            _number(item.get("stable")),
            _number(item.get("candidate")),
            _number(item.get("threshold")),
            pair,
        )
    return tuple(found.values())


class Activity:
    """One environment's events, counted as the store holds them, and its last analysis.

    :meth:`update` blocks (run it in a thread); it replaces its values whole, so that
    :meth:`state` on another thread sees the counts before or after a read, never half.
    """

    def __init__(self, root: Path, env: str, read: ReadActivity = stored_activity) -> None:
        self.root = root
        self.env = env
        self.read = read
        self.counts: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.analysis: Event | None = None
        self.revision: int | None = None  # of the record when the events were last read
        self.after = 0  # the highest event id counted

    def update(self, d: Deployment | None) -> None:
        """Count the events added since the last read, when record ``d`` moved since."""
        if d is None or d.revision == self.revision:
            return
        if self.revision is not None and d.revision < self.revision:
            # A revision that went down is a store made anew: its events count from none.
            self.counts, self.after, self.analysis = dict.fromkeys(EVENT_KINDS, 0), 0, None
        added, last, newest = self.read(self.root, self.env, self.after)
        counts = self.counts
        self.counts = {kind: counts.get(kind, 0) + added.get(kind, 0) for kind in EVENT_KINDS}
        self.after = last
        if newest is not None:
            self.analysis = newest
        self.revision = d.revision

    def state(self, d: Deployment | None) -> Rollout:
        counts, analysis = self.counts, self.analysis
        events = tuple((kind, counts.get(kind, 0)) for kind in EVENT_KINDS)
        if d is None:
            return Rollout(self.env, events)
        if analysis is None:
            return Rollout(self.env, events, d.step, d.failures)
        found = checks(analysis.data)
        return Rollout(self.env, events, d.step, d.failures, analysis.time, found)


def _number(value: object) -> float | None:
    """A finite number from an event's JSON, else None (null, a string, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
