from __future__ import annotations

import json
import shutil

from conveyor.data.status import Changes, compare
from tests.conftest import Project


def test_compare_is_pure_and_sorted() -> None:
    expected = {"a": "1", "b": "2", "c": "3"}
    actual = {"a": "1", "b": "9", "d": "4", "e": "5"}
    assert compare(expected, actual) == Changes(added=("d", "e"), deleted=("c",), modified=("b",))
    assert not compare(expected, dict(expected))


def test_status_reports_each_state(project: Project) -> None:
    project.write("data/a", "1")
    project.write("data/b", "2")
    project.write("model.bin", "m")
    project.write("gone.txt", "g")
    project.ok("add", "data", "model.bin", "gone.txt")
    project.write("data/a", "changed")
    project.write("data/c", "new")
    (project.root / "data/b").unlink()
    (project.root / "gone.txt").unlink()
    rows = {r["path"]: r for r in json.loads(project.ok("status", "--json"))["data"]}
    assert rows["data"]["state"] == "modified"
    assert (rows["data"]["added"], rows["data"]["deleted"], rows["data"]["modified"]) == (
        ["c"],
        ["b"],
        ["a"],
    )
    assert rows["model.bin"]["state"] == "clean"
    assert rows["gone.txt"]["state"] == "missing"
    text = project.ok("status")
    assert "modified: data/a" in text and "added: data/c" in text and "deleted: data/b" in text
    assert "Run `conveyor checkout`" in text


def test_status_reports_objects_not_in_cache(project: Project) -> None:
    project.write("data/a", "1")
    project.ok("add", "data")
    shutil.rmtree(project.root / ".conveyor/cache/objects")
    rows = json.loads(project.ok("status", "--json"))["data"]
    assert rows[0]["state"] == "clean" and rows[0]["not_in_cache"] == 2
    assert "conveyor pull" in project.ok("status")


def test_status_of_named_paths_and_untracked_path(project: Project) -> None:
    project.write("a", "1")
    project.write("b", "2")
    project.ok("add", "a", "b")
    rows = json.loads(project.ok("status", "--json", "b.cvy"))["data"]
    assert [r["path"] for r in rows] == ["b"]
    result = project.run("status", "c")
    assert result.code == 2 and "c is not tracked" in result.err


def test_status_without_tracked_data(project: Project) -> None:
    assert "No tracked data" in project.ok("status")


def test_unchanged_folder_is_recognised_by_its_stat_digest(project: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conveyor.data.state import StateMemo

    for i in range(30):
        project.write(f"data/{i}.txt", str(i))
    project.ok("add", "data")
    calls: list[str] = []
    original = StateMemo.under

    def counting(self, prefix):  # type: ignore[no-untyped-def]
        calls.append(prefix)
        return original(self, prefix)

    monkeypatch.setattr(StateMemo, "under", counting)
    assert "clean" in project.ok("status")
    assert calls == []  # no per-file lookups: the folder digest matched
    project.write("data/3.txt", "33")
    assert "modified: data/3.txt" in project.ok("status")
    assert calls == ["data"]


def test_removing_an_object_invalidates_the_complete_marker(project: Project) -> None:
    from conveyor.data.tree import Tree
    from conveyor.data.workspace import Workspace

    project.write("data/a", "1")
    project.write("data/b", "2")
    project.ok("add", "data")
    assert json.loads(project.ok("status", "--json"))["data"][0]["not_in_cache"] == 0
    with Workspace(project.root) as ws:
        ptr = ws.pointers()[0]
        tree = Tree.from_bytes(ws.odb.read_bytes(ptr.oid))
        ws.odb.remove(tree.entries[0].oid)
    assert json.loads(project.ok("status", "--json"))["data"][0]["not_in_cache"] == 1
    project.ok("add", "data")  # stores the missing object again
    assert json.loads(project.ok("status", "--json"))["data"][0]["not_in_cache"] == 0
