"""SIGKILL a real ``conveyor pull`` (and ``push``) mid-work: nothing half-written is ever kept.

After each kill every file under ``.conveyor/cache/objects`` (and on the remote) must hash to its
name, and a re-run must finish the job from where the killed one stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.data.hashing import hash_file, is_oid
from tests.conftest import Project, conveyor_process

NFILES = 1500  # above remote_local._MANY: downloads run in forked processes


def _objects(folder: Path) -> list[Path]:
    """Every file in the shard folders (``ab/``) of a cache or a remote."""
    if not folder.is_dir():
        return []
    shards = [s for s in os.scandir(folder) if s.is_dir() and len(s.name) == 2]
    return [p for shard in shards for p in Path(shard).iterdir()]


def _assert_sound(folder: Path) -> None:
    """Every file in a shard folder is named by the BLAKE3 hash of its bytes; temp files of a
    push are only ever in ``.tmp/``."""
    if not folder.is_dir():
        return
    for path in _objects(folder):
        oid = path.parent.name + path.name
        assert is_oid(oid), f"stray file {path}"
        assert hash_file(path) == oid, f"{path} does not hold the bytes its name says"
    others = {p.name for p in folder.iterdir() if not (p.is_dir() and len(p.name) == 2)}
    assert others <= {".tmp", ".generation"}, others


def _kill_when(
    args: list[str],
    cwd: Path,
    ready: Callable[[], bool],
    *,
    again: Callable[[], None] | None = None,
) -> None:
    """Start ``conveyor ARGS`` and SIGKILL it as soon as ``ready()`` is true.

    Where the moment is the last thing the command does (a push lands its objects in one group
    at the end), the command may exit before the signal arrives: with ``again`` (which undoes
    what it did), such a run is tried again, a few times at most.
    """
    for _ in range(5 if again is not None else 1):
        proc = conveyor_process(*args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        try:
            while proc.poll() is None and not ready() and time.monotonic() < deadline:
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        finally:
            _, err = proc.communicate(timeout=30)
        if proc.returncode == -signal.SIGKILL or again is None or proc.returncode != 0:
            break
        again()
    assert proc.returncode == -signal.SIGKILL, (
        f"conveyor {' '.join(args)} finished (code {proc.returncode}) before it could be "
        f"killed mid-work; make the data bigger\n{err.decode()}"
    )


@pytest.fixture
def pushed(project: Project) -> Project:
    """NFILES small files in data/ (in 20 folders), tracked and pushed to a folder remote."""
    for i in range(NFILES):
        path = project.root / "data" / f"d{i % 20}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(512) + i.to_bytes(4, "big"))
    project.ok("add", "data")
    project.ok("remote", "add", "-d", "store", "../store")
    project.ok("push")
    return project


def test_pull_killed_at_any_moment_keeps_the_cache_sound(pushed: Project) -> None:
    root: Path = pushed.root
    objects = root / ".conveyor" / "cache" / "objects"
    tmp = root / ".conveyor" / "tmp"
    subprocess.run(["rm", "-rf", str(objects), str(root / "data")], check=True)

    moments = [
        ("downloads in flight", lambda: tmp.is_dir() and any(tmp.iterdir())),
        ("a third landed", lambda: len(_objects(objects)) >= NFILES // 3),
        ("two thirds landed", lambda: len(_objects(objects)) >= 2 * NFILES // 3),
        ("checking out", lambda: (root / "data").is_dir()),
    ]
    for _, ready in moments:
        _kill_when(["pull", "-j", "2"], root, ready)
        _assert_sound(objects)

    out = pushed.ok("pull")
    assert "from store" in out
    assert len(_objects(objects)) == NFILES + 1  # every file and the tree
    _assert_sound(objects)
    states = json.loads(pushed.ok("status", "--json"))["data"]
    assert [(s["path"], s["state"], s["not_in_cache"]) for s in states] == [("data", "clean", 0)]
    assert list(tmp.iterdir()) == []


def test_push_killed_mid_way_leaves_only_whole_objects(project: Project) -> None:
    for i in range(NFILES):
        project.write(f"data/d{i % 20}/f{i}.bin", os.urandom(512) + i.to_bytes(4, "big"))
    project.ok("add", "data")
    project.ok("remote", "add", "-d", "store", "../store")
    store = project.root.parent / "store"

    _kill_when(
        ["push", "-j", "2"],
        project.root,
        lambda: len(_objects(store)) >= NFILES // 2,
        again=lambda: subprocess.run(["rm", "-rf", str(store)], check=True),
    )
    _assert_sound(store)
    tree = json.loads(project.ok("status", "--json"))["data"]  # the cache is untouched by a push
    assert tree[0]["state"] == "clean"

    out = project.ok("push")
    assert len(_objects(store)) == NFILES + 1
    assert "already there" in out and not out.startswith(f"pushed {NFILES + 1} ")
    _assert_sound(store)
    assert list((store / ".tmp").iterdir()) == []  # the killed push's temp files are gone
