"""The registry on SQLite and PostgreSQL: versions, aliases with history, URIs, lineage, and
loading a registered version in a second clone that shares the database and a remote."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.registry.versions import Uri, parse_uri
from tests.conftest import Project

TRAIN = """\
import numpy as np
from sklearn.linear_model import LogisticRegression
from conveyor import models
x = np.array([[0.0], [1.0], [2.0], [3.0]])
models.save(LogisticRegression().fit(x, [0, 0, 1, 1]), "model", example=x[:2], name="tiny")
"""


def test_uris() -> None:
    assert parse_uri("models:/clf@production") == Uri("clf", alias="production")
    assert parse_uri("models:/clf/3") == Uri("clf", version=3)
    assert parse_uri("clf") == Uri("clf")
    for bad in ("models:/clf/0", "models:/clf/x", "models:/@a", "clf@Prod", "a b"):
        with pytest.raises(ConfigError):
            parse_uri(bad)


@pytest.fixture(params=["sqlite", "postgresql"])
def reg(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Project:
    if request.param == "postgresql":
        monkeypatch.setenv("CONVEYOR_DB", request.getfixturevalue("pg_db"))
    project.write("train.py", TRAIN)
    project.write(
        "conveyor.yaml",
        f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    deps: [train.py]\n"
        "    outs: [model]\n",
    )
    project.ok("run", "--name", "trained")
    return project


def test_versions_aliases_history_and_lineage(reg: Project) -> None:
    run = json.loads(reg.ok("runs", "list", "--json"))[0]["id"]
    assert "registered tiny-clf version 1" in reg.ok(
        "models", "register", "tiny-clf", "model", "--run", run
    )
    assert "version 2" in reg.ok("models", "register", "tiny-clf", "model")
    reg.ok("models", "alias", "tiny-clf@production", "1")
    assert "(was version 1)" in reg.ok("models", "alias", "tiny-clf@production", "2")
    reg.ok("models", "alias", "tiny-clf@staging", "1")
    reg.ok("models", "alias", "tiny-clf@staging", "--delete")
    shown = json.loads(reg.ok("models", "show", "tiny-clf@production", "--json"))
    assert shown["version"] == 2 and shown["aliases"] == ["production"]
    assert [(h["alias"], h["previous"], h["version"]) for h in shown["history"]] == [
        ("production", None, 1),
        ("production", 1, 2),
        ("staging", None, 1),
        ("staging", 1, None),
    ]
    first = json.loads(reg.ok("models", "show", "tiny-clf/1", "--json"))
    assert first["run_id"] == run and "train.py" in first["lineage"]["deps"]
    lineage = reg.ok("models", "lineage", "tiny-clf/1")
    assert f"run {run}" in lineage and "train.py" in lineage
    assert reg.ok("models", "list").splitlines()[1].split() == [
        "tiny-clf",
        "2",
        "2",
        "production=2",
    ]
    assert reg.run("models", "show", "tiny-clf/9").code == 2
    assert "no alias 'canary'" in reg.run("models", "show", "tiny-clf@canary").err
    assert "did you mean 'tiny-clf'" in reg.run("models", "show", "tiny-cl").err


def test_a_second_clone_loads_a_registered_version(
    reg: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote"
    reg.ok("remote", "add", "store", str(remote), "--default")
    reg.ok("models", "register", "tiny-clf", "model")
    reg.ok("models", "alias", "tiny-clf@production", "1")
    reg.ok("push")
    clone = tmp_path / "clone"
    shutil.copytree(reg.root, clone, ignore=shutil.ignore_patterns(".conveyor"))
    monkeypatch.chdir(clone)
    from conveyor.cli.main import main

    assert main(["init"]) == 0
    assert main(["remote", "add", "store", str(remote), "--default"]) == 0
    if "CONVEYOR_DB" not in __import__("os").environ:  # the embedded store: share the file
        shutil.copy(reg.root / ".conveyor" / "conveyor.db", clone / ".conveyor" / "conveyor.db")
    assert main(["pull"]) == 0
    from conveyor import models

    loaded = models.load("models:/tiny-clf@production")
    np.testing.assert_array_equal(loaded.predict(np.array([[0.0], [3.0]])), [0, 1])


def test_push_carries_registered_packages_and_a_clone_fetches_on_load(
    reg: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote"
    reg.ok("remote", "add", "store", str(remote), "--default")
    shutil.copytree(reg.root / "model", reg.root / "handmade")  # in no pointer and no lock
    reg.ok("models", "register", "hand", "handmade")
    assert "pushed" in reg.ok("push")
    clone = tmp_path / "clone"
    shutil.copytree(
        reg.root, clone, ignore=shutil.ignore_patterns(".conveyor", "handmade", "model")
    )
    monkeypatch.chdir(clone)
    from conveyor.cli.main import main

    assert main(["init"]) == 0
    assert main(["remote", "add", "store", str(remote), "--default"]) == 0
    if "CONVEYOR_DB" not in __import__("os").environ:
        shutil.copy(reg.root / ".conveyor" / "conveyor.db", clone / ".conveyor" / "conveyor.db")
    from conveyor import models

    loaded = models.load("models:/hand/1")  # no pull: the objects come from the remote
    np.testing.assert_array_equal(loaded.predict(np.array([[0.0], [3.0]])), [0, 1])


def test_gc_keeps_every_registered_version(reg: Project) -> None:
    reg.ok("models", "register", "tiny-clf", "model")
    reg.write("train.py", TRAIN.replace("[0, 0, 1, 1]", "[0, 1, 1, 1]"))
    reg.ok("run")  # a new model: the lock no longer names version 1's package
    reg.ok("gc")
    import os

    cwd = os.getcwd()
    os.chdir(reg.root)
    try:
        from conveyor import models

        loaded = models.load("models:/tiny-clf/1")
        np.testing.assert_array_equal(loaded.predict(np.array([[0.0], [1.0]])), [0, 0])
    finally:
        os.chdir(cwd)


def test_models_diff(reg: Project) -> None:
    reg.write("params.yaml", "c: 1\n")
    reg.write(
        "m.py",
        "import json, yaml\n"
        "c = yaml.safe_load(open('params.yaml'))['c']\n"
        "json.dump({'auc': c / 2}, open('m.json', 'w'))\n",
    )
    reg.write(
        "conveyor.yaml",
        (reg.root / "conveyor.yaml").read_text()
        + f"  score:\n    cmd: {sys.executable} m.py\n    params: [c]\n    metrics: [m.json]\n",
    )
    reg.ok("run", "--name", "one")
    first = json.loads(reg.ok("runs", "list", "--json", "--limit", "1"))[0]["id"]
    reg.ok("models", "register", "clf", "model", "--run", first)
    reg.ok("run", "--name", "two", "-S", "c=3")
    second = json.loads(reg.ok("runs", "list", "--json", "--limit", "1"))[0]["id"]
    reg.ok("models", "register", "clf", "model", "--run", second)
    report = json.loads(reg.ok("models", "diff", "clf/1", "clf/2", "--json"))
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["metrics.m.auc"]["values"] == [0.5, 1.5] and rows["metrics.m.auc"]["delta"] == 1.0
    assert rows["params.c"]["values"] == [1, 3]
    assert report["lineage"]["run"] == [first, second]
    assert "metrics.m.auc" in reg.ok("models", "diff", "clf/1", "clf")


def test_run_register_registers_declared_models_when_they_change(reg: Project) -> None:
    reg.write(
        "conveyor.yaml",
        (reg.root / "conveyor.yaml").read_text() + "models:\n  tiny:\n    path: model\n",
    )
    out = reg.ok("run", "--register", "--name", "first")
    assert "registered tiny version 1 from run" in out
    assert "tiny unchanged: version 1" in reg.ok("run", "--register")
    reg.write("train.py", TRAIN.replace("[0, 0, 1, 1]", "[0, 1, 1, 1]"))
    out = reg.ok("run", "--register", "--name", "second")
    assert "registered tiny version 2" in out
    second = json.loads(reg.ok("models", "show", "tiny/2", "--json"))
    runs = {r["name"]: r["id"] for r in json.loads(reg.ok("runs", "list", "--json"))}
    assert second["run_id"] == runs["second"]
    reg.write("conveyor.yaml", (reg.root / "conveyor.yaml").read_text() + "  broken: {}\n")
    result = reg.run("run", "--register")
    assert result.code == 2 and "model 'broken' needs a path" in result.err


def test_tags_on_models_and_versions(reg: Project) -> None:
    reg.ok("models", "register", "tiny", "model")
    reg.ok("models", "register", "tiny", "model")
    reg.ok("models", "tag", "tiny", "team=vision", "task=binary")
    reg.ok("models", "tag", "tiny/2", "validated=yes")
    two = json.loads(reg.ok("models", "show", "tiny/2", "--json"))
    one = json.loads(reg.ok("models", "show", "tiny/1", "--json"))
    assert two["tags"] == {"team": "vision", "task": "binary", "validated": "yes"}
    assert one["tags"] == {"team": "vision", "task": "binary"}
    assert "task removed" in reg.ok("models", "tag", "tiny", "task=")
    assert json.loads(reg.ok("models", "show", "tiny/1", "--json"))["tags"] == {"team": "vision"}
    assert reg.run("models", "tag", "tiny/7", "a=b").code == 2
    assert reg.run("models", "tag", "tiny@production", "a=b").code == 2
    assert reg.run("models", "tag", "tiny", "novalue").code == 2


def test_the_stdlib_lookup_agrees_with_the_store(reg: Project) -> None:
    """stored.resolve reads SQLite without SQLAlchemy, PostgreSQL through the store: the same
    queries, the same answers, the same miss."""
    from conveyor.foundation.errors import ConveyorError
    from conveyor.registry.stored import resolve
    from conveyor.registry.versions import Registry
    from conveyor.tracking.db import opened

    reg.ok("models", "register", "tiny-clf", "model")
    reg.ok("models", "register", "tiny-clf", "model")
    reg.ok("models", "alias", "tiny-clf@production", "1")
    for uri in ("models:/tiny-clf@production", "models:/tiny-clf/2", "models:/tiny-clf"):
        with opened(reg.root) as store:
            expected = Registry(store).resolve(parse_uri(uri))
        assert resolve(reg.root, uri) == expected, uri
    with pytest.raises(ConveyorError, match="has no alias 'staging'"):
        resolve(reg.root, "models:/tiny-clf@staging")


def test_a_server_resolves_an_alias_without_sqlalchemy(reg: Project) -> None:
    """What a server runs to start and to follow an alias: on the embedded store, it imports
    no SQLAlchemy (about a quarter of a second), and a miss is the store's own error."""
    import os
    import subprocess

    reg.ok("models", "register", "tiny-clf", "model")
    reg.ok("models", "alias", "tiny-clf@production", "1")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from conveyor.registry.errors import ModelNotFound\n"
        "from conveyor.registry.stored import resolve\n"
        "root = Path(sys.argv[1])\n"
        "print(resolve(root, 'models:/tiny-clf@production').version)\n"
        "try:\n"
        "    resolve(root, 'models:/tiny-clf@staging')\n"
        "except ModelNotFound as exc:\n"
        "    print(exc.message)\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(reg.root)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout.splitlines()
    embedded = "CONVEYOR_DB" not in os.environ
    assert out[:2] == ["1", "model tiny-clf has no alias 'staging'"]
    assert out[2] == str(not embedded)  # PostgreSQL is read through the store


def test_a_package_row_edited_in_the_shared_store_loads_nothing_outside(
    reg: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata store is shared (teammates, CI): a row whose package names
    ``../../../outside/evil.tree``, written into the real store, must not lead loading out of
    the project (loading materializes the package under .conveyor/models)."""
    import os

    import sqlalchemy as sa

    reg.ok("models", "register", "tiny-clf", "model")
    evil = "../../../outside/evil.tree"
    url = os.environ.get("CONVEYOR_DB") or f"sqlite:///{reg.root / '.conveyor' / 'conveyor.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET package = :p"), {"p": evil})
    engine.dispose()
    outside = (reg.root / ".conveyor" / "models" / evil).resolve().parent
    monkeypatch.chdir(reg.root)
    from conveyor import models
    from conveyor.foundation.errors import DataError

    with pytest.raises(DataError, match=r"tiny-clf version 1: .* is not a tree hash"):
        models.load("models:/tiny-clf/1")
    assert not outside.exists()
