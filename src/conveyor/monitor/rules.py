"""Alert rules: what a ``when:`` says, and when an alert fires and resolves.

    parse_when("drift.share > 0.5")    -> Condition("drift.share", ">", 0.5)
    parse_for("2 windows")             -> Hold(windows=2)          "5m" -> Hold(seconds=300)
    step(rule, state, observation, now) -> (state, transition or None)

A rule's metric is one of :data:`METRICS` (``drift.<feature>`` names one feature). Monitoring
observes each metric either once per closed window (drift, missing values, quality...) or on
every tick (the server's error rate and latency): an observation carries the window it came
from, or none.

An alert is *inactive*, *pending* (its condition holds, not yet long enough) or *firing*. It
fires once its condition held for ``for`` (that many distinct windows in a row, or that long
without a break) and resolves at the first observation where it no longer holds: a transition
is reported once per change, so a receiver hears of a firing alert once, not at every tick. An
observation without a value (too few rows or labels to say) changes nothing: the alert neither
fires on missing data nor resolves on it.

Pure: plain values in, plain values out; the monitor keeps the states and the clock.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from conveyor.foundation.durations import duration
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

# What a rule may watch. ``drift.<feature>`` and ``missing.<feature>`` name a feature; the rest
# are whole-window or whole-server values.
WINDOW_METRICS = (
    "drift.share",  # the share of features that drifted (0 to 1)
    "drift.count",  # how many features drifted
    "prediction_drift",  # the drift score of the predictions against the reference's labels
    "missing.share",  # the share of values missing, over every feature
    "violations.share",  # the share of rows breaking the data gate's schema
    "rows",  # rows in the window
)
QUALITY_PREFIXES = ("quality.", "estimate.")  # quality.accuracy, estimate.accuracy
FEATURE_PREFIXES = ("drift.", "missing.")  # drift.age: that feature's drift score
TICK_METRICS = ("error_rate", "latency_p50", "latency_p99", "requests_per_second")
METRICS = (*WINDOW_METRICS, *TICK_METRICS)
QUALITY_METRICS = ("accuracy", "error_rate")  # what labels measure (error_rate: 1 - accuracy)
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("retrain", "rollback")

_WHEN = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")
_FOR_WINDOWS = re.compile(r"\s*(\d+)\s*windows?\s*")
WHEN_HINT = 'a metric, a comparison and a number, like "drift.share > 0.5"'


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return OPS[self.op](observed, self.value)

    @property
    def per_window(self) -> bool:
        """Observed once per closed window (else on every tick)."""
        return self.metric not in TICK_METRICS

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Hold:
    """How long a condition must hold before its alert fires: windows in a row, or seconds."""

    windows: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.windows:
            return f"{self.windows} window{'s' * (self.windows != 1)}"
        return f"{self.seconds:g}s"


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    hold: Hold = Hold()
    severity: str = "warning"
    notify: tuple[str, ...] = ()
    action: str | None = None


def parse_when(text: object, features: tuple[str, ...] | None = None) -> Condition:
    """``"drift.share > 0.5"`` -> Condition; a ConfigError naming what is wrong. ``features``
    (when known) are the names ``drift.<feature>`` may take."""
    if not isinstance(text, str):
        raise ConfigError(f"when: {text!r} is not a condition", hint=WHEN_HINT)
    found = _WHEN.fullmatch(text)
    if found is None:
        raise ConfigError(f"when: {text!r} is not a condition", hint=WHEN_HINT)
    metric, op, number = found.groups()
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(f"when: {number!r} is not a number", hint=WHEN_HINT) from None
    if not math.isfinite(value):
        raise ConfigError(f"when: {number!r} is not a finite number", hint=WHEN_HINT)
    check_metric(metric, features)
    return Condition(metric, op, value)


def check_metric(metric: str, features: tuple[str, ...] | None = None) -> None:
    if metric in METRICS:
        return
    head, _, tail = metric.partition(".")
    if f"{head}." in QUALITY_PREFIXES:
        if tail in QUALITY_METRICS:
            return
        raise ConfigError(
            f"when: {metric!r}: labels measure {', '.join(QUALITY_METRICS)}",
            hint=did_you_mean(tail, QUALITY_METRICS) or f"like {head}.accuracy",
        )
    if f"{head}." in FEATURE_PREFIXES and tail:
        if features is None or tail in features:
            return
        raise ConfigError(
            f"when: {metric!r}: no feature {tail!r}",
            hint=did_you_mean(tail, features) or f"features: {', '.join(features)}",
        )
    known = (*METRICS, "quality.accuracy", "estimate.accuracy", "drift.<feature>")
    raise ConfigError(
        f"when: no metric {metric!r}",
        hint=did_you_mean(metric, known) or f"metrics: {', '.join(known)}",
    )


def parse_for(text: object) -> Hold:
    """``"2 windows"`` -> Hold(windows=2); ``"5m"``, ``30``, ``0`` -> Hold(seconds=...)."""
    if isinstance(text, str):
        found = _FOR_WINDOWS.fullmatch(text)
        if found is not None:
            windows = int(found.group(1))
            if windows < 1:
                raise ConfigError(f"for: {text!r}: at least 1 window")
            return Hold(windows=windows)
    try:
        return Hold(seconds=duration(text))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(
            f"for: {text!r} is neither a number of windows nor a duration",
            hint='like "2 windows", "5m" or "30s"',
        ) from exc


# ------------------------------------------------------------------------------- evaluation


Status = Literal["inactive", "pending", "firing"]


@dataclass(frozen=True)
class AlertState:
    status: Status = "inactive"
    since: float | None = None  # when the condition began to hold (pending or firing)
    windows: int = 0  # distinct windows in a row where it held
    last_window: str | None = None  # the last window counted: a window counts once
    value: float | None = None  # the last value observed
    fired_at: float | None = None


@dataclass(frozen=True)
class Observation:
    value: float | None
    window: str | None = None  # the window it came from (None: a tick's value)


@dataclass(frozen=True)
class Transition:
    rule: str
    to: Literal["firing", "resolved"]
    value: float
    at: float
    window: str | None
    since: float  # when the condition began to hold


def step(
    rule: Rule, state: AlertState, seen: Observation, now: float
) -> tuple[AlertState, Transition | None]:
    """The alert's state after one observation, and the transition it made, if any. A window
    observed again (its quality as more labels arrive) can fire or resolve the alert, but counts
    once towards ``for: N windows``."""
    if seen.value is None:
        return state, None  # too little to say: no change
    value = seen.value
    if not rule.condition.holds(value):
        if state.status == "firing":
            since = state.since if state.since is not None else now
            return AlertState(value=value), Transition(
                rule.name, "resolved", value, now, seen.window, since
            )
        return AlertState(value=value), None
    since = state.since if state.status != "inactive" and state.since is not None else now
    new_window = seen.window is not None and seen.window != state.last_window
    held = replace(
        state,
        since=since,
        windows=state.windows + new_window,
        last_window=seen.window if new_window else state.last_window,
        value=value,
    )
    if state.status == "firing":
        return held, None
    enough = (
        held.windows >= rule.hold.windows if rule.hold.windows else now - since >= rule.hold.seconds
    )
    if not enough:
        return replace(held, status="pending"), None
    fired = Transition(rule.name, "firing", value, now, seen.window, since)
    return replace(held, status="firing", fired_at=now), fired
