"""conveyor serve's defaults from the environment (a container's entrypoint is configured so);
the server itself is tested under tests/serve."""

from __future__ import annotations

import pytest

from tests.conftest import Project


def test_variables_stand_in_for_flags(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_MODEL", "no-such-folder")
    result = project.run("serve")
    assert result.code != 0 and "no-such-folder" in result.err  # the model the variable names
    monkeypatch.setenv("CONVEYOR_PORT", "eighty")
    result = project.run("serve")
    assert result.code == 2 and "CONVEYOR_PORT='eighty' is not a whole number" in result.err
    monkeypatch.setenv("CONVEYOR_PORT", "8080")
    monkeypatch.setenv("CONVEYOR_WORKERS", "0")
    result = project.run("serve")
    assert result.code == 2 and "--workers must be at least 1" in result.err


def test_without_a_model_or_the_variable_serve_asks_for_one(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_MODEL", raising=False)
    result = project.run("serve")
    assert result.code == 2 and "name the models to serve" in result.err
