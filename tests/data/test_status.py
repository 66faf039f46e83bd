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
    rows = {r["path"]: r for r in json.loads(project.ok("status", "--json"))}
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
    rows = json.loads(project.ok("status", "--json"))
    assert rows[0]["state"] == "clean" and rows[0]["not_in_cache"] == 2
    assert "conveyor pull" in project.ok("status")


def test_status_of_named_paths_and_untracked_path(project: Project) -> None:
    project.write("a", "1")
    project.write("b", "2")
    project.ok("add", "a", "b")
    rows = json.loads(project.ok("status", "--json", "b.cvy"))
    assert [r["path"] for r in rows] == ["b"]
    result = project.run("status", "c")
    assert result.code == 2 and "c is not tracked" in result.err


def test_status_without_tracked_data(project: Project) -> None:
    assert "No tracked data" in project.ok("status")
