"""A team shares its run-cache: `push --run-cache` in one clone, `pull --run-cache` in another,
and `conveyor run` there restores what the first one ran instead of running it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.data.hashing import object_path
from conveyor.pipeline.runcache import Entry, dump, key_of
from conveyor.pipeline.runshare import split_complete
from conveyor.pipeline.stage import Meta
from tests.conftest import Project
from tests.data.conftest import moto_endpoint, s3_bucket  # noqa: F401 (fixtures)

# Two stages, one with a folder out; each notes in ran.log (not an out) that its command ran.
PIPELINE = """\
stages:
  prep:
    cmd:
      - mkdir -p data/prep && echo a > data/prep/a.txt && echo b > data/prep/b.txt
      - echo prep >> ran.log
    outs: [data/prep]
  train:
    cmd: cat data/prep/a.txt > model.txt && echo ${p} >> model.txt && echo train >> ran.log
    deps: [data/prep]
    params: [p]
    outs: [model.txt]
"""


def setup(project: Project, p: int, store: str) -> Project:
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", f"p: {p}\n")
    project.ok("remote", "add", "-d", "store", store)
    return project


@pytest.fixture
def other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    """A teammate's clone: the same project files, its own empty cache."""
    root = tmp_path / "other"
    root.mkdir()
    clone = Project(root, capsys)
    clone.git("init", "-q", "-b", "main")
    clone.ok("init")
    return clone


def runs_on(store: Path) -> set[str]:
    return {p.parent.name + p.name for p in (store / "runs").glob("??/*")}


def entries_in(project: Project) -> set[str]:
    folder = project.root / ".conveyor" / "cache" / "runs"
    return {p.parent.name + p.name for p in folder.glob("??/*")}


def test_a_teammate_restores_what_was_run_in_another_clone(
    project: Project, other: Project, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    setup(project, 1, str(store))
    project.ok("run")
    project.ok("run", "-S", "p=2")  # a second combination of train
    out = project.ok("push", "--run-cache")
    assert "pushed 3 run-cache entries to store, 0 already there" in out
    assert runs_on(store) == entries_in(project)
    again = project.ok("push", "--run-cache")
    assert "pushed 0 run-cache entries to store, 3 already there" in again

    setup(other, 2, str(store))  # the teammate's branch uses p: 2, and has never run
    pulled = other.ok("pull", "--run-cache")
    assert "pulled 3 run-cache entries from store, 0 already there" in pulled
    assert entries_in(other) == entries_in(project)
    out = other.ok("run")
    assert "prep restored from run-cache" in out
    assert "train restored from run-cache" in out
    assert not (other.root / "ran.log").exists()  # neither command ran
    assert (other.root / "model.txt").read_text() == "a\n2\n"
    assert sorted(p.name for p in (other.root / "data" / "prep").iterdir()) == ["a.txt", "b.txt"]
    assert "No stale stages." in other.ok("status")
    assert "pulled 0 run-cache entries from store, 3 already there" in other.ok(
        "pull", "--run-cache"
    )


def test_an_entry_whose_objects_are_gone_is_not_pushed(project: Project, tmp_path: Path) -> None:
    store = tmp_path / "store"
    setup(project, 1, str(store))
    project.ok("run")
    model = (project.root / "model.txt").read_bytes()
    project.ok("run", "-S", "p=2")
    # What gc would do: the object of the first model.txt is gone from the cache.
    (project.root / ".conveyor" / "cache" / "objects" / object_path(_oid(model))).unlink()
    result = project.run("push", "--run-cache")
    assert result.code == 0, result.err
    assert "pushed 2 run-cache entries to store, 0 already there" in result.out
    assert "1 run-cache entry not pushed" in result.err
    assert len(runs_on(store)) == 2
    for key in runs_on(store):  # every entry on the remote can be pulled whole
        entry = json.loads((store / "runs" / object_path(key)).read_text())
        for _path, ref, _size, _n in entry["outs"]:
            assert (store / object_path(ref.removesuffix(".tree"))).is_file()


def test_a_hostile_remote_entry_is_refused_and_never_written(
    project: Project, other: Project, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    setup(project, 1, str(store))
    project.ok("run")
    project.ok("push", "--run-cache")
    good = runs_on(store)
    oid = next(iter(p.parent.name + p.name for p in store.glob("??/*")))

    def plant(key: str, raw: bytes) -> None:
        path = store / "runs" / object_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)

    escape = {"cmd": ["x"], "outs": [["../escape.txt", False]]}
    plant(key_of(escape), dump(Entry(key_of(escape), escape, {"../escape.txt": Meta(oid, 1, 1)})))
    into_git = {"cmd": ["x"], "outs": [[".git/hooks/pre-commit", False]]}
    plant(
        key_of(into_git),
        dump(Entry(key_of(into_git), into_git, {".git/hooks/pre-commit": Meta(oid, 1, 1)})),
    )
    plant("ab" * 32, b"{not json")
    ident = {"cmd": ["y"], "outs": [["model.txt", False]]}
    plant("cd" * 32, dump(Entry("cd" * 32, ident, {"model.txt": Meta(oid, 1, 1)})))  # misnamed

    setup(other, 1, str(store))
    result = other.run("pull", "--run-cache")
    assert result.code == 1
    assert "4 run-cache entries on remote 'store' are refused and not stored" in result.err
    assert f"delete the bad entry ({store}/runs/" in result.err
    assert entries_in(other) == good  # the good one is stored, none of the others
    assert not (tmp_path / "escape.txt").exists()
    assert not (other.root / ".git" / "hooks" / "pre-commit").exists()
    assert "restored" in other.ok("run")


def test_pulled_entries_wait_for_their_objects(
    project: Project, other: Project, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    setup(project, 1, str(store))
    project.ok("run")
    project.ok("push", "--run-cache")
    model = _oid((project.root / "model.txt").read_bytes())
    (store / object_path(model)).unlink()  # what `gc --remote` could do
    setup(other, 1, str(store))
    result = other.run("pull", "--run-cache")
    assert result.code == 0, result.err
    assert "pulled 1 run-cache entry from store" in result.out
    assert "1 run-cache entry not stored: remote 'store' lacks objects" in result.err
    out = other.ok("run")
    assert "prep restored from run-cache" in out
    assert (other.root / "ran.log").read_text() == "train\n"  # train ran: its entry is not here


def test_the_ci_job_pulls_the_run_cache_by_default(
    project: Project, other: Project, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    setup(project, 1, str(store))
    project.ok("run")
    project.ok("push", "--run-cache")
    setup(other, 1, str(store))
    other.git("add", "-A")
    other.git("commit", "-qm", "a teammate's branch")
    out = other.ok("ci")
    assert "conveyor pull --run-cache" in out
    assert "train restored from run-cache" in out
    assert not (other.root / "ran.log").exists()


def test_push_and_pull_the_run_cache_through_s3(
    project: Project,
    other: Project,
    moto_endpoint: str,  # noqa: F811
    s3_bucket: str,  # noqa: F811
) -> None:
    url = f"s3://{s3_bucket}/store"
    for clone in (project, other):
        setup(clone, 1, url)
        clone.ok("config", "remote.store.endpoint_url", moto_endpoint)
    project.ok("run")
    assert "pushed 2 run-cache entries to store" in project.ok("push", "--run-cache")
    assert "pulled 2 run-cache entries from store" in other.ok("pull", "--run-cache")
    out = other.ok("run")
    assert "train restored from run-cache" in out
    assert not (other.root / "ran.log").exists()


def test_split_complete_counts_an_entry_only_when_every_out_is_there() -> None:
    a, b = "a" * 64, "b" * 64
    both = Entry("k2", {}, {"x": Meta(a, 1, 1), "d": Meta(b + ".tree", 2, 2)})
    one = Entry("k1", {}, {"x": Meta(a, 1, 1)})
    assert split_complete({"k1": one, "k2": both}, {a}) == (["k1"], ["k2"])
    assert split_complete({"k1": one, "k2": both}, {a, b}) == (["k1", "k2"], [])


def _oid(data: bytes) -> str:
    from conveyor.data.hashing import hash_bytes

    return hash_bytes(data)


def test_a_web_server_remote_has_no_listing_so_no_entries_are_pulled(project: Project) -> None:
    project.ok("remote", "add", "-d", "web", "http://127.0.0.1:9/store")
    result = project.run("pull", "--run-cache")
    assert result.code == 0, result.err
    assert "remote 'web' is a web server, whose run-cache entries cannot be listed" in result.err
