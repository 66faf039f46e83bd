"""A project the test's own process works in, with no run attached."""

from __future__ import annotations

import pytest

from conveyor.tracking import api
from tests.conftest import Project


@pytest.fixture
def in_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("CONVEYOR_RUN_ID", raising=False)
    monkeypatch.delenv("CONVEYOR_ROOT", raising=False)
    monkeypatch.setattr(api, "_current", None)
    return project
