"""The deploy flows on a real project and its SQLite store: deploy, steer, roll back, read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.deploy import flows
from conveyor.foundation.errors import ConveyorError
from conveyor.registry import queries
from conveyor.tracking.db import opened
from tests.conftest import Project
from tests.deploy.projects import environment, package


@pytest.fixture
def proj(project: Project) -> Project:
    """Versions 1 to 3 of ``clf`` and an environment ``production`` (canary 20 -> 50 -> 100)."""
    for n in (1, 2, 3):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment())
    return project


def alias(root: Path) -> int | None:
    with opened(root) as store:
        return queries.aliases(store.execute, "clf").get("production")


def kinds(root: Path) -> list[str]:
    return [e.kind for e in flows.history(root, "production")]


def test_first_deploy_serves_at_once_then_a_rollout_starts(proj: Project) -> None:
    first = flows.deploy(proj.root, "production", "clf/1")
    assert (first.stable, first.candidate, first.status) == (1, None, "promoted")
    assert first.split() == {1: 100.0}
    assert alias(proj.root) == 1
    second = flows.deploy(proj.root, "production", "models:/clf/2")
    assert (second.stable, second.candidate, second.status) == (1, 2, "progressing")
    assert second.weight == 20 and second.split() == {1: 80.0, 2: 20.0}
    assert alias(proj.root) == 1  # the alias moves when the candidate is promoted, not before
    assert "rollout.started" in kinds(proj.root)


def test_refusals_say_why(proj: Project) -> None:
    flows.deploy(proj.root, "production", "clf/1")
    with pytest.raises(ConveyorError):  # already the stable version
        flows.deploy(proj.root, "production", "1")
    flows.deploy(proj.root, "production", "2")
    with pytest.raises(ConveyorError):  # a rollout is on
        flows.deploy(proj.root, "production", "3")
    with pytest.raises(ConveyorError, match="environment production serves clf"):
        flows.deploy(proj.root, "production", "other/1")
    with pytest.raises(ConveyorError, match="productoin"):
        flows.deploy(proj.root, "productoin", "clf/3")


def test_a_version_whose_gates_failed_is_refused(proj: Project) -> None:
    from conveyor.tracking import api

    run = api.start(root=proj.root)
    run.set_tags({"gates.verdict": "fail", "gates.failed": "accuracy"})
    run.end()
    package(proj.root, "v4")
    proj.ok("models", "register", "clf", "v4", "--run", run.id)
    flows.deploy(proj.root, "production", "clf/1")
    with pytest.raises(ConveyorError, match=r"gates did not pass \(accuracy\)") as err:
        flows.deploy(proj.root, "production", "clf/4")
    assert err.value.hint and "conveyor check" in err.value.hint
    (rollout,) = flows.status(proj.root, "production")
    assert rollout.record is not None and rollout.record.candidate is None


def test_abort_promote_and_rollback_by_hand(proj: Project) -> None:
    flows.deploy(proj.root, "production", "clf/1")
    flows.deploy(proj.root, "production", "clf/2")
    paused = flows.pause(proj.root, "production")
    assert paused.status == "paused" and paused.weight == 20
    resumed = flows.resume(proj.root, "production")
    assert resumed.status == "progressing"
    aborted = flows.abort(proj.root, "production", "looks wrong")
    assert (aborted.status, aborted.weight, aborted.candidate) == ("aborted", 0, 2)
    assert aborted.split() == {1: 100.0}
    assert alias(proj.root) == 1
    with pytest.raises(ConveyorError):  # nothing to abort any more
        flows.abort(proj.root, "production")

    flows.deploy(proj.root, "production", "clf/3")
    stepped = flows.promote(proj.root, "production")
    assert stepped.active and stepped.step > 0
    done = flows.promote(proj.root, "production", full=True)
    assert (done.stable, done.candidate, done.status, done.previous) == (3, None, "promoted", 1)
    assert alias(proj.root) == 3

    back = flows.rollback(proj.root, "production")
    assert (back.stable, back.status) == (1, "rolled_back") and back.split() == {1: 100.0}
    assert alias(proj.root) == 1
    seen = kinds(proj.root)
    for kind in ("rollout.paused", "rollout.resumed", "rollout.aborted", "rollout.promoted",
                 "rollout.rolled_back"):  # fmt: skip
        assert kind in seen, seen


def test_status_and_history_before_any_deploy(proj: Project) -> None:
    (rollout,) = flows.status(proj.root)
    assert rollout.env.name == "production" and rollout.record is None
    assert flows.history(proj.root, "production") == []
    with pytest.raises(ConveyorError, match="no deployment"):
        flows.promote(proj.root, "production")


def test_a_rollout_on_postgresql(
    project: Project, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same flows and a controller tick on the PostgreSQL store (the server-backed one)."""
    from conveyor.deploy.analysis import Observations, Side
    from conveyor.deploy.config import environment as load_environment
    from conveyor.deploy.controller import Controller

    class Failing:
        def observe(self, record: object, labels: bool) -> Observations:
            return Observations(Side(requests=100), Side(requests=100, errors=50))

        def restart(self) -> None:
            pass

        def idle(self) -> None:
            pass

    monkeypatch.setenv("CONVEYOR_DB", pg_db)
    for n in (1, 2, 3):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment())
    flows.deploy(project.root, "production", "clf/1")
    flows.deploy(project.root, "production", "clf/2")
    env = load_environment(project.root, "production")
    ctl = Controller(project.root, env, url="http://127.0.0.1:9", source=Failing())
    record = ctl.tick()
    ctl.close()
    assert record is not None and (record.status, record.candidate) == ("aborted", 2)
    flows.deploy(project.root, "production", "clf/3")
    done = flows.promote(project.root, "production", full=True)
    assert (done.stable, done.previous) == (3, 1) and alias(project.root) == 3
    back = flows.rollback(project.root, "production")
    assert back.stable == 1 and alias(project.root) == 1
    (rollout,) = flows.status(project.root, "production")
    assert rollout.record is not None and rollout.analysis is not None
    assert rollout.analysis["verdict"] == "fail"
    kinds = [e.kind for e in flows.history(project.root, "production")]
    assert kinds.count("rollout.started") == 3 and kinds[-1] == "rollout.rolled_back"
    # What a server following the environment reads (psycopg, no SQLAlchemy): the events
    # by kind and the last analysis; read again after the last id, nothing new.
    from conveyor.registry.stored import deployment_activity

    counts, last, analysis = deployment_activity(project.root, "production")
    assert counts == Counter(kinds) and sum(counts.values()) == len(kinds)
    assert analysis is not None and analysis.data["verdict"] == "fail"
    assert deployment_activity(project.root, "production", after=last) == ({}, last, None)
