"""conveyor.yaml read once, its sections validated by the layers that registered them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conveyor.gates.config
import conveyor.pipeline.definition
import conveyor.registry.config
import conveyor.tune.spec  # noqa: F401  (each registers its section)
from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import ConfigErrors
from conveyor.foundation.yamlio import Located


def write(root: Path, text: str) -> None:
    (root / project.FILE).write_text(textwrap.dedent(text))


def check_error(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        project.check(root)
    return info.value


@pytest.fixture
def restore() -> Iterator[None]:
    """Put back what a test registers: the registry is the process's."""
    before = {name: project.registered(name) for name in project.names()}
    yield
    for name in list(project.names()):
        entry = before.get(name)
        if entry is None:
            project._SECTIONS.pop(name)
        else:
            project.register(name, entry.parse, owner=entry.owner)


def test_the_file_is_parsed_once_per_state_of_its_bytes(tmp_path: Path) -> None:
    assert project.document(tmp_path) is None
    write(tmp_path, "models:\n  a: {path: m}\n")
    first = project.document(tmp_path)
    assert first is not None and project.document(tmp_path) is first
    write(tmp_path, "models:\n  b: {path: m}\n")  # same size: still seen
    second = project.document(tmp_path)
    assert second is not first and second is not None and "b" in second.data["models"]


def test_an_unknown_section_is_one_error_with_the_nearest_name(tmp_path: Path) -> None:
    write(tmp_path, "stages: {}\ngate:\n  - metric: a\n    min: 1\n")
    error = check_error(tmp_path)
    assert error.message == "conveyor.yaml:2: unknown section 'gate'"
    assert error.hint == "did you mean 'gates'?"


def test_every_mistake_in_the_file_is_reported_together_in_line_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        stages:
          train:
            cmd: python train.py
            outz: [model.pkl]
        gates:
          - metric: eval.auc
            min: high
        tune:
          objective: {metric: eval.auc}
          space: {train.C: {type: float, low: 0.1, high: 1}}
          trails: 5
        models:
          clf: {pth: models/clf}
        deplyo: {}
        """,
    )
    error = check_error(tmp_path)
    assert isinstance(error, ConfigErrors)
    messages = [part.message for part in error.parts]
    assert messages == [
        "conveyor.yaml:4: stage 'train': unknown key 'outz'",
        "conveyor.yaml:7: min: a number, not 'high'",
        "conveyor.yaml:11: unknown key 'trails' in tune",
        "conveyor.yaml:13: model 'clf' needs a path",
        "conveyor.yaml:13: model 'clf': unknown key 'pth'",
        "conveyor.yaml:14: unknown section 'deplyo'",
    ]
    assert [part.hint for part in error.parts][-1] == "did you mean 'deploy'?"
    assert "error: conveyor.yaml:14: unknown section 'deplyo'" in error.message


def test_a_valid_file_passes_and_each_section_has_its_value(tmp_path: Path, restore: None) -> None:
    project.register("deploy", None)  # as before its layer is imported (it may be, in this run)
    project.register("monitor", None)
    write(
        tmp_path,
        """\
        stages:
          train: {cmd: python train.py, outs: [model.pkl]}
        gates: [{metric: eval.auc, min: 0.8}]
        models:
          clf: {path: models/clf}
        deploy: {production: {anything: [goes]}}
        monitor: 7
        """,
    )
    (tmp_path / "params.yaml").write_text("")
    project.check(tmp_path)
    assert project.section(tmp_path, "models") == {"clf": "models/clf"}
    assert project.section(tmp_path, "gates").checks[0].name == "eval.auc >= 0.8"
    assert list(project.section(tmp_path, "stages").stages) == ["train"]
    # a section no layer has registered yet is accepted as written
    assert project.section(tmp_path, "deploy") == {"production": {"anything": ["goes"]}}
    assert project.section(tmp_path, "monitor") == 7
    assert project.section(tmp_path, "tune") is None


def test_a_later_layer_plugs_its_section_in_without_touching_the_loader(
    tmp_path: Path, restore: None
) -> None:
    seen: list[tuple[Any, str]] = []

    def parse_deploy(raw: Any, doc: Located, root: Path) -> dict[str, str]:
        seen.append((raw, doc.where("deploy", "production")))
        if "canary" not in raw["production"]:
            raise ConfigError(f"{doc.where('deploy', 'production')}: production needs a strategy")
        return {"production": raw["production"]}

    project.register("deploy", parse_deploy, owner="tests")
    project.register("alerts", lambda raw, doc, root: len(raw), owner="tests")  # a new section
    write(tmp_path, "deploy:\n  production: blue-green\nalerts: [a, b]\n")
    error = check_error(tmp_path)
    assert error.message == "conveyor.yaml:2: production needs a strategy"
    assert seen == [({"production": "blue-green"}, "conveyor.yaml:2")]
    write(tmp_path, "deploy:\n  production: canary\nalerts: [a, b]\nalert: 1\n")
    assert check_error(tmp_path).hint == "did you mean 'alerts'?"
    write(tmp_path, "deploy:\n  production: canary\nalerts: [a, b]\n")
    project.check(tmp_path)
    assert project.section(tmp_path, "deploy") == {"production": "canary"}
    assert project.section(tmp_path, "alerts") == 2


def test_a_top_level_that_is_no_mapping(tmp_path: Path) -> None:
    write(tmp_path, "- stages\n")
    assert check_error(tmp_path).message == (
        "conveyor.yaml: the top level must be a mapping with a 'stages:' section"
    )


def test_a_process_validates_only_the_layers_it_imports(tmp_path: Path) -> None:
    """A model server reads models: without importing the pipeline, which would compile stages."""
    write(tmp_path, "stages:\n  bad: 1\nmodels:\n  clf: {path: models/clf}\n")
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from conveyor.registry import config\nfrom conveyor.foundation import project\n"
        f"print(config.declared(Path({str(tmp_path)!r})))\n"
        f"project.check(Path({str(tmp_path)!r}))\n"
        "loaded = ('conveyor.pipeline', 'conveyor.gates', 'conveyor.tune')\n"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["{'clf': 'models/clf'}", "[]"]
    with pytest.raises(ConfigError, match="stage 'bad' must be a mapping"):
        project.check(tmp_path)  # here the pipeline is imported: its section is checked
