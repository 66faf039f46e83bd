"""What pull and push move of the registry, with three clones sharing one metadata store (SQLite
file or PostgreSQL) and one remote: one teammate's registered-but-unpushed version warns the
others, naming it and who registered it, and fails nobody's pull, push or CI job."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conveyor.foundation.errors import ConveyorError
from tests.conftest import Project
from tests.registry.test_versions import TRAIN


@pytest.fixture(params=["sqlite", "postgresql"])
def team(
    request: pytest.FixtureRequest,
    project: Project,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Project]:
    """The trainer's project, trained and pushed; a teammate's and a newcomer's clones."""
    shared = (
        request.getfixturevalue("pg_db")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path / 'shared.db'}"
    )
    monkeypatch.setenv("CONVEYOR_DB", shared)  # every clone reads and writes the same store
    remote = tmp_path / "remote"
    trainer = project
    trainer.write("train.py", TRAIN)
    trainer.write(
        "conveyor.yaml",
        f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    deps: [train.py]\n"
        "    outs: [model]\n",
    )
    monkeypatch.setenv("LOGNAME", "trainer")
    trainer.ok("run")
    trainer.ok("remote", "add", "store", str(remote), "--default")
    trainer.ok("push")
    trainer.git("add", "-A")
    trainer.git("commit", "-qm", "a model")
    clones = {"trainer": trainer}
    for name in ("teammate", "newcomer"):
        root = tmp_path / name
        shutil.copytree(trainer.root, root, ignore=shutil.ignore_patterns(".conveyor", "model"))
        clone = Project(root, capsys)
        clone.ok("init")
        clone.ok("remote", "add", "store", str(remote), "--default")
        clones[name] = clone
    return clones


def _package(who: Project, folder: str, extra: str) -> str:
    """A package of its own (the trained one plus a file): in no pointer and no lock."""
    shutil.copytree(who.root / "model", who.root / folder)
    (who.root / folder / "NOTES").write_text(extra)
    return folder


def _register(
    who: Project, user: str, monkeypatch: pytest.MonkeyPatch, folder: str, alias: str = ""
) -> str:
    monkeypatch.setenv("LOGNAME", user)
    out = who.ok("models", "register", "tiny", folder)
    version = out.split("version ")[1].split()[0]
    if alias:
        who.ok("models", "alias", f"tiny@{alias}", version)
    return str(json.loads(who.ok("models", "show", f"tiny/{version}", "--json"))["package"])


def _in_cache(who: Project, ref: str) -> bool:
    oid = ref.removesuffix(".tree")
    return (who.root / ".conveyor" / "cache" / "objects" / oid[:2] / oid[2:]).exists()


def test_an_unpushed_version_warns_and_fails_no_ones_pull(
    team: dict[str, Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer, teammate, newcomer = team["trainer"], team["teammate"], team["newcomer"]
    prod = _register(trainer, "trainer", monkeypatch, _package(trainer, "a1", "1"), "production")
    old = _register(trainer, "trainer", monkeypatch, _package(trainer, "a2", "2"))
    trainer.ok("push")
    teammate.ok("pull")
    staging = _register(teammate, "teammate", monkeypatch, _package(teammate, "b1", "3"), "staging")
    _register(
        teammate, "teammate", monkeypatch, _package(teammate, "b2", "4")
    )  # version 4: never pushed

    monkeypatch.setenv("LOGNAME", "newcomer")
    pulled = newcomer.run("pull")
    assert pulled.code == 0, pulled.err
    warnings = [line for line in pulled.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, pulled.err  # only the aliased version is needed
    assert "model tiny version 3 (registered by teammate)" in warnings[0]
    assert "teammate should run `conveyor push`" in warnings[0]
    assert ".conveyor" not in pulled.err and "Traceback" not in pulled.err
    assert _in_cache(newcomer, prod) and not _in_cache(newcomer, old)  # aliased only
    assert (newcomer.root / "model").is_dir()  # the data was pulled and checked out

    every = newcomer.run("pull", "--all-models")
    assert every.code == 0 and _in_cache(newcomer, old)
    assert "tiny version 3 (registered by teammate)" in every.err
    assert "tiny version 4 (registered by teammate)" in every.err

    assert newcomer.run("push").code == 0  # teammate's versions are teammate's to push
    ci = newcomer.run("ci")
    assert ci.code == 0, ci.out + ci.err
    assert "tiny version 3 (registered by teammate)" in ci.err

    with pytest.raises(ConveyorError) as failed:
        _load(newcomer, "models:/tiny@staging")
    assert "model tiny version 3 (registered by teammate)" in failed.value.message
    assert ".conveyor" not in failed.value.message and "teammate" in str(failed.value.hint)
    newcomer.ok("remote", "remove", "store")
    with pytest.raises(ConveyorError, match=r"version 3 .* no default remote is set"):
        _load(newcomer, "models:/tiny@staging")
    newcomer.ok("remote", "add", "store", str(newcomer.root.parent / "remote"), "--default")

    monkeypatch.setenv("LOGNAME", "teammate")
    teammate.ok("push")
    monkeypatch.setenv("LOGNAME", "newcomer")
    again = newcomer.run("pull")
    assert again.code == 0 and "warning" not in again.err and _in_cache(newcomer, staging)
    loaded = _load(newcomer, "models:/tiny@staging")
    np.testing.assert_array_equal(loaded.predict(np.array([[0.0], [3.0]])), [0, 1])
    # A checked-out package (binaries) stays out of git.
    newcomer.git("add", "-A")
    assert ".conveyor/models" not in newcomer.git("status", "--porcelain", "--untracked-files=all")


def _load(who: Project, uri: str) -> object:
    import os

    from conveyor import models

    cwd = os.getcwd()
    os.chdir(who.root)
    try:
        return models.load(uri)
    finally:
        os.chdir(cwd)


TRAIN_WITH_PREDICTIONS = (
    TRAIN
    + """
import sys
flip = len(sys.argv) > 1
with open("preds.csv", "w") as f:
    rows = "".join(f"{i},{i % 2},{(i + flip) % 2}\\n" for i in range(8))
    f.write("id,label,prediction\\n" + rows)
"""
)


def test_pull_fetches_what_the_gates_compare_of_an_aliased_version(
    team: dict[str, Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion's predictions file, recorded by an older run than the lock's, is what
    `conveyor check` pairs the candidate's with: a fresh clone's pull must bring it."""
    trainer, newcomer = team["trainer"], team["newcomer"]
    trainer.write("train.py", TRAIN_WITH_PREDICTIONS)
    stage = (
        "stages:\n  train:\n    cmd: {cmd}\n    deps: [train.py]\n    outs: [model, preds.csv]\n"
    )
    gates = "gates:\n  predictions: preds.csv\n  checks:\n    - metric: train.acc\n      min: 0\n"
    trainer.write("conveyor.yaml", stage.format(cmd=f"{sys.executable} train.py") + gates)
    trainer.ok("run", "--name", "champion")
    run = json.loads(trainer.ok("runs", "list", "--json"))[0]["id"]
    trainer.ok("models", "register", "tiny", "model", "--run", run)
    trainer.ok("models", "alias", "tiny@production", "1")
    shown = json.loads(trainer.ok("models", "show", "tiny@production", "--json"))
    champion_preds = shown["lineage"]["outs"]["preds.csv"]
    trainer.write("conveyor.yaml", stage.format(cmd=f"{sys.executable} train.py flip") + gates)
    trainer.ok("run", "--name", "candidate")
    trainer.ok("push")
    for name in ("train.py", "conveyor.yaml", "conveyor.lock"):  # newcomer's `git pull`
        shutil.copy(trainer.root / name, newcomer.root / name)
    assert champion_preds not in (newcomer.root / "conveyor.lock").read_text()

    pulled = newcomer.run("pull")
    assert pulled.code == 0 and "warning" not in pulled.err, pulled.err
    assert _in_cache(newcomer, champion_preds)


def test_a_package_reference_edited_in_the_store_leads_nowhere(
    project: Project, tmp_path: Path
) -> None:
    """The metadata store is shared (teammates, CI): a version row naming its package
    ``../../x.tree`` must not lead loading or serving (both materialize) out of the project.
    The row is given as the store returns it: the store itself keeps any text."""
    from conveyor.data.checkout import checkout
    from conveyor.data.pointer import Pointer
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import DataError, PathError
    from conveyor.registry.records import ModelVersion
    from conveyor.registry.stored import materialize

    outside = tmp_path / "outside"
    models = project.root / ".conveyor" / "models"
    ref = f"{Path('..', '..', '..', 'outside', 'evil')}.tree"
    assert (models / ref).resolve().parent == outside  # where it would have landed
    version = ModelVersion("tiny", 3, ref, "sklearn", None, 0.0, "x", {})
    with Workspace(project.root) as ws:
        with pytest.raises(DataError, match=r"tiny version 3: .* is not a tree hash"):
            materialize(ws, version)
        # and checkout, below it, refuses such a pointer value on its own
        climbing = Pointer(models / "x.cvy", "../../../outside/evil", "0" * 64, True, 0, 0)
        with pytest.raises(PathError, match="must be relative"):
            checkout(ws, [climbing], force=True)
    assert not outside.exists()
