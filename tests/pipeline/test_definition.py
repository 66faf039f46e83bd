"""conveyor.yaml -> Pipeline from real files: paths, params files, -S, errors and the cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import definition
from conveyor.pipeline.definition import Overrides, Pipeline
from conveyor.pipeline.stage import Out

PARAMS = "train:\n  lr: 0.1\n  C: 1.0\n  kernel: rbf\nprepare:\n  split: 0.2\nseed: 7\n"

PIPELINE = """\
stages:
  prepare:
    cmd: python prepare.py
    deps:
      - raw.csv
    params:
      - prepare.split
    outs:
      - data
  train:
    cmd: python train.py --lr ${train.lr}
    deps:
      - data
    params:
      - train
    outs:
      - model.pkl
    metrics:
      - metrics.json:
          cache: false
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def compile_project(
    root: Path,
    yaml: str,
    files: dict[str, str] | None = None,
    overrides: Overrides | None = None,
    params: str = PARAMS,
) -> Pipeline:
    write(root, {"conveyor.yaml": yaml, "params.yaml": params, **(files or {})})
    return definition.compile_pipeline(root, overrides or [])


def config_error(
    root: Path, yaml: str, files: dict[str, str] | None = None, overrides: Overrides | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_project(root, yaml, files, overrides)
    return info.value


# what a stage compiles to


def test_a_pipeline_compiles_to_stages_edges_order_and_values(tmp_path: Path) -> None:
    p = compile_project(tmp_path, PIPELINE)
    assert list(p.stages) == ["prepare", "train"]
    train = p.stages["train"]
    assert train.cmd == ("python train.py --lr 0.1",)
    assert train.deps == ("data",)
    assert train.params == (("params.yaml", "train"), ("params.yaml", "train.lr"))
    assert train.outs == (
        Out("model.pkl"),
        Out("metrics.json", cache=False, persist=False, kind="metrics"),
    )
    assert train.line == 10
    assert p.upstream == {"prepare": (), "train": ("prepare",)}
    assert p.order == ["prepare", "train"]
    assert p.value_of("params.yaml", "train") == {"lr": 0.1, "C": 1.0, "kernel": "rbf"}
    assert p.value_of("params.yaml", "prepare.split") == 0.2
    assert p.value_of("params.yaml", "nope") is definition.params_mod.MISSING
    assert p.sources == ("conveyor.yaml", "params.yaml")


def test_no_conveyor_yaml_is_an_empty_pipeline(tmp_path: Path) -> None:
    p = definition.compile_pipeline(tmp_path, [])
    assert (p.stages, p.order, p.values) == ({}, [], {})


def test_an_empty_conveyor_yaml_is_an_empty_pipeline(tmp_path: Path) -> None:
    assert compile_project(tmp_path, "").stages == {}
    assert compile_project(tmp_path, "stages:\n").stages == {}


def test_stage_flags_env_and_desc(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          s:
            cmd: [python a.py, python b.py]
            outs:
              - cache: {persist: true}
              - plain
              - nocache:
                  cache: false
            plots:
              - plots/roc.csv
            env: {B: true, A: 1, C: 0.5, D: text}
            frozen: true
            always_changed: true
            desc: does things
        """,
    )
    s = p.stages["s"]
    assert s.cmd == ("python a.py", "python b.py")
    assert s.outs == (
        Out("cache", cache=True, persist=True),
        Out("plain"),
        Out("nocache", cache=False),
        Out("plots/roc.csv", cache=False, kind="plots"),
    )
    assert s.env == (("A", "1"), ("B", "1"), ("C", "0.5"), ("D", "text"))
    assert (s.frozen, s.always_changed, s.desc) == (True, True, "does things")


def test_paths_are_relative_to_wdir(tmp_path: Path) -> None:
    (tmp_path / "src" / "model").mkdir(parents=True)
    p = compile_project(
        tmp_path,
        """
        stages:
          train:
            wdir: src/model
            cmd: python train.py
            deps: [train.py, ../../data/clean.csv, ./sub/../x.py]
            outs: [../../models/m.pkl]
            params: [lr]
        """,
        {"src/model/params.yaml": "lr: 0.3\n"},
    )
    train = p.stages["train"]
    assert train.wdir == "src/model"
    assert train.deps == ("src/model/train.py", "data/clean.csv", "src/model/x.py")
    assert train.outs == (Out("models/m.pkl"),)
    # A bare param key is read from the params.yaml beside the stage's wdir.
    assert train.params == (("src/model/params.yaml", "lr"),)
    assert p.value_of("src/model/params.yaml", "lr") == 0.3
    assert "src/model/params.yaml" in p.sources


def test_wdir_dot_is_the_root(tmp_path: Path) -> None:
    p = compile_project(tmp_path, "stages:\n  s:\n    wdir: .\n    cmd: x\n    deps: [a/b]\n")
    assert (p.stages["s"].wdir, p.stages["s"].deps) == ("", ("a/b",))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("other.yaml", "model:\n  depth: 3\n"),
        ("conf/other.json", '{"model": {"depth": 3}}'),
        ("other.toml", "[model]\ndepth = 3\n"),
    ],
)
def test_params_in_another_file(tmp_path: Path, name: str, text: str) -> None:
    p = compile_project(
        tmp_path,
        f"stages:\n  s:\n    cmd: x\n    params: [{name}:model.depth, seed]\n",
        {name: text},
    )
    assert p.stages["s"].params == ((name, "model.depth"), ("params.yaml", "seed"))
    assert p.value_of(name, "model.depth") == 3
    assert name in p.sources


def test_params_file_with_a_list_of_keys(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          s:
            cmd: x
            params:
              - other.yaml: [a, b.c]
              - params.yaml: [seed]
        """,
        {"other.yaml": "a: 1\nb:\n  c: 2\n  d: 3\n"},
    )
    assert p.stages["s"].params == (
        ("other.yaml", "a"),
        ("other.yaml", "b.c"),
        ("params.yaml", "seed"),
    )
    assert p.value_of("other.yaml", "b.c") == 2


def test_params_file_with_null_takes_the_whole_file(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        "stages:\n  s:\n    cmd: x\n    params:\n      - other.yaml:\n",
        {"other.yaml": "a: 1\nb:\n  c: 2\n"},
    )
    assert p.stages["s"].params == (("other.yaml", "a"), ("other.yaml", "b"))
    assert p.value_of("other.yaml", "b") == {"c": 2}


def test_a_param_listed_twice_is_one_param(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        """
        stages:
          s:
            cmd: x ${seed}
            params: [seed, params.yaml:seed, {params.yaml: [seed]}]
        """,
    )
    assert p.stages["s"].params == (("params.yaml", "seed"),)


# -S overrides


def test_overrides_change_the_values_and_the_commands(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        "stages:\n  s:\n    cmd: fit ${train.lr}\n    params: [other.yaml:k]\n",
        {"other.yaml": "k: a\n"},
        overrides=[("params.yaml", "train.lr", 0.5), ("other.yaml", "k", "b")],
    )
    assert p.stages["s"].cmd == ("fit 0.5",)
    assert p.value_of("params.yaml", "train.lr") == 0.5
    assert p.value_of("other.yaml", "k") == "b"
    assert (tmp_path / "params.yaml").read_text() == PARAMS  # the file itself is untouched


def test_an_override_of_a_section_leaf_shows_in_the_section(tmp_path: Path) -> None:
    p = compile_project(
        tmp_path,
        "stages:\n  s:\n    cmd: x\n    params: [train]\n",
        overrides=[("params.yaml", "train.C", 2)],
    )
    assert p.value_of("params.yaml", "train") == {"lr": 0.1, "C": 2, "kernel": "rbf"}


def test_an_unknown_override_key_suggests_the_nearest(tmp_path: Path) -> None:
    error = config_error(
        tmp_path, "stages:\n  s:\n    cmd: x\n", overrides=[("params.yaml", "train.lrr", 1)]
    )
    assert error.message == "-S train.lrr: unknown param 'train.lrr'"
    assert error.hint == "did you mean 'train.lr'?"


def test_an_override_is_checked_even_without_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(PARAMS)
    with pytest.raises(ConfigError, match="unknown param 'sed'") as info:
        definition.compile_pipeline(tmp_path, [("params.yaml", "sed", 1)])
    assert info.value.hint == "did you mean 'seed'?"


# every config error names the file, the line, the stage, and the fix


def test_a_typo_in_a_stage_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    outz: [model.pkl]\n")
    assert error.message == "conveyor.yaml:4: stage 'train': unknown key 'outz'"
    assert error.hint == "did you mean 'outs'?"


def test_a_typo_in_an_out_flag(tmp_path: Path) -> None:
    error = config_error(
        tmp_path, "stages:\n  train:\n    cmd: x\n    outs:\n      - m.pkl: {cach: false}\n"
    )
    assert error.message.startswith("conveyor.yaml:4: stage 'train': unknown key 'cach'")
    assert error.hint == "did you mean 'cache'?"


def test_an_unknown_key_far_from_any_lists_the_valid_keys(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    zzzzzz: 1\n")
    assert error.message == "conveyor.yaml:4: stage 'train': unknown key 'zzzzzz'"
    assert error.hint is not None and error.hint.startswith("valid keys: cmd, deps")


def test_an_unknown_top_level_section(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  s:\n    cmd: x\nstagse:\n  t:\n    cmd: y\n")
    assert error.message == "conveyor.yaml:4: unknown section 'stagse'"
    assert error.hint == "did you mean 'stages'?"


def test_a_missing_cmd(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  ok:\n    cmd: x\n  train:\n    deps: [a]\n")
    assert error.message == "conveyor.yaml:4: stage 'train' has no 'cmd'"
    assert error.hint is not None and "'cmd'" in error.hint


@pytest.mark.parametrize("cmd", ["''", "[]", "['a', '  ']"])
def test_an_empty_cmd(tmp_path: Path, cmd: str) -> None:
    error = config_error(tmp_path, f"stages:\n  train:\n    cmd: {cmd}\n")
    assert error.message == "conveyor.yaml:3: stage 'train': 'cmd' is empty"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("frozen: maybe", "frozen: expected true or false"),
        ("always_changed: [1]", "always_changed: expected true or false"),
        ("deps: [[a]]", "deps.0: "),
        ("outs: [3]", "outs.0: expected a path, or {path: {cache: BOOL, persist: BOOL}}"),
        ("params: [3]", "params.0: expected a param key (train.lr), or {params-file: [keys]}"),
    ],
)
def test_a_value_of_the_wrong_type(tmp_path: Path, line: str, says: str) -> None:
    error = config_error(tmp_path, f"stages:\n  train:\n    cmd: x\n    {line}\n")
    assert error.message.startswith(f"conveyor.yaml:4: stage 'train': {says}")


def test_a_wrong_cmd_type(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: {a: b}\n")
    assert error.message.startswith("conveyor.yaml:3: stage 'train': cmd")
    assert "expected a command" in error.message


def test_an_unknown_param_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    params: [train.lrr]\n")
    assert (
        error.message == "conveyor.yaml:4: stage 'train' (params.yaml): unknown param 'train.lrr'"
    )
    assert error.hint == "did you mean 'train.lr'?"


def test_an_unknown_param_key_in_another_file(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        "stages:\n  train:\n    cmd: x\n    params: [o.yaml:dept]\n",
        {"o.yaml": "depth: 1\n"},
    )
    assert error.message == "conveyor.yaml:4: stage 'train' (o.yaml): unknown param 'dept'"
    assert error.hint == "did you mean 'depth'?"


def test_a_missing_params_file(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    params: [nope.yaml:k]\n")
    assert error.message == "conveyor.yaml:4: stage 'train': params file nope.yaml does not exist"
    assert error.hint is not None and "nope.yaml" in error.hint
    error = config_error(
        tmp_path, "stages:\n  train:\n    cmd: x\n    params:\n      - nope.yaml:\n"
    )
    assert error.message == "conveyor.yaml:4: stage 'train': params file nope.yaml does not exist"


def test_an_interpolation_naming_nothing(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    deps: [a]\n    cmd: fit ${train.lrr}\n")
    assert error.message.startswith("conveyor.yaml:4: stage 'train': ${train.lrr} names nothing")
    assert error.hint == "did you mean 'train.lr'?"


def test_a_cycle(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        """
        stages:
          a:
            cmd: x
            deps: [b.out]
            outs: [a.out]
          b:
            cmd: y
            deps: [a.out]
            outs: [b.out]
        """,
    )
    assert error.message == "conveyor.yaml:3: the stages form a cycle: a -> b -> a"
    assert error.hint is not None


def test_two_stages_writing_one_path(tmp_path: Path) -> None:
    error = config_error(
        tmp_path, "stages:\n  a:\n    cmd: x\n    outs: [m]\n  b:\n    cmd: y\n    metrics: [m]\n"
    )
    assert error.message == "conveyor.yaml:5: stages 'a' and 'b' both write m"
    assert error.hint is not None


def test_an_out_inside_another_out(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        "stages:\n  a:\n    cmd: x\n    outs: [data]\n  b:\n    cmd: y\n    outs: [data/x]\n",
    )
    assert error.message == (
        "conveyor.yaml:5: stage 'b' writes data/x, inside data, which stage 'a' writes"
    )
    assert error.hint is not None


@pytest.mark.parametrize(
    ("key", "path"),
    [("deps", "../x"), ("outs", "a/../../x"), ("metrics", ".."), ("plots", "../p.csv")],
)
def test_a_path_escaping_the_project(tmp_path: Path, key: str, path: str) -> None:
    error = config_error(tmp_path, f"stages:\n  train:\n    cmd: x\n    {key}: ['{path}']\n")
    assert error.message.startswith("conveyor.yaml:4: stage 'train': ")
    assert error.message.endswith(f"{path} is outside the project")
    assert error.hint is not None and "wdir" in error.hint


def test_a_wdir_escaping_the_project(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    wdir: ..\n")
    assert error.message == "conveyor.yaml:4: stage 'train': wdir .. is outside the project"


def test_a_params_file_escaping_the_project(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    params: [../p.yaml:k]\n")
    assert error.message == (
        "conveyor.yaml:4: stage 'train': params file ../p.yaml is outside the project"
    )


@pytest.mark.parametrize(
    ("path", "says"),
    [("/etc/passwd", "is absolute"), (".conveyor/x", "conveyor's own folder"), (".", "root")],
)
def test_paths_a_stage_may_not_name(tmp_path: Path, path: str, says: str) -> None:
    error = config_error(tmp_path, f"stages:\n  train:\n    cmd: x\n    outs: ['{path}']\n")
    assert error.message.startswith("conveyor.yaml:4: stage 'train': out ")
    assert says in error.message


def test_a_wdir_that_is_no_folder(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    wdir: nope\n")
    assert error.message == "conveyor.yaml:4: stage 'train': wdir nope is no folder"


def test_an_out_entry_with_two_paths(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  train:\n    cmd: x\n    outs:\n      - {a: , b: }\n")
    assert error.message.startswith("conveyor.yaml:4: stage 'train': each entry of 'outs'")


@pytest.mark.parametrize("name", ["a/b", "a@b", "a b", "a:b"])
def test_a_bad_stage_name(tmp_path: Path, name: str) -> None:
    error = config_error(tmp_path, f"stages:\n  ok:\n    cmd: x\n  '{name}':\n    cmd: y\n")
    assert error.message == (
        f"conveyor.yaml:4: stage name {name!r} may hold only letters, digits, '_', '-' and '.'"
    )


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("- a\n", "conveyor.yaml: the top level must be a mapping with a 'stages:' section"),
        ("stages: [a]\n", "conveyor.yaml:1: 'stages' must map stage names to stages"),
        (
            "stages:\n  a: echo\n",
            "conveyor.yaml:2: stage 'a' must be a mapping with at least 'cmd'",
        ),
        ("stages:\n  a:\n    cmd: [x\n", "conveyor.yaml:4: not valid YAML"),
    ],
)
def test_a_malformed_conveyor_yaml(tmp_path: Path, yaml: str, message: str) -> None:
    assert config_error(tmp_path, yaml).message.startswith(message)


def test_a_stage_that_is_no_mapping_is_shown_one(tmp_path: Path) -> None:
    error = config_error(tmp_path, "stages:\n  a: echo\n")
    assert error.hint == "write it as a: {cmd: python train.py, deps: [...]}"


def test_a_malformed_params_file_names_it(tmp_path: Path) -> None:
    error = config_error(
        tmp_path, "stages:\n  s:\n    cmd: x\n    params: [p.json:a]\n", {"p.json": "{oops"}
    )
    assert error.message.startswith("p.json: not valid JSON")


# the compiled cache

CACHE = Path(".conveyor/cache/pipeline.json")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".conveyor").mkdir()
    write(tmp_path, {"conveyor.yaml": PIPELINE, "params.yaml": PARAMS})
    return tmp_path


def no_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(root: Path, overrides: Overrides) -> Pipeline:
        raise AssertionError("compiled although nothing changed")

    monkeypatch.setattr(definition, "compile_pipeline", fail)


def test_load_compiles_then_reads_an_equal_pipeline_from_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = definition.load(project)
    assert first == definition.compile_pipeline(project, [])
    assert (project / CACHE).is_file()
    no_compile(monkeypatch)
    second = definition.load(project)
    assert second == first
    assert second.stages["train"].outs == first.stages["train"].outs
    assert isinstance(second.stages["train"].outs[1], Out)


def test_a_cached_load_imports_no_yaml_and_no_pydantic(project: Path) -> None:
    """A no-op run or status reads the compiled pipeline: the loader is never reached."""
    definition.load(project)
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from conveyor.pipeline import definition\n"
        f"assert definition.load(Path({str(project)!r})).stages\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'pydantic_core')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_rich_pipeline_survives_the_cache(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "sub").mkdir()
    write(
        project,
        {
            "conveyor.yaml": """\
                vars: [v.yaml]
                stages:
                  fit:
                    foreach: ${sizes}
                    do:
                      wdir: sub
                      cmd:
                        - fit ${item}
                        - echo ${train.kernel}
                      params: [{../o.yaml: }, ../params.yaml:train]
                      outs:
                        - out-${item}: {persist: true}
                      env: {N: 1}
                      frozen: true
                      desc: fit
            """,
            "v.yaml": "sizes: [1, 2]\n",
            "o.yaml": "x: null\ny: [1, {z: true}]\n",
        },
    )
    first = definition.load(project)
    no_compile(monkeypatch)
    assert definition.load(project) == first
    assert first.stages["fit@2"].outs == (Out("sub/out-2", persist=True),)


def test_editing_conveyor_yaml_recompiles(project: Path) -> None:
    definition.load(project)
    text = (project / "conveyor.yaml").read_text()
    (project / "conveyor.yaml").write_text(text.replace("python train.py", "python fit.py  "))
    assert definition.load(project).stages["train"].cmd == ("python fit.py   --lr 0.1",)


def test_editing_params_yaml_recompiles(project: Path) -> None:
    definition.load(project)
    # Same size, same second: the cache must look at the content.
    (project / "params.yaml").write_text(PARAMS.replace("lr: 0.1", "lr: 0.2"))
    p = definition.load(project)
    assert p.stages["train"].cmd == ("python train.py --lr 0.2",)
    assert p.value_of("params.yaml", "train")["lr"] == 0.2


def test_editing_another_params_file_or_a_vars_file_recompiles(project: Path) -> None:
    write(
        project,
        {
            "conveyor.yaml": """\
                vars: [v.yaml]
                stages:
                  s:
                    cmd: x ${n}
                    params: [o.json:k]
            """,
            "v.yaml": "n: 1\n",
            "o.json": '{"k": 1}',
        },
    )
    assert definition.load(project).stages["s"].cmd == ("x 1",)
    (project / "o.json").write_text('{"k": 2}')
    assert definition.load(project).value_of("o.json", "k") == 2
    (project / "v.yaml").write_text("n: 2\n")
    assert definition.load(project).stages["s"].cmd == ("x 2",)


def test_creating_and_removing_conveyor_yaml(project: Path) -> None:
    (project / "conveyor.yaml").unlink()
    assert definition.load(project).stages == {}
    write(project, {"conveyor.yaml": PIPELINE})
    assert list(definition.load(project).stages) == ["prepare", "train"]


def test_overrides_are_part_of_the_cache_key(project: Path) -> None:
    assert definition.load(project).value_of("params.yaml", "train.lr") == 0.1
    over = definition.load(project, [("params.yaml", "train.lr", 0.3)])
    assert over.stages["train"].cmd == ("python train.py --lr 0.3",)
    assert definition.load(project).value_of("params.yaml", "train.lr") == 0.1


def test_an_error_is_raised_again_not_cached(project: Path) -> None:
    definition.load(project)
    (project / "conveyor.yaml").write_text("stages:\n  s:\n    cmd: x\n    outz: [a]\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="unknown key 'outz'"):
            definition.load(project)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json {",
        b"[1, 2]",
        b'{"format": 1}',
        b'{"format": 999, "key": "x", "sources": []}',
        b'{"format": 1, "key": "x", "sources": "conveyor.yaml"}',
        b"\xff\xfe",
    ],
)
def test_a_corrupt_cache_is_ignored_and_replaced(project: Path, content: bytes) -> None:
    expected = definition.compile_pipeline(project, [])
    (project / CACHE).parent.mkdir(parents=True, exist_ok=True)
    (project / CACHE).write_bytes(content)
    assert definition.load(project) == expected
    assert json.loads((project / CACHE).read_bytes())["format"] == definition._FORMAT


def test_a_cache_with_the_right_key_but_broken_stages_is_ignored(project: Path) -> None:
    expected = definition.load(project)
    data: dict[str, Any] = json.loads((project / CACHE).read_bytes())
    for field, broken in [("stages", [["train"]]), ("upstream", []), ("values", [1])]:
        (project / CACHE).write_text(json.dumps({**data, field: broken}))
        assert definition.load(project) == expected


def test_values_json_cannot_hold_compile_every_time(project: Path) -> None:
    write(project, {"params.yaml": PARAMS + "when: 2024-01-02\n"})
    write(project, {"conveyor.yaml": "stages:\n  s:\n    cmd: x ${when}\n"})
    first = definition.load(project)
    assert first.stages["s"].cmd == ("x 2024-01-02",)
    assert definition.load(project) == first


def test_a_mistake_repeated_by_a_matrix_is_shown_twenty_times_then_counted(
    tmp_path: Path,
) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "stages:\n  t:\n    matrix: {a: [" + ", ".join(map(str, range(30))) + "]}\n"
        "    cmd: x\n    outz:\n      - m-${item.a}\n"
    )
    with pytest.raises(ConfigError) as info:
        definition.compile_pipeline(tmp_path, [])
    lines = info.value.message.splitlines()
    assert lines[0] == "conveyor.yaml:5: stage 't@a-0': unknown key 'outz'"
    assert len(lines) == 2 * 20 + 1 and lines[-1] == "error: ... and 10 more errors"
