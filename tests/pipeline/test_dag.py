"""The pipeline graph over plain Stage values: edges, order, and what cannot be run."""

from __future__ import annotations

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import dag
from conveyor.pipeline.stage import Out, Stage


def st(name: str, deps: tuple[str, ...] = (), outs: tuple[str, ...] = (), line: int = 0) -> Stage:
    return Stage(name, (f"run {name}",), deps=deps, outs=tuple(Out(o) for o in outs), line=line)


def stages(*items: Stage) -> dict[str, Stage]:
    return {s.name: s for s in items}


def build(*items: Stage) -> dict[str, tuple[str, ...]]:
    return dag.build(stages(*items), "conveyor.yaml")


def test_an_out_feeds_the_stage_that_depends_on_its_exact_path() -> None:
    up = build(st("prepare", ("raw.csv",), ("data/clean.csv",)), st("train", ("data/clean.csv",)))
    assert up == {"prepare": (), "train": ("prepare",)}


def test_a_dep_inside_an_out_folder_depends_on_its_producer() -> None:
    up = build(st("prepare", outs=("data",)), st("train", ("data/part-0.csv",)))
    assert up["train"] == ("prepare",)


def test_a_dep_folder_holding_outs_depends_on_every_producer_inside() -> None:
    up = build(
        st("a", outs=("data/a.csv",)),
        st("b", outs=("data/sub/b.csv",)),
        st("c", outs=("database.csv",)),  # shares the prefix "data", is not inside data/
        st("train", ("data",)),
    )
    assert up["train"] == ("a", "b")


def test_a_path_sharing_a_prefix_is_not_inside() -> None:
    up = build(st("a", outs=("data",)), st("b", ("data2/x.csv", "dat")))
    assert up["b"] == ()


def test_metrics_and_plots_are_outs_too() -> None:
    ev = Stage("evaluate", ("e",), outs=(Out("metrics.json", cache=False, kind="metrics"),))
    report = st("report", ("metrics.json",))
    assert dag.build(stages(ev, report), "conveyor.yaml")["report"] == ("evaluate",)


def test_upstream_lists_follow_definition_order() -> None:
    up = build(st("z", outs=("z",)), st("a", outs=("a",)), st("m", ("a", "z")))
    assert up["m"] == ("z", "a")


def test_order_puts_upstream_first_and_keeps_definition_order_among_the_ready() -> None:
    s = stages(
        st("evaluate", ("model",), ("metrics.json",)),
        st("lint"),
        st("train", ("data",), ("model",)),
        st("prepare", outs=("data",)),
        st("docs"),
    )
    up = dag.build(s, "conveyor.yaml")
    assert dag.order(s, up) == ["lint", "prepare", "train", "evaluate", "docs"]


def test_independent_stages_keep_definition_order() -> None:
    s = stages(st("c"), st("a"), st("b"))
    assert dag.order(s, dag.build(s, "conveyor.yaml")) == ["c", "a", "b"]


def test_a_cycle_is_named_with_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        build(st("a", ("b.out",), ("a.out",), line=3), st("b", ("a.out",), ("b.out",), line=7))
    assert "conveyor.yaml:3:" in info.value.message
    assert "a -> b -> a" in info.value.message
    assert info.value.hint is not None and "own outs" in info.value.hint


def test_a_longer_cycle_is_named_in_the_direction_data_flows() -> None:
    with pytest.raises(ConfigError) as info:
        build(
            st("ok", outs=("ok",), line=2),
            st("a", ("c", "ok"), ("a",), line=4),
            st("b", ("a",), ("b",), line=6),
            st("c", ("b",), ("c",), line=8),
            st("after", ("c",), line=10),
        )
    assert info.value.message == "conveyor.yaml:4: the stages form a cycle: a -> b -> c -> a"


def test_a_stage_that_depends_on_its_own_out() -> None:
    with pytest.raises(ConfigError) as info:
        build(st("train", ("model.pkl",), ("model.pkl",), line=5))
    assert info.value.message.startswith("conveyor.yaml:5: stage 'train' depends on its own out")
    assert info.value.hint is not None


def test_a_stage_reading_the_folder_it_writes_into_depends_on_itself() -> None:
    with pytest.raises(ConfigError, match="'train' depends on its own out"):
        build(st("train", ("data",), ("data/model.pkl",)))


def test_two_stages_writing_one_path_names_both() -> None:
    with pytest.raises(ConfigError) as info:
        build(st("a", outs=("model.pkl",), line=2), st("b", outs=("model.pkl",), line=6))
    message = info.value.message
    assert message.startswith("conveyor.yaml:6: ")
    assert "'a'" in message and "'b'" in message and "model.pkl" in message
    assert info.value.hint is not None


def test_one_stage_listing_a_path_twice() -> None:
    s = Stage("a", ("x",), outs=(Out("m"), Out("m", kind="metrics")), line=4)
    with pytest.raises(ConfigError, match=r"conveyor.yaml:4: stage 'a' lists m twice"):
        dag.build(stages(s), "conveyor.yaml")


def test_an_out_inside_another_stage_s_out() -> None:
    with pytest.raises(ConfigError) as info:
        build(st("a", outs=("data",), line=2), st("b", outs=("data/sub/x.csv",), line=5))
    message = info.value.message
    assert message.startswith("conveyor.yaml:5: stage 'b' writes data/sub/x.csv, inside data")
    assert "'a'" in message
    assert info.value.hint is not None and "inside another out" in info.value.hint


def test_an_out_inside_another_out_in_either_definition_order() -> None:
    with pytest.raises(ConfigError, match="inside data, which stage 'b' writes"):
        build(st("a", outs=("data/x.csv",)), st("b", outs=("data",)))


def test_sibling_outs_are_fine() -> None:
    up = build(st("a", outs=("data/a",)), st("b", outs=("data/ab", "data/a.csv")))
    assert up == {"a": (), "b": ()}


def test_dependents_inverts_upstream() -> None:
    up = {"a": (), "b": ("a",), "c": ("a", "b")}
    assert dag.dependents(up) == {"a": ["b", "c"], "b": ["c"]}


def test_closure_follows_edges_either_way() -> None:
    up = {"a": (), "b": ("a",), "c": ("b",), "d": ()}
    assert dag.closure(["c"], up) == {"a", "b", "c"}
    assert dag.closure(["a"], dag.dependents(up)) == {"a", "b", "c"}
    assert dag.closure(["d"], up) == {"d"}
    assert dag.closure([], up) == set()


def test_closure_of_a_diamond_visits_each_once() -> None:
    up = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert dag.closure(["d"], up) == {"a", "b", "c", "d"}
    assert dag.order(stages(*(st(n) for n in "dcba")), up) == ["a", "c", "b", "d"]
