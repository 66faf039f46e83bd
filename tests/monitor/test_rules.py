"""Alert rules: the when/for grammar and the firing/resolving state machine, on plain values."""

from __future__ import annotations

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.monitor.rules import (
    AlertState,
    Condition,
    Hold,
    Observation,
    Rule,
    parse_for,
    parse_when,
    step,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("drift.share > 0.5", Condition("drift.share", ">", 0.5)),
        ("quality.accuracy<0.9", Condition("quality.accuracy", "<", 0.9)),
        ("  error_rate >= 5e-2 ", Condition("error_rate", ">=", 0.05)),
        ("drift.age != 0", Condition("drift.age", "!=", 0.0)),
        ("missing.share == 1", Condition("missing.share", "==", 1.0)),
    ],
)
def test_when_parses(text: str, want: Condition) -> None:
    assert parse_when(text, ("age",)) == want


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("drift.share >", "is not a condition"),
        ("drift.shar > 0.5", "no feature 'shar'"),
        ("quality.acuracy < 0.9", "labels measure"),
        ("drift.share > nan", "not a finite number"),
        ("drift.share > 1e999", "not a finite number"),
        ("drift.share > x", "not a number"),
        ("errors > 1", "no metric 'errors'"),
    ],
)
def test_when_refuses_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_when(text, ("age",))


def test_unknown_metric_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_when("error_rat > 0.1")
    assert caught.value.hint == "did you mean 'error_rate'?"


@pytest.mark.parametrize(
    ("text", "want"),
    [("2 windows", Hold(windows=2)), ("1 window", Hold(windows=1)), ("5m", Hold(seconds=300)),
     (30, Hold(seconds=30)), ("0s", Hold())],
)  # fmt: skip
def test_for_parses(text: object, want: Hold) -> None:
    assert parse_for(text) == want


@pytest.mark.parametrize("text", ["0 windows", "two windows", "-1s", True])
def test_for_refuses(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_for(text)


DRIFT = Rule("drift", Condition("drift.share", ">", 0.5), Hold(windows=2))


def run(rule: Rule, seen: list[tuple[float | None, str | None, float]]) -> list[tuple[str, float]]:
    """Feed observations (value, window, now); the transitions as (to, at)."""
    state = AlertState()
    out = []
    for value, window, now in seen:
        state, moved = step(rule, state, Observation(value, window), now)
        if moved is not None:
            out.append((moved.to, moved.at))
    return out


def test_fires_after_n_windows_in_a_row_and_resolves_once() -> None:
    seen = [(0.6, "w1", 1), (0.3, "w2", 2), (0.6, "w3", 3), (0.7, "w4", 4), (0.8, "w5", 5),
            (0.2, "w6", 6), (0.1, "w7", 7)]  # fmt: skip
    assert run(DRIFT, seen) == [("firing", 4), ("resolved", 6)]


def test_a_window_seen_again_counts_once() -> None:
    seen = [(0.6, "w1", 1), (0.7, "w1", 2), (0.9, "w1", 3)]
    assert run(DRIFT, seen) == []
    assert run(DRIFT, [*seen, (0.6, "w2", 4)]) == [("firing", 4)]


def test_no_value_changes_nothing() -> None:
    seen = [(0.6, "w1", 1), (None, "w2", 2), (0.6, "w3", 3), (None, "w4", 4), (None, "w5", 5)]
    assert run(DRIFT, seen) == [("firing", 3)]


def test_a_window_whose_later_value_breaks_the_condition_resets_the_count() -> None:
    quality = Rule("q", Condition("quality.accuracy", "<", 0.9), Hold(windows=2))
    seen = [(0.8, "w1", 1), (0.95, "w1", 2), (0.8, "w2", 3)]  # w1 recovered as labels came
    assert run(quality, seen) == []
    assert run(quality, [*seen, (0.8, "w3", 4)]) == [("firing", 4)]


def test_duration_holds_without_a_break() -> None:
    errors = Rule("errors", Condition("error_rate", ">", 0.05), Hold(seconds=10))
    seen = [(0.1, None, 0), (0.1, None, 5), (0.0, None, 8), (0.1, None, 9), (0.1, None, 18),
            (0.1, None, 19), (0.1, None, 30), (0.0, None, 31)]  # fmt: skip
    assert run(errors, seen) == [("firing", 19), ("resolved", 31)]


def test_zero_hold_fires_at_once() -> None:
    rule = Rule("now", Condition("rows", "<", 10))
    assert run(rule, [(5, "w1", 1)]) == [("firing", 1)]
