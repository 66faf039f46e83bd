"""Two real conveyor processes in one project at once.

Either both succeed (one waits for the other's lock) or the waiting one gives up with the lock
message (exit 3, naming the holder); the state file and the cache are never corrupt.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Project, conveyor_process
from tests.test_faults import assert_cache_valid, assert_clean, holds_lock, tree_digest

FILES = 1000


def make_data(project: Project, name: str, files: int = FILES, big: int = 8 << 20) -> Path:
    root = project.root / name
    for d in range(20):
        (root / f"d{d}").mkdir(parents=True)
    for i in range(files):
        (root / f"d{i % 20}/f{i}.txt").write_text(f"{name} {i}\n" * (1 + i % 30))
    (root / "big.bin").write_bytes(os.urandom(big))
    return root


def start(project: Project, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return conveyor_process(
        "-q",
        *args,
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


def assert_state_intact(project: Project) -> None:
    db = sqlite3.connect(project.root / ".conveyor/state.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def test_two_adds_at_once_both_succeed(project: Project) -> None:
    first, second = make_data(project, "alpha"), make_data(project, "beta")
    before = {**tree_digest(first), **{f"b/{k}": v for k, v in tree_digest(second).items()}}
    procs = [start(project, "add", "alpha"), start(project, "add", "beta")]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
        assert "Traceback" not in err
    assert_state_intact(project)
    assert assert_cache_valid(project.root) == 2 * (FILES + 2)
    assert_clean(project)
    after = {**tree_digest(first), **{f"b/{k}": v for k, v in tree_digest(second).items()}}
    assert after == before


def test_add_and_checkout_at_once_both_succeed(project: Project) -> None:
    restored = make_data(project, "alpha")
    before = tree_digest(restored)
    project.ok("add", "alpha")
    project.ok("config", "cache.type", "copy")
    for path in sorted(restored.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    make_data(project, "beta")
    procs = [
        start(project, "checkout", "alpha"),
        start(project, "add", "beta"),
        start(project, "status"),  # takes no lock: reads while the others write
    ]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    assert tree_digest(restored) == before
    assert_state_intact(project)
    assert_cache_valid(project.root)
    assert_clean(project)


@pytest.mark.parametrize("second", [["add", "beta"], ["checkout", "alpha"], ["gc"]])
def test_a_waiting_command_gives_up_with_the_lock_message(
    project: Project, second: list[str]
) -> None:
    make_data(project, "alpha")
    make_data(project, "beta", files=20, big=1 << 10)
    holder = start(project, "add", "alpha")
    assert holds_lock(project.root, holder)
    holder.send_signal(signal.SIGSTOP)  # hold the lock, mid-work, for as long as we need
    try:
        waiter = start(project, *second, CONVEYOR_LOCK_TIMEOUT="0.3")
        code, err = finish(waiter)
    finally:
        holder.send_signal(signal.SIGCONT)
    assert code == 3
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: another conveyor process")
    assert f"pid {holder.pid}: conveyor add" in lines[0]
    assert "CONVEYOR_LOCK_TIMEOUT" in err and "Traceback" not in err
    assert not (project.root / "beta.cvy").exists()  # the waiter did nothing
    code, err = finish(holder)
    assert code == 0, err
    assert_state_intact(project)
    assert_cache_valid(project.root)
    assert_clean(project)
