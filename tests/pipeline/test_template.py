"""Templating in conveyor.yaml, compiled from real files: ${...}, vars, foreach and matrix."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import definition
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.stage import Out
from conveyor.pipeline.template import Context

PARAMS = """\
train:
  lr: 0.1
  C: 1.0
  layers: [64, 32]
  kernel: rbf
prepare:
  split: 0.2
seed: 7
"""


def compile_project(
    root: Path, yaml: str, files: dict[str, str] | None = None, params: str = PARAMS
) -> Pipeline:
    (root / "conveyor.yaml").write_text(textwrap.dedent(yaml))
    (root / "params.yaml").write_text(params)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return definition.compile_pipeline(root, [])


def config_error(root: Path, yaml: str, files: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_project(root, yaml, files)
    return info.value


# ${...} interpolation


def test_a_param_in_a_command_is_interpolated_and_becomes_a_param(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            cmd: python train.py --lr ${train.lr} --kernel ${ train.kernel }
        """,
    )
    train = p.stages["train"]
    assert train.cmd == ("python train.py --lr 0.1 --kernel rbf",)
    assert set(train.params) == {("params.yaml", "train.lr"), ("params.yaml", "train.kernel")}
    assert p.value_of("params.yaml", "train.lr") == 0.1


def test_the_params_prefix_names_the_same_param(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            cmd: python train.py ${params.train.lr} ${train.lr}
            params: [train.lr]
        """,
    )
    assert p.stages["train"].cmd == ("python train.py 0.1 0.1",)
    assert p.stages["train"].params == (("params.yaml", "train.lr"),)


def test_interpolated_params_belong_only_to_the_stage_that_uses_them(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          prepare:
            cmd: python prepare.py ${prepare.split}
          train:
            cmd: python train.py ${seed}
        """,
    )
    assert p.stages["prepare"].params == (("params.yaml", "prepare.split"),)
    assert p.stages["train"].params == (("params.yaml", "seed"),)


def test_a_whole_string_reference_keeps_its_type(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        vars:
          - commands: [python a.py, python b.py]
            inputs: [a.csv, b.csv]
            freeze: true
            vars_env: {N: 3}
        stages:
          s:
            cmd: ${commands}
            deps: ${inputs}
            frozen: ${freeze}
            env: ${vars_env}
        """,
    )
    s = p.stages["s"]
    assert s.cmd == ("python a.py", "python b.py")
    assert s.deps == ("a.csv", "b.csv")
    assert s.frozen is True
    assert s.env == (("N", "3"),)


def test_a_whole_string_list_param_stays_a_list(tmp_path: Path) -> None:
    # desc is a string: a list there is refused by the schema, which proves the list came through.
    error = config_error(
        tmp_path,
        """
        stages:
          s:
            cmd: x
            desc: ${train.layers}
        """,
    )
    assert error.message == "conveyor.yaml:5: stage 's': desc: input should be a valid string"


def test_values_inside_a_longer_string_are_formatted(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        vars:
          - yes_: true
            no_: false
            none: null
            n: 3
        stages:
          s:
            cmd: echo ${yes_} ${no_} ${none} ${n} ${train.C}-${seed}
        """,
    )
    assert p.stages["s"].cmd == ("echo true false null 3 1.0-7",)


def test_a_backslash_escapes_interpolation(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        r"""
        stages:
          s:
            cmd: echo \${HOME} ${seed} \${train.lr}
          t:
            cmd: \${whole}
        """,
    )
    assert p.stages["s"].cmd == ("echo ${HOME} 7 ${train.lr}",)
    assert p.stages["s"].params == (("params.yaml", "seed"),)
    assert p.stages["t"].cmd == ("${whole}",)


def test_a_dollar_without_braces_is_left_alone(tmp_path: Path) -> None:
    p = compile_project(tmp_path, "stages:\n  s:\n    cmd: echo $HOME $1 {a}\n")
    assert p.stages["s"].cmd == ("echo $HOME $1 {a}",)


def test_a_mapping_inside_a_longer_string_is_refused(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    cmd: echo ${train}\n")
    assert error.message == (
        "conveyor.yaml:3: stage 's': ${train} is a dict, which cannot be part of a longer string"
    )


def test_a_reference_naming_nothing_names_stage_line_and_nearest_key(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        """
        stages:
          train:
            desc: trains
            cmd: python train.py --lr ${train.lrr}
        """,
    )
    assert error.message == (
        "conveyor.yaml:5: stage 'train': ${train.lrr} names nothing in vars, params "
        "or the expansion's item"
    )
    assert error.hint == "did you mean 'train.lr'?"


def test_a_reference_that_is_not_a_name(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    cmd: echo ${a b}\n")
    assert error.message == "conveyor.yaml:3: stage 's': ${a b} is not a name"
    assert error.hint is not None


# vars


def test_vars_inline_and_from_files(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        vars:
          - conf/vars.yaml
          - model: {name: svm}
            data: raw.csv
          - extra.json
        stages:
          s:
            cmd: fit ${model.name} ${data} ${threads} ${json_key}
        """,
        {"conf/vars.yaml": "model: {name: rf}\nthreads: 4\n", "extra.json": '{"json_key": "j"}'},
    )
    # Later entries win: the inline mapping overrides the file's model.
    assert p.stages["s"].cmd == ("fit svm raw.csv 4 j",)
    assert p.stages["s"].params == ()  # vars are not params
    assert "conf/vars.yaml" in p.sources and "extra.json" in p.sources


def test_vars_as_a_single_mapping(tmp_path: Path) -> None:
    p = compile_project(tmp_path, "vars:\n  n: 5\nstages:\n  s:\n    cmd: echo ${n}\n")
    assert p.stages["s"].cmd == ("echo 5",)


def test_vars_shadow_params(tmp_path: Path) -> None:
    p = compile_project(tmp_path, "vars:\n  - seed: 99\nstages:\n  s:\n    cmd: echo ${seed}\n")
    assert p.stages["s"].cmd == ("echo 99",)
    assert p.stages["s"].params == ()
    q = compile_project(
        tmp_path, "vars:\n  - seed: 99\nstages:\n  s:\n    cmd: echo ${params.seed}\n"
    )
    assert q.stages["s"].cmd == ("echo 7",)


def test_a_missing_vars_file(tmp_path: Path) -> None:
    error = config_error(tmp_path, "vars:\n  - nope.yaml\nstages:\n  s:\n    cmd: x\n")
    assert error.message == "conveyor.yaml:1: vars file nope.yaml does not exist"


def test_a_vars_entry_of_the_wrong_type(tmp_path: Path) -> None:
    error = config_error(tmp_path, "vars:\n  - 3\nstages:\n  s:\n    cmd: x\n")
    assert error.message.startswith("conveyor.yaml:1: ")


# foreach


def test_foreach_over_a_list(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          prepare:
            foreach: [train, test, 3]
            do:
              cmd: python prepare.py ${item} --seed ${seed}
              outs:
                - data/${item}.csv
        """,
    )
    assert list(p.stages) == ["prepare@train", "prepare@test", "prepare@3"]
    s = p.stages["prepare@test"]
    assert s.cmd == ("python prepare.py test --seed 7",)
    assert s.outs == (Out("data/test.csv"),)
    assert s.params == (("params.yaml", "seed"),)
    assert s.line == 5  # the `do:` body


def test_foreach_over_a_list_of_mappings_names_by_index(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          fit:
            foreach:
              - {name: a, n: 1}
              - {name: b, n: 2}
            do:
              cmd: fit ${item.name} ${item.n} ${key}
        """,
    )
    assert {n: s.cmd for n, s in p.stages.items()} == {
        "fit@0": ("fit a 1 0",),
        "fit@1": ("fit b 2 1",),
    }


def test_foreach_over_a_mapping(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            foreach:
              small: {layers: 1}
              large: {layers: 8}
            do:
              cmd: python train.py --layers ${item.layers} --name ${key}
              outs:
                - models/${key}.pkl
        """,
    )
    assert list(p.stages) == ["train@small", "train@large"]
    assert p.stages["train@large"].cmd == ("python train.py --layers 8 --name large",)
    assert p.stages["train@large"].outs == (Out("models/large.pkl"),)


def test_foreach_over_a_param_list(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            foreach: ${train.layers}
            do:
              cmd: python train.py ${item}
        """,
    )
    assert list(p.stages) == ["train@64", "train@32"]


def test_foreach_from_vars(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        vars:
          - splits: [a, b]
        stages:
          s:
            foreach: ${splits}
            do:
              cmd: echo ${item}
        """,
    )
    assert list(p.stages) == ["s@a", "s@b"]


def test_foreach_needs_a_do_body(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    foreach: [a]\n    cmd: echo\n")
    assert error.message.startswith("conveyor.yaml:2: stage 's': ")
    assert error.hint == "move 'cmd' under 'do:'"
    error = config_error(tmp_path, "stages:\n  s:\n    foreach: [a]\n")
    assert error.hint == "add a 'do:' body"


def test_foreach_over_a_scalar_is_refused(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    foreach: 3\n    do:\n      cmd: x\n")
    assert error.message == "conveyor.yaml:2: stage 's': 'foreach' must be a list or a mapping"


def test_an_unknown_key_in_a_foreach_body_names_its_line(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        """
        stages:
          s:
            foreach: [a]
            do:
              cmd: echo ${item}
              dep: [x]
        """,
    )
    assert error.message == "conveyor.yaml:7: stage 's@a': unknown key 'dep'"
    assert error.hint == "did you mean 'deps'?"


def test_a_foreach_reference_naming_nothing_names_the_stage(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    foreach: ${nope}\n    do:\n      cmd: x\n")
    assert error.message.startswith("conveyor.yaml:2: stage 's': ${nope} names nothing")


def test_two_expansions_with_one_name(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    foreach: [a, a]\n    do:\n      cmd: x\n")
    assert error.message == "conveyor.yaml:2: two stages are named 's@a'"
    assert error.hint is not None and "rename one" in error.hint


# matrix


def test_matrix_with_one_axis(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            matrix:
              lr: [0.1, 0.01]
            cmd: python train.py --lr ${item.lr}
            outs:
              - models/${item.lr}.pkl
        """,
    )
    assert list(p.stages) == ["train@lr-0.1", "train@lr-0.01"]
    assert p.stages["train@lr-0.1"].cmd == ("python train.py --lr 0.1",)
    assert p.stages["train@lr-0.01"].outs == (Out("models/0.01.pkl"),)
    assert p.stages["train@lr-0.1"].line == 3


def test_matrix_with_two_axes_is_their_product(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            matrix:
              model: [svm, rf]
              lr: [0.1, 0.2]
            cmd: fit ${item.model} ${item.lr}
        """,
    )
    assert {n: s.cmd for n, s in p.stages.items()} == {
        "train@model-svm-lr-0.1": ("fit svm 0.1",),
        "train@model-svm-lr-0.2": ("fit svm 0.2",),
        "train@model-rf-lr-0.1": ("fit rf 0.1",),
        "train@model-rf-lr-0.2": ("fit rf 0.2",),
    }


def test_matrix_values_that_are_not_scalars_are_named_by_index(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            matrix:
              cfg: [{a: 1}, {a: 2}]
            cmd: fit ${item.cfg.a}
        """,
    )
    assert {n: s.cmd for n, s in p.stages.items()} == {
        "train@cfg-0": ("fit 1",),
        "train@cfg-1": ("fit 2",),
    }


def test_matrix_axis_from_params_keeps_params_tracking(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            matrix:
              layers: ${train.layers}
            cmd: fit ${item.layers} ${train.C}
        """,
    )
    assert list(p.stages) == ["train@layers-64", "train@layers-32"]
    assert p.stages["train@layers-64"].params == (("params.yaml", "train.C"),)


@pytest.mark.parametrize(
    ("matrix", "says"),
    [("[1, 2]", "'matrix' maps names to lists"), ("{lr: 1}", "matrix axis 'lr' must be")],
)
def test_a_bad_matrix(tmp_path: Path, matrix: str, says: str) -> None:
    error = config_error(tmp_path, f"stages:\n  s:\n    matrix: {matrix}\n    cmd: x\n")
    assert error.message.startswith("conveyor.yaml:2: stage 's': ")
    assert says in error.message


# the Context on its own


def test_context_resolves_item_then_vars_then_params() -> None:
    ctx = Context({"a": "var", "b": "var"}, {"a": "param", "b": "param", "c": "param"})
    local = ctx.child({"a": "item"})
    assert local.render(["${a}", "${b}", "${c}", "${params.a}"], "w") == [
        "item",
        "var",
        "param",
        "param",
    ]
    assert local.used_params == {"c", "a"}


def test_context_renders_mapping_keys_and_leaves_other_types() -> None:
    ctx = Context({"k": "key", "n": 2}, {})
    value: Any = {"${k}": ["x${n}", 3, None, True]}
    assert ctx.render(value, "w") == {"key": ["x2", 3, None, True]}


def test_a_matrix_of_a_million_combinations_is_refused_at_once(tmp_path: Path) -> None:
    import time
    import tracemalloc

    axis = "[" + ", ".join(str(i) for i in range(100)) + "]"
    yaml = f"""\
        stages:
          train:
            matrix: {{a: {axis}, b: {axis}, c: {axis}}}
            cmd: echo ${{item.a}} ${{item.b}} ${{item.c}}
        """
    tracemalloc.start()
    started = time.perf_counter()
    try:
        err = config_error(tmp_path, yaml)
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert err.message == (
        "conveyor.yaml:2: stage 'train': 'matrix' makes 1000000 stages (at most 1000)"
    )
    assert seconds < 1 and peak < 100 * 2**20, (seconds, peak)


def test_a_foreach_past_the_bound_is_refused(tmp_path: Path) -> None:
    items = "[" + ", ".join(str(i) for i in range(5000)) + "]"
    err = config_error(tmp_path, f"stages:\n  s:\n    foreach: {items}\n    do: {{cmd: x}}\n")
    assert err.message == "conveyor.yaml:2: stage 's': 'foreach' makes 5000 stages (at most 1000)"


def test_a_matrix_at_the_bound_compiles(tmp_path: Path) -> None:
    axis = "[" + ", ".join(str(i) for i in range(10)) + "]"
    yaml = f"stages:\n  t:\n    matrix: {{a: {axis}, b: {axis}, c: {axis}}}\n    cmd: x\n"
    assert len(compile_project(tmp_path, yaml).stages) == 1000


def test_a_pipeline_past_ten_thousand_stages_stops_compiling(tmp_path: Path) -> None:
    import time

    axis = "[" + ", ".join(str(i) for i in range(10)) + "]"
    yaml = "stages:\n" + "".join(
        f"  t{k}:\n    matrix: {{a: {axis}, b: {axis}, c: {axis}}}\n    cmd: x\n"
        for k in range(100)  # 100 000 stages
    )
    started = time.perf_counter()
    err = config_error(tmp_path, yaml)
    assert time.perf_counter() - started < 10  # compiling all 100 000 takes about 30 s
    assert err.message == "conveyor.yaml:32: the pipeline makes more than 10000 stages"
