"""Windows of live traffic, each summarised as a mergeable profile, and what is checked on them.

The prediction log is cut into windows per version: by time (``every``: aligned to the epoch, a
window closes once the clock is ``GRACE`` seconds past its end, so that records still in the
server's write buffer make it in) or by count (``rows``: a window closes at its last row). Rows
are folded into the open window's profile as they are read (:class:`Windows`), so a window is
never read twice and its rows are not kept; a closed window keeps its profile, from which
:func:`evaluate` computes its checks against the reference's profile.

    windows = Windows(spec.window)
    windows.add(version, ts, frame_rows, predictions, confidences)   # fold rows in
    closed = windows.close_due(now)                                  # windows now complete
    checks = evaluate(spec, reference, closed[0], quality=..., ...)  # the table a user sees

Pure: profiles and plain values in, plain values out; the caller reads the log, keeps the state
on disk (:meth:`Windows.to_json`) and keeps the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conveyor.monitor import profiles
from conveyor.monitor.config import Monitor
from conveyor.monitor.config import Window as WindowSpec
from conveyor.monitor.profiles import Bins, Profile
from conveyor.stats.drift import ColumnDrift

GRACE = 5.0  # seconds past a time window's end before it closes (the log is written each second)
PREDICTION = "prediction"  # the prediction column's name in the predictions' profile
VERDICTS = ("ok", "alert", "inconclusive", "info")


@dataclass
class Window:
    """One version's window: where it starts, what it holds so far (or in all, once closed)."""

    version: str
    number: int  # time windows: its start // every; row windows: its index, from 0
    first: float  # the time of its first row and of its last
    last: float
    rows: int = 0
    features: Profile | None = None
    predictions: Profile | None = None
    confidence: float = 0.0  # the sum over scored rows of the top class probability
    scored: int = 0  # rows scored for the label-free estimate
    violations: int = 0  # rows breaking the schema
    closed: bool = False
    reference: str = ""  # the digest of the reference its profiles are on

    @property
    def key(self) -> str:
        """Names the window everywhere: files, alerts, the report (``3:1765105200``)."""
        return f"{self.version}:{self.number}"

    def start(self, spec: WindowSpec) -> float:
        return self.number * spec.every if spec.every else self.first

    def end(self, spec: WindowSpec) -> float:
        return (self.number + 1) * spec.every if spec.every else self.last

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "number": self.number,
            "first": self.first,
            "last": self.last,
            "rows": self.rows,
            "features": self.features.to_json() if self.features else None,
            "predictions": self.predictions.to_json() if self.predictions else None,
            "confidence": self.confidence,
            "scored": self.scored,
            "violations": self.violations,
            "closed": self.closed,
            "reference": self.reference,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Window:
        features, predictions = data.get("features"), data.get("predictions")
        return cls(
            version=str(data["version"]),
            number=int(data["number"]),
            first=float(data["first"]),
            last=float(data["last"]),
            rows=int(data["rows"]),
            features=Profile.from_json(features) if features else None,
            predictions=Profile.from_json(predictions) if predictions else None,
            confidence=float(data.get("confidence", 0.0)),
            scored=int(data.get("scored", 0)),
            violations=int(data.get("violations", 0)),
            closed=bool(data.get("closed", False)),
            reference=str(data.get("reference", "")),
        )


@dataclass
class Batch:
    """Rows of one version read together: their times, features, predictions and, for the
    estimate, each row's top class probability (None: not scored)."""

    version: str
    times: Sequence[float]
    features: Mapping[str, Sequence[Any]]
    predictions: Sequence[Any] | None = None
    confidence: Sequence[float] | None = None
    violations: Sequence[bool] | None = None

    def part(self, start: int, stop: int) -> Batch:
        def cut(values: Any) -> Any:
            return None if values is None else values[start:stop]

        return Batch(
            self.version,
            self.times[start:stop],
            {name: values[start:stop] for name, values in self.features.items()},
            cut(self.predictions),
            cut(self.confidence),
            cut(self.violations),
        )


@dataclass
class Windows:
    """The open windows of every version, folded as rows come; :meth:`close_due` hands over
    those complete. Row windows count each version's rows from its first."""

    spec: WindowSpec
    bins: Bins
    label_bins: Bins | None = None  # the predictions' bins (the reference's label)
    open: dict[str, Window] = field(default_factory=dict)  # version -> its open window
    counted: dict[str, int] = field(default_factory=dict)  # version -> rows seen (row windows)
    reference: str = ""  # the digest of the reference ``bins`` come from

    def add(self, batch: Batch) -> list[Window]:
        """Fold ``batch`` in; the windows it completed (row windows fill up as rows come)."""
        done: list[Window] = []
        if not batch.times:
            return done
        if self.spec.rows:
            start = 0
            while start < len(batch.times):
                window = self._window(batch.version, batch.times[start])
                room = self.spec.rows - window.rows
                stop = min(len(batch.times), start + room)
                self._fold(window, batch.part(start, stop))
                self.counted[batch.version] = self.counted.get(batch.version, 0) + stop - start
                if window.rows >= self.spec.rows:
                    window.closed = True
                    done.append(self.open.pop(batch.version))
                start = stop
            return done
        every = self.spec.every or 3600.0
        numbers = [math.floor(t / every) for t in batch.times]
        start = 0
        for i in range(1, len(numbers) + 1):
            if i == len(numbers) or numbers[i] != numbers[start]:
                current = self.open.get(batch.version)
                if current is not None and current.number != numbers[start]:
                    if numbers[start] < current.number:  # a late row of a closed window: dropped
                        start = i
                        continue
                    current.closed = True
                    done.append(self.open.pop(batch.version))
                window = self._window(batch.version, batch.times[start], numbers[start])
                self._fold(window, batch.part(start, i))
                start = i
        return done

    def close_due(self, now: float) -> list[Window]:
        """Time windows whose end is ``GRACE`` seconds past: complete, to be evaluated."""
        if not self.spec.every:
            return []
        due = [v for v, w in self.open.items() if now >= (w.number + 1) * self.spec.every + GRACE]
        closed = []
        for version in due:
            window = self.open.pop(version)
            window.closed = True
            closed.append(window)
        return closed

    def _window(self, version: str, ts: float, number: int | None = None) -> Window:
        window = self.open.get(version)
        if window is None:
            if number is None:
                number = self.counted.get(version, 0) // (self.spec.rows or 1)
            window = self.open[version] = Window(version, number, ts, ts, reference=self.reference)
        return window

    def _fold(self, window: Window, batch: Batch) -> None:
        n = len(batch.times)
        if not n:
            return
        window.first = min(window.first, batch.times[0])
        window.last = max(window.last, batch.times[-1])
        window.rows += n
        made = profiles.profile(dict(batch.features), self.bins)
        window.features = (
            made if window.features is None else profiles.merge([window.features, made])
        )
        if batch.predictions is not None and self.label_bins is not None:
            said = profiles.profile({PREDICTION: list(batch.predictions)}, self.label_bins)
            window.predictions = (
                said if window.predictions is None else profiles.merge([window.predictions, said])
            )
        if batch.confidence is not None:
            scores = [c for c in batch.confidence if c is not None and math.isfinite(c)]
            window.confidence += float(sum(scores))
            window.scored += len(scores)
        if batch.violations is not None:
            window.violations += sum(1 for v in batch.violations if v)

    def to_json(self) -> dict[str, Any]:
        return {
            "open": {v: w.to_json() for v, w in self.open.items()},
            "counted": dict(self.counted),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.open = {str(v): Window.from_json(w) for v, w in data.get("open", {}).items()}
        self.counted = {str(v): int(n) for v, n in data.get("counted", {}).items()}


# ------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Check:
    """One row of ``conveyor monitor status``: a metric's value on a window, its threshold,
    the verdict (``ok``, ``alert``, ``inconclusive``, ``info``) and why."""

    name: str
    value: float | None
    threshold: str = ""
    verdict: str = "info"
    window: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "verdict": self.verdict,
            "window": self.window,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Quality:
    """Labels joined with one window's predictions: how many, how many right."""

    labelled: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def evaluate(
    spec: Monitor,
    bins: Bins,
    reference: Profile,
    window: Window,
    *,
    label_bins: Bins | None = None,
    label_reference: Profile | None = None,
) -> list[Check]:
    """The checks of one closed window against the reference (quality comes separately,
    as labels arrive: :func:`quality_check`)."""
    from conveyor.stats import binned

    key = window.key
    checks = [
        Check(
            "rows",
            float(window.rows),
            f">= {spec.window.min_rows}",
            "ok" if window.rows >= spec.window.min_rows else "inconclusive",
            key,
        )
    ]
    if window.features is None or window.rows < spec.window.min_rows:
        return checks
    found = binned.dataset(
        bins, reference, window.features, drift_share=spec.drift.share,
        method=spec.drift.method, threshold=spec.drift.threshold,
    )  # fmt: skip
    conclusive = [d for d in found.columns if d.verdict in ("drifted", "stable")]
    drifted = [d for d in conclusive if d.drifted]
    share = len(drifted) / len(conclusive) if conclusive else None
    checks.append(
        Check(
            "drift.share",
            share,
            f"< {spec.drift.share:g}",
            "inconclusive" if share is None else ("alert" if share >= spec.drift.share else "ok"),
            key,
            ", ".join(d.column for d in drifted),
        )
    )
    checks.append(Check("drift.count", float(len(drifted)), "", "info", key))
    for d in found.columns:
        score, threshold = score_of(d, found.methods[d.column], spec.drift.threshold)
        checks.append(
            Check(f"drift.{d.column}", score, threshold, _VERDICT.get(d.verdict, "inconclusive"),
                  key, "; ".join(d.reasons))
        )  # fmt: skip
    totals = _missing(window.features)
    if totals is not None:
        checks.append(Check("missing.share", totals, "", "info", key))
    if spec.schema:
        share_bad = window.violations / window.rows if window.rows else None
        checks.append(
            Check(
                "violations.share",
                share_bad,
                "== 0",
                "ok" if not window.violations else "alert",
                key,
                f"{window.violations} rows break {spec.schema}",
            )
        )
    if window.predictions is not None and label_bins is not None and label_reference is not None:
        (said,) = binned.drift(label_bins, label_reference, window.predictions, method="psi")
        score, threshold = score_of(said, "psi", None)
        verdict = _VERDICT.get(said.verdict, "inconclusive")
        checks.append(Check("prediction_drift", score, threshold, verdict, key))
    if spec.estimate and window.scored:
        estimate = window.confidence / window.scored
        limit = spec.quality.min if spec.quality else None
        checks.append(
            Check(
                f"estimate.{spec.quality.metric if spec.quality else 'accuracy'}",
                estimate,
                f">= {limit:g}" if limit is not None else "",
                "info" if limit is None else ("ok" if estimate >= limit else "alert"),
                key,
                f"from the model's confidence on {window.scored} rows, no labels",
            )
        )
    return checks


_VERDICT = {"drifted": "alert", "stable": "ok"}
# What a drift method's score is: its distance, or for a test the effect size it also needs.
_SCORES = {
    "wasserstein": "wasserstein", "jensenshannon": "js_distance", "psi": "psi",
    "ks": "ks_statistic", "chisquare": "js_distance", "z": "js_distance",
}  # fmt: skip


def score_of(column: ColumnDrift, method: str, threshold: float | None) -> tuple[float | None, str]:
    """A feature's drift score (the method's distance, or a test's effect size) and how it is
    judged, for a table: ``wasserstein >= 0.1, p < 0.05``, ``ks p < 0.05``."""
    from conveyor.stats import binned

    value = column.statistics.get(_SCORES.get(method, "psi"))
    if method in binned.TESTS:
        return value, f"{method} p < {threshold if threshold is not None else 0.05:g}"
    limit = threshold if threshold is not None else binned.DISTANCES.get(method, 0.1)
    return value, f"{method} >= {limit:.3g}, p < 0.05"  # a distance must also be significant


def quality_check(spec: Monitor, window: str, tally: Quality, *, part: str = "") -> Check:
    """The online quality of a window (or of one slice of it: ``part``, ``size=small``) from
    the labels joined so far."""
    assert spec.quality is not None
    q = spec.quality
    value = tally.accuracy
    if value is not None and q.metric == "error_rate":
        value = 1 - value
    enough = tally.labelled >= q.min_labels
    if q.min is None or not enough:
        verdict = "inconclusive" if not enough else "info"
    else:
        better = value is not None and (
            value >= q.min if q.metric == "accuracy" else value <= q.min
        )
        verdict = "ok" if better else "alert"
    threshold = (
        "" if q.min is None else (f">= {q.min:g}" if q.metric == "accuracy" else f"<= {q.min:g}")
    )
    return Check(
        f"quality.{q.metric}" + (f"[{part}]" if part else ""),
        value if enough else None,
        threshold,
        verdict,
        window,
        f"{tally.labelled} labels (at least {q.min_labels})",
    )


def _missing(profile: Profile) -> float | None:
    values = nulls = 0
    for summary in profile.features.values():
        values += summary.count + summary.nulls + summary.invalid
        nulls += summary.nulls + summary.invalid
    return nulls / values if values else None


def observations(checks: Iterable[Check]) -> dict[str, tuple[float | None, str]]:
    """Metric name -> (value, window) of checks, as alert rules observe them."""
    return {c.name: (c.value, c.window) for c in checks}


def merged(windows: Iterable[Window]) -> Window | None:
    """Windows of one version as one (the report's whole period)."""
    items = list(windows)
    if not items:
        return None
    profiles_ = [w.features for w in items if w.features is not None]
    said = [w.predictions for w in items if w.predictions is not None]
    first = items[0]
    return replace(
        first,
        first=min(w.first for w in items),
        last=max(w.last for w in items),
        rows=sum(w.rows for w in items),
        features=profiles.merge(profiles_) if profiles_ else None,
        predictions=profiles.merge(said) if said else None,
        confidence=sum(w.confidence for w in items),
        scored=sum(w.scored for w in items),
        violations=sum(w.violations for w in items),
    )
