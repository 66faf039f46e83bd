"""Walking a folder: the same listing whether one process or two walked it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.data import build
from conveyor.foundation.errors import PathError


def make_tree(root: Path, dirs: int = 6, files: int = 5) -> None:
    (root / "top.txt").write_text("top")
    for d in range(dirs):
        for sub in ("", "deeper/"):
            folder = root / f"d{d}" / sub
            folder.mkdir(parents=True, exist_ok=True)
            for f in range(files):
                (folder / f"f{f}.txt").write_text(f"{d}{sub}{f}")
    os.symlink(root / "top.txt", root / "d0" / "link.txt")
    os.symlink(root / "nowhere", root / "d1" / "dangling.txt")


def test_forked_and_single_walks_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    monkeypatch.setattr(build, "_FORK_DIRS", 2)
    forked = build.walk(tmp_path)
    monkeypatch.setattr(build, "_FORK_DIRS", 10**9)
    single = build.walk(tmp_path)
    assert forked.rels == single.rels and forked.stats == single.stats
    assert forked.digest() == single.digest()
    assert len(single.rels) == 1 + 6 * 2 * 5 + 1  # the symlink to a file counts, the dangling not
    assert "d0/link.txt" in single.rels and "d1/dangling.txt" not in single.rels


def test_an_unreadable_folder_is_an_error_in_either_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() == 0:
        # root reads anything: make the folder unreadable by making it not a folder to open
        monkeypatch.setattr(build.os, "open", _refusing(os.open, str(tmp_path / "d5")))
    else:
        (tmp_path / "d5").mkdir(parents=True)
    make_tree(tmp_path)
    if os.geteuid() != 0:
        (tmp_path / "d5").chmod(0)
    for threshold in (2, 10**9):
        monkeypatch.setattr(build, "_FORK_DIRS", threshold)
        with pytest.raises(PathError, match="cannot read folder"):
            build.walk(tmp_path)


def _refusing(real_open, path):  # type: ignore[no-untyped-def]
    def fake(p, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(p) == path:
            raise PermissionError(13, "Permission denied", p)
        return real_open(p, flags, *args, **kwargs)

    return fake


@pytest.mark.parametrize("unnamed", [True, False])
def test_objects_stored_from_processes_match_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    """Both ways children store objects (unnamed files linked, named temp files renamed)."""
    from conveyor.data.hashing import hash_bytes, hash_file
    from conveyor.data.objects import ObjectDB
    from conveyor.data.state import StateMemo

    monkeypatch.setattr(build, "_MANY", 10)
    monkeypatch.setattr(build, "_UNNAMED", [unnamed])
    data = tmp_path / "data"
    data.mkdir()
    contents = {f"f{i:03d}.txt": f"file {i % 40}\n".encode() for i in range(120)}  # duplicates
    for name, body in contents.items():
        (data / name).write_bytes(body)
    odb = ObjectDB(tmp_path / "cache/objects", tmp_path / "tmp", sync="journal")
    with StateMemo(tmp_path / "state.db") as memo, odb.batch() as batch:
        built = build.scan(tmp_path, data, memo, store=batch)
    assert built.tree is not None
    assert {e.path: e.oid for e in built.tree.entries} == {
        n: hash_bytes(b) for n, b in contents.items()
    }
    stored = [p for p in (tmp_path / "cache/objects").glob("*/*")]
    assert len(stored) == 40 + 1  # each distinct content once, and the tree
    assert all(hash_file(p) == p.parent.name + p.name for p in stored)
    leftovers = [p for p in (tmp_path / "tmp").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_file_that_changed_size_since_it_was_listed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.data.objects import ObjectDB
    from conveyor.data.state import StateMemo
    from conveyor.foundation.errors import DataError

    monkeypatch.setattr(build, "_MANY", 10)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"f{i:02d}.txt").write_text(f"file {i}\n")
    real_walk = build.walk

    def walk_then_grow(folder: Path) -> build.Listing:
        listing = real_walk(folder)
        (data / "f07.txt").write_text("grown after it was listed\n")
        return listing

    monkeypatch.setattr(build, "walk", walk_then_grow)
    odb = ObjectDB(tmp_path / "cache/objects", tmp_path / "tmp", sync="journal")
    with (
        StateMemo(tmp_path / "state.db") as memo,
        pytest.raises(DataError, match=r"f07\.txt changed"),
        odb.batch() as batch,
    ):
        build.scan(tmp_path, data, memo, store=batch)


def test_reading_goes_on_after_a_short_read(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"ab", b"cd", b"e", b""]
    monkeypatch.setattr(build.os, "read", lambda fd, n: chunks.pop(0)[:n])
    assert build._read_all(3, 6) == b"abcde"
