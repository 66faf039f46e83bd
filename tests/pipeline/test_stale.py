"""Deciding what is stale, over plain values: no disk, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.pipeline.lock import Entry
from conveyor.pipeline.stage import Meta, Out, Stage
from conveyor.pipeline.stale import CHECKOUT, RUN, SKIP, Decision, Observed, decide, propagate
from conveyor.pipeline.stale import reasons as stale_reasons

A = Meta("a" * 64, 10, 1)
B = Meta("b" * 64, 20, 1)
TREE = Meta("c" * 64 + ".tree", 30, 3)
P = "params.yaml"


def stage(**kw: Any) -> Stage:
    base: dict[str, Any] = {
        "name": "train",
        "cmd": ("python train.py",),
        "deps": ("data.csv",),
        "params": ((P, "train.lr"),),
        "outs": (Out("model.pkl"),),
    }
    base.update(kw)
    return Stage(**base)


def entry(**kw: Any) -> Entry:
    base: dict[str, Any] = {
        "cmd": ("python train.py",),
        "deps": {"data.csv": A},
        "params": {P: {"train.lr": 0.1}},
        "outs": {"model.pkl": B},
    }
    base.update(kw)
    return Entry(**base)


def now(
    deps: dict[str, Meta | None] | None = None,
    outs: dict[str, Meta | None] | None = None,
    values: dict[tuple[str, str], Any] | None = None,
) -> Observed:
    return Observed(
        {"data.csv": A} if deps is None else deps,
        {"model.pkl": B} if outs is None else outs,
        {(P, "train.lr"): 0.1} if values is None else values,
    )


def reasons(s: Stage, e: Entry | None, n: Observed) -> list[str]:
    return stale_reasons(s, e, n)


def cached(meta: Meta) -> bool:
    return True


def not_cached(meta: Meta) -> bool:
    return False


# reasons


def test_up_to_date_has_no_reasons() -> None:
    assert reasons(stage(), entry(), now()) == []
    assert decide(stage(), entry(), now(), cached) == Decision(SKIP, ())


def test_never_run() -> None:
    assert reasons(stage(), None, now()) == ["never run"]
    assert decide(stage(), None, now(), cached) == Decision(RUN, ("never run",))


def test_command_changed() -> None:
    assert reasons(stage(cmd=("python train.py --fast",)), entry(), now()) == ["command changed"]


def test_command_split_into_a_list_is_a_change() -> None:
    s = stage(cmd=("python prep.py", "python train.py"))
    assert reasons(s, entry(), now()) == ["command changed"]


def test_dep_modified() -> None:
    assert reasons(stage(), entry(), now(deps={"data.csv": TREE})) == ["dep data.csv modified"]


def test_dep_same_hash_other_size_is_not_a_change() -> None:
    # The hash is what the lock compares; size and file count only describe it.
    moved = Meta(A.hash, 999, 7)
    assert reasons(stage(), entry(), now(deps={"data.csv": moved})) == []


def test_dep_missing() -> None:
    assert reasons(stage(), entry(), now(deps={"data.csv": None})) == ["dep data.csv missing"]
    assert reasons(stage(), entry(), now(deps={})) == ["dep data.csv missing"]


def test_dep_new_and_removed() -> None:
    s = stage(deps=("data.csv", "extra.csv"))
    n = now(deps={"data.csv": A, "extra.csv": B})
    assert reasons(s, entry(), n) == ["dep extra.csv is new"]
    assert reasons(stage(deps=()), entry(), now(deps={})) == ["dep data.csv removed"]


def test_param_changed_names_old_and_new_value() -> None:
    n = now(values={(P, "train.lr"): 0.2})
    assert reasons(stage(), entry(), n) == ["param train.lr changed 0.1 -> 0.2"]


def test_section_param_names_each_changed_leaf() -> None:
    s = stage(params=((P, "train"),))
    e = entry(params={P: {"train": {"C": 1.0, "kernel": "rbf", "lr": 0.1}}})
    n = now(values={(P, "train"): {"C": 0.5, "kernel": "rbf", "lr": 0.1}})
    assert reasons(s, e, n) == ["param train.C changed 1.0 -> 0.5"]


def test_section_param_names_added_and_dropped_leaves() -> None:
    s = stage(params=((P, "train"),))
    e = entry(params={P: {"train": {"old": 1}}})
    n = now(values={(P, "train"): {"new": 2}})
    assert reasons(s, e, n) == [
        "param train.old changed 1 -> (none)",
        "param train.new changed (none) -> 2",
    ]


def test_param_new_and_removed() -> None:
    s = stage(params=((P, "train.lr"), (P, "train.C")))
    n = now(values={(P, "train.lr"): 0.1, (P, "train.C"): 1.0})
    assert reasons(s, entry(), n) == ["param train.C is new"]
    assert reasons(stage(params=()), entry(), now(values={})) == ["param train.lr removed"]


def test_param_in_another_file_is_named_with_its_file() -> None:
    s = stage(params=(("other.yaml", "key"),))
    e = entry(params={"other.yaml": {"key": "a"}})
    assert reasons(s, e, now(values={("other.yaml", "key"): "b"})) == [
        "param other.yaml:key changed a -> b"
    ]
    assert reasons(stage(params=()), e, now(values={})) == ["param other.yaml:key removed"]
    assert reasons(s, entry(params={}), now(values={("other.yaml", "key"): "a"})) == [
        "param other.yaml:key is new"
    ]


def test_same_key_in_two_files_is_two_params() -> None:
    s = stage(params=((P, "seed"), ("other.yaml", "seed")))
    e = entry(params={P: {"seed": 1}, "other.yaml": {"seed": 1}})
    n = now(values={(P, "seed"): 1, ("other.yaml", "seed"): 2})
    assert reasons(s, e, n) == ["param other.yaml:seed changed 1 -> 2"]


@pytest.mark.parametrize(
    ("old", "new"),
    [(1, 1.0), (1.0, 1), (True, True), (None, None), ([1, 2], [1.0, 2.0]), ({"a": 1}, {"a": 1.0})],
)
def test_equal_values_are_not_a_change(old: Any, new: Any) -> None:
    e = entry(params={P: {"train.lr": old}})
    assert reasons(stage(), e, now(values={(P, "train.lr"): new})) == []


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        ("1", 1, '"1" -> 1'),
        (1, "1", '1 -> "1"'),
        (True, 1, "true -> 1"),
        (0, False, "0 -> false"),
        (None, "null", 'null -> "null"'),
        ("yes", True, '"yes" -> true'),
        ([1, 2], [2, 1], "[1, 2] -> [2, 1]"),
        ("l1", "l2", "l1 -> l2"),
    ],
)
def test_a_type_change_is_a_change(old: Any, new: Any, shown: str) -> None:
    e = entry(params={P: {"train.lr": old}})
    assert reasons(stage(), e, now(values={(P, "train.lr"): new})) == [
        f"param train.lr changed {shown}"
    ]


def test_out_missing_restorable_is_checked_out() -> None:
    n = now(outs={"model.pkl": None})
    assert reasons(stage(), entry(), n) == ["out model.pkl missing"]
    assert decide(stage(), entry(), n, cached) == Decision(CHECKOUT, ("out model.pkl missing",))


def test_out_missing_not_restorable_runs() -> None:
    n = now(outs={"model.pkl": None})
    assert decide(stage(), entry(), n, not_cached) == Decision(RUN, ("out model.pkl missing",))


def test_in_cache_is_asked_about_the_locked_out() -> None:
    asked: list[Meta] = []

    def in_cache(meta: Meta) -> bool:
        asked.append(meta)
        return True

    decide(stage(), entry(), now(outs={"model.pkl": None}), in_cache)
    assert asked == [B]


def test_out_missing_and_something_else_runs() -> None:
    n = now(outs={"model.pkl": None}, values={(P, "train.lr"): 0.2})
    assert decide(stage(), entry(), n, cached) == Decision(
        RUN, ("param train.lr changed 0.1 -> 0.2", "out model.pkl missing")
    )


def test_out_modified_runs_even_when_restorable() -> None:
    n = now(outs={"model.pkl": A})
    assert reasons(stage(), entry(), n) == ["out model.pkl modified"]
    assert decide(stage(), entry(), n, cached) == Decision(RUN, ("out model.pkl modified",))


def test_out_new_and_removed() -> None:
    s = stage(outs=(Out("model.pkl"), Out("metrics.json", cache=False, kind="metrics")))
    n = now(outs={"model.pkl": B, "metrics.json": A})
    assert reasons(s, entry(), n) == ["out metrics.json is new"]
    assert reasons(stage(outs=()), entry(), now(outs={})) == ["out model.pkl removed"]


def test_a_new_out_that_is_missing_is_not_looked_up_in_the_lock() -> None:
    # One out is restorable, a newly declared one is not there yet: run, do not crash.
    s = stage(outs=(Out("model.pkl"), Out("report.html")))
    n = now(outs={"model.pkl": None, "report.html": None})
    assert decide(s, entry(), n, cached) == Decision(
        RUN, ("out model.pkl missing", "out report.html is new")
    )


def test_every_missing_out_must_be_restorable() -> None:
    s = stage(outs=(Out("model.pkl"), Out("scaler.pkl")))
    e = entry(outs={"model.pkl": B, "scaler.pkl": A})
    n = now(outs={"model.pkl": None, "scaler.pkl": None})
    assert decide(s, e, n, lambda m: m == B).action == RUN
    assert decide(s, e, n, cached) == Decision(
        CHECKOUT, ("out model.pkl missing", "out scaler.pkl missing")
    )


def test_reasons_are_listed_in_a_stable_order() -> None:
    s = stage(always_changed=True, cmd=("other",))
    n = now(deps={"data.csv": B}, outs={"model.pkl": A}, values={(P, "train.lr"): 0.3})
    assert reasons(s, entry(), n) == [
        "always changed",
        "command changed",
        "dep data.csv modified",
        "param train.lr changed 0.1 -> 0.3",
        "out model.pkl modified",
    ]


# decide


def test_frozen_never_runs() -> None:
    s = stage(frozen=True)
    n = now(deps={"data.csv": B}, values={(P, "train.lr"): 0.5})
    assert decide(s, entry(), n, cached) == Decision(SKIP, ("frozen",))
    assert decide(s, None, n, cached) == Decision(SKIP, ("frozen",))
    assert decide(s, entry(), n, cached, force=True) == Decision(SKIP, ("frozen",))


def test_frozen_checks_out_a_missing_out_it_can_restore() -> None:
    s = stage(frozen=True)
    n = now(outs={"model.pkl": None})
    assert decide(s, entry(), n, cached) == Decision(CHECKOUT, ("frozen", "out model.pkl missing"))
    assert decide(s, entry(), n, not_cached) == Decision(SKIP, ("frozen", "out model.pkl missing"))


def test_always_changed_runs_every_time() -> None:
    s = stage(always_changed=True)
    assert decide(s, entry(), now(), cached) == Decision(RUN, ("always changed",))


def test_force_runs_an_up_to_date_stage() -> None:
    assert decide(stage(), entry(), now(), cached, force=True) == Decision(RUN, ("forced",))


def test_force_keeps_the_other_reasons() -> None:
    n = now(outs={"model.pkl": None})
    assert decide(stage(), entry(), n, cached, force=True) == Decision(
        RUN, ("forced", "out model.pkl missing")
    )


# propagate

ORDER = ["prepare", "train", "evaluate", "report"]
UPSTREAM = {
    "prepare": (),
    "train": ("prepare",),
    "evaluate": ("train",),
    "report": (),
}
SKIPPED = Decision(SKIP, ())


def test_propagate_plans_everything_downstream_of_a_running_stage() -> None:
    decisions = {
        "prepare": Decision(RUN, ("dep raw.csv modified",)),
        "train": SKIPPED,
        "evaluate": SKIPPED,
        "report": SKIPPED,
    }
    plan = propagate(ORDER, UPSTREAM, decisions)
    assert plan == {
        "prepare": Decision(RUN, ("dep raw.csv modified",)),
        "train": Decision(RUN, ("upstream 'prepare' runs",)),
        "evaluate": Decision(RUN, ("upstream 'train' runs",)),
        "report": SKIPPED,
    }
    assert list(plan) == ORDER
    assert decisions["train"] == SKIPPED  # the input is not changed in place


def test_propagate_keeps_a_stage_s_own_reasons() -> None:
    own = Decision(RUN, ("command changed",))
    plan = propagate(ORDER, UPSTREAM, {"prepare": Decision(RUN, ("x",)), "train": own})
    assert plan["train"] == own


def test_propagate_turns_a_checkout_into_a_run() -> None:
    decisions = {
        "prepare": Decision(RUN, ("x",)),
        "train": Decision(CHECKOUT, ("out model.pkl missing",)),
    }
    assert propagate(ORDER, UPSTREAM, decisions)["train"] == Decision(
        RUN, ("upstream 'prepare' runs",)
    )


def test_propagate_stops_at_a_frozen_stage() -> None:
    decisions = {
        "prepare": Decision(RUN, ("x",)),
        "train": Decision(SKIP, ("frozen",)),
        "evaluate": SKIPPED,
    }
    plan = propagate(ORDER, UPSTREAM, decisions)
    assert plan["train"] == Decision(SKIP, ("frozen",))
    assert plan["evaluate"] == SKIPPED


def test_propagate_a_checkout_upstream_does_not_run_downstream() -> None:
    decisions = {"prepare": Decision(CHECKOUT, ("out a missing",)), "train": SKIPPED}
    assert propagate(ORDER, UPSTREAM, decisions)["train"] == SKIPPED


def test_propagate_names_every_running_upstream() -> None:
    order = ["a", "b", "c"]
    upstream = {"a": (), "b": (), "c": ("a", "b")}
    decisions = {"a": Decision(RUN, ("x",)), "b": Decision(RUN, ("y",)), "c": SKIPPED}
    assert propagate(order, upstream, decisions)["c"] == Decision(
        RUN, ("upstream 'a' runs", "upstream 'b' runs")
    )


def test_propagate_plans_only_the_stages_it_was_given() -> None:
    # `conveyor run train`: upstream stages outside the selection are not planned at all.
    plan = propagate(ORDER, UPSTREAM, {"train": SKIPPED, "evaluate": SKIPPED})
    assert plan == {"train": SKIPPED, "evaluate": SKIPPED}


def test_a_section_and_a_key_inside_it_report_a_change_once() -> None:
    # `params: [train]` plus `${train.lr}` in the command declares both.
    s = stage(params=((P, "train"), (P, "train.lr")))
    e = entry(params={P: {"train": {"lr": 0.1}, "train.lr": 0.1}})
    n = now(values={(P, "train"): {"lr": 0.2}, (P, "train.lr"): 0.2})
    assert reasons(s, e, n) == ["param train.lr changed 0.1 -> 0.2"]
