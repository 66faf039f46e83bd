"""conveyor deploy, rollout status|history|watch|promote|pause|resume|abort, rollback: the
commands on a real project, in-process."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project
from tests.deploy.projects import environment, package


@pytest.fixture
def proj(project: Project) -> Project:
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment())
    return project


def test_deploy_and_steer_a_rollout(proj: Project) -> None:
    out = proj.ok("rollout", "status")
    assert "production" in out and "never deployed" in out

    out = proj.ok("deploy", "clf/1", "--env", "production")
    assert "version 1 now serves all of production" in out
    out = proj.ok("deploy", "clf/2", "--env", "production")
    assert "rolling out clf version 2 over version 1" in out and "20 % candidate" in out
    assert "rollout watch production" in out

    out = proj.ok("rollout", "status", "production")
    assert "progressing" in out and "20 % candidate" in out
    shown = json.loads(proj.ok("rollout", "status", "--json"))
    assert shown[0]["record"]["candidate"] == 2 and shown[0]["record"]["weight"] == 20

    assert "paused" in proj.ok("rollout", "pause", "production")
    assert "progressing" in proj.ok("rollout", "resume", "production")
    out = proj.ok("rollout", "promote", "--full", "production")
    assert "promoted" in out and "version 2 serves all traffic" in out
    out = proj.ok("rollback", "production")
    assert "rolled_back" in out and "version 1 serves all traffic" in out

    out = proj.ok("rollout", "history")  # the only environment
    for word in ("started", "paused", "resumed", "promoted", "rolled_back"):
        assert word in out, out
    events = json.loads(proj.ok("rollout", "history", "production", "--json"))
    assert events[0]["kind"] == "rollout.promoted" or events[0]["kind"].startswith("rollout.")


def test_watch_ends_with_the_rollout(proj: Project) -> None:
    proj.ok("deploy", "clf/1", "--env", "production")
    proj.ok("deploy", "clf/2", "--env", "production")
    result = proj.run("rollout", "watch", "production", "--timeout", "0.3", "--interval", "0.1")
    assert result.code == 1 and "still progressing" in result.out
    proj.ok("rollout", "abort", "production", "--reason", "not today")
    result = proj.run("rollout", "watch", "production", "--timeout", "5")
    assert result.code == 1 and "aborted" in result.out


def test_mistakes_are_errors_not_tracebacks(proj: Project) -> None:
    result = proj.run("deploy", "clf/1", "--env", "staging")
    assert result.code == 2 and "staging" in result.err and "Traceback" not in result.err
    result = proj.run("rollout", "abort", "production")
    assert result.code != 0 and "no deployment" in result.err and "hint:" in result.err
    result = proj.run("rollout", "watch", "production", "--timeout", "0")
    assert result.code == 2
    proj.ok("deploy", "clf/1", "--env", "production")
    result = proj.run("deploy", "clf/1", "--env", "production")
    assert result.code != 0 and "Traceback" not in result.err


def test_serve_takes_models_or_an_environment(proj: Project) -> None:
    result = proj.run("serve")
    assert result.code == 2 and "--env ENV" in result.err
    result = proj.run("serve", "models:/clf/1", "--env", "production")
    assert result.code == 2 and "not both" in result.err
    result = proj.run("serve", "--env", "prodution")
    assert result.code == 2 and "production" in result.err and "Traceback" not in result.err
