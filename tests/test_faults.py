"""Faults a user will meet: a killed command, bad input, a full disk.

Whatever happens, the cache stays valid (every object hashes to its name), nothing the user had
is lost, the next command cleans up after a dead one, and a mistake gets a short error, not a
traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.data.hashing import hash_file, is_oid
from conveyor.data.objects import ObjectDB
from conveyor.data.tree import Entry, Tree
from tests.conftest import Project, conveyor_process

SMALL_FILES = 3000
BIG = 40 << 20


# -- helpers ---------------------------------------------------------------------------------
def assert_cache_valid(root: Path) -> int:
    """Every object file (``objects/ab/cdef...``) is named by the BLAKE3 hash of its bytes.

    Returns how many there are. Files directly under ``objects/`` are the store's own markers.
    """
    count = 0
    for path in (root / ".conveyor/cache/objects").glob("*/**/*"):
        if path.is_file():
            oid = path.parent.name + path.name
            assert is_oid(oid), f"stray file in the cache: {path}"
            assert hash_file(path) == oid, f"corrupt object {oid}"
            count += 1
    return count


def temp_files_of(root: Path, pid: int) -> list[str]:
    tmp = root / ".conveyor/tmp"
    return (
        sorted(p.name for p in tmp.iterdir() if p.name.startswith(f"{pid}."))
        if tmp.exists()
        else []
    )


def assert_clean(project: Project) -> None:
    report = json.loads(project.ok("status", "--json"))["data"]
    assert report, "nothing is tracked"
    for entry in report:
        assert entry["state"] == "clean" and entry["not_in_cache"] == 0, entry


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hash_file(p) for p in folder.rglob("*") if p.is_file()
    }


def holds_lock(root: Path, proc: subprocess.Popen[bytes]) -> bool:
    """Wait until ``proc`` holds the project lock (it is working); False if it ended first."""
    lock = root / ".conveyor/lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if lock.exists() and f"pid {proc.pid}:" in lock.read_text(errors="replace"):
            return True
        time.sleep(0.002)
    raise AssertionError("the command never took the project lock")


def wait_for(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.002)
    raise AssertionError("the moment to kill never came")


def kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL ``proc``; True if it was still running (it did not finish first)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few thousand small files and one file of tens of MB: big enough to kill mid-work."""
    src = tmp_path_factory.mktemp("dataset") / "data"
    for i in range(SMALL_FILES):
        folder = src / f"d{i % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_text(f"sample {i}\n" * (1 + i % 50))
    (src / "big.bin").write_bytes(os.urandom(BIG))
    old = time.time() - 60  # outside the memo's racy window
    for path in src.rglob("*"):
        os.utime(path, (old, old))
    return src


@pytest.fixture(scope="module")
def digest(dataset: Path) -> dict[str, str]:
    return tree_digest(dataset)


def populate(project: Project, dataset: Path) -> Path:
    # Hard links: quick, and conveyor never writes into a file it reads.
    data = project.root / "data"
    shutil.copytree(dataset, data, copy_function=os.link)
    return data


# -- a killed add or checkout ----------------------------------------------------------------
MOMENTS = ["staging", "renaming", "0.1s", "0.3s"]


def kill_at(project: Project, proc: subprocess.Popen[bytes], moment: str) -> bool:
    objects = project.root / ".conveyor/cache/objects"
    if moment == "staging":  # the moment its first temp object appears
        wait_for(proc, lambda: bool(temp_files_of(project.root, proc.pid)))
    elif moment == "renaming":  # the moment the first staged object is put in place
        wait_for(proc, lambda: any(p.is_dir() for p in objects.iterdir()))
    elif holds_lock(project.root, proc):
        time.sleep(float(moment.removesuffix("s")))
    return kill(proc)


@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_add_leaves_a_valid_cache(
    project: Project, dataset: Path, digest: dict[str, str], moment: str
) -> None:
    data = populate(project, dataset)
    proc = conveyor_process("-q", "add", "data", cwd=project.root, stderr=subprocess.DEVNULL)
    killed = kill_at(project, proc, moment)
    assert_cache_valid(project.root)
    leftovers = temp_files_of(project.root, proc.pid)
    if moment in ("staging", "renaming"):
        assert killed and leftovers
    project.ok("add", "data")  # the next command clears the dead writer's temp files
    assert temp_files_of(project.root, proc.pid) == []
    assert_clean(project)
    assert assert_cache_valid(project.root) == SMALL_FILES + 2  # files, big.bin, the tree
    assert tree_digest(data) == digest


@pytest.mark.parametrize("moment", ["writing", "0.1s", "0.25s"])
def test_killed_checkout_leaves_a_valid_cache(
    project: Project, dataset: Path, digest: dict[str, str], moment: str
) -> None:
    data = populate(project, dataset)
    project.ok("add", "data")
    project.ok("config", "cache.type", "copy")
    shutil.rmtree(data)
    proc = conveyor_process("-q", "checkout", cwd=project.root, stderr=subprocess.DEVNULL)
    if moment == "writing":  # the moment the first file is in place
        wait_for(proc, lambda: data.is_dir() and any(data.iterdir()))
        assert kill(proc)
    else:
        kill_at(project, proc, moment)
    assert_cache_valid(project.root)
    # A file under a tracked name is whole or absent: copies are renamed into place.
    partial = tree_digest(data) if data.exists() else {}
    assert all(digest[rel] == value for rel, value in partial.items())
    project.ok("checkout")
    assert temp_files_of(project.root, proc.pid) == []
    assert_clean(project)
    assert tree_digest(data) == digest


# -- bad input -------------------------------------------------------------------------------
@pytest.fixture
def tracked(project: Project) -> Project:
    for i in range(5):
        project.write(f"data/f{i}.txt", f"row {i}\n")
    project.write("model.bin", b"\x01" * 3000)
    project.ok("add", "data", "model.bin")
    return project


def snapshot(project: Project) -> dict[str, str]:
    """Hashes of every file in the project but git's and conveyor's own state."""
    skip = (".git/", ".conveyor/state.db", ".conveyor/lock", ".conveyor/tmp/")
    return {
        rel: hash_file(p)
        for p in project.root.rglob("*")
        if p.is_file() and not (rel := p.relative_to(project.root).as_posix()).startswith(skip)
    }


def assert_short_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err
    for fragment in fragments:
        assert fragment in lines[0], err


OID = "0" * 64
BAD_POINTERS = {
    "yaml-syntax": ("path: data\nhash: [oops\n", "data.cvy:3: not valid YAML"),
    "missing-hash": ("path: data\nsize: 3\n", "data.cvy: pointer needs a text 'hash'"),
    "bad-hash": ("path: data\nhash: 12345zz\n", "data.cvy:2: '12345zz' is not a conveyor hash"),
    "escaping-path": (
        f"path: ../outside\nhash: {OID}.tree\n",
        "data.cvy:1: path '../outside' must be relative",
    ),
}


@pytest.mark.parametrize("command", ["status", "checkout", "gc"])
@pytest.mark.parametrize("case", sorted(BAD_POINTERS))
def test_malformed_pointer_is_a_short_error(tracked: Project, case: str, command: str) -> None:
    text, message = BAD_POINTERS[case]
    (tracked.root / "data.cvy").write_text(text)
    before = snapshot(tracked)
    result = tracked.run(command)
    assert result.code == 2
    assert_short_error(result.err, message)
    assert snapshot(tracked) == before


@pytest.mark.parametrize(
    "case",
    [c for c in sorted(BAD_POINTERS)],
)
def test_malformed_pointer_error_says_how_to_fix_it(tracked: Project, case: str) -> None:
    (tracked.root / "data.cvy").write_text(BAD_POINTERS[case][0])
    assert "hint: restore" in tracked.run("status").err


def test_fsck_lists_a_malformed_pointer(tracked: Project) -> None:
    (tracked.root / "data.cvy").write_text(BAD_POINTERS["bad-hash"][0])
    result = tracked.run("fsck")
    assert result.code == 1 and "bad pointer: data.cvy:2:" in result.out
    assert "Traceback" not in result.err


def test_tree_entry_escaping_its_folder_is_refused(tracked: Project) -> None:
    odb = ObjectDB(tracked.root / ".conveyor/cache/objects", tracked.root / ".conveyor/tmp")
    with odb.batch() as batch:
        payload = batch.add_bytes(b"not yours")
        evil = Tree.of([Entry("../../escaped.txt", payload, 9)]).to_bytes()
        tree_oid = batch.add_bytes(evil)
    (tracked.root / "evil.cvy").write_text(f"path: evil\nhash: {tree_oid}.tree\nnfiles: 1\n")
    result = tracked.run("checkout", "evil")
    assert result.code != 0
    assert_short_error(result.err, f"tree {tree_oid}", "../../escaped.txt")
    assert not (tracked.root.parent / "escaped.txt").exists()
    assert not (tracked.root / "evil").exists()


@pytest.mark.parametrize("target", ["../outside.txt", "/etc/passwd"])
def test_adding_a_path_outside_the_project_is_refused(tracked: Project, target: str) -> None:
    (tracked.root.parent / "outside.txt").write_text("not in the project")
    before = snapshot(tracked)
    result = tracked.run("add", target)
    assert result.code == 2
    assert_short_error(result.err, target, "outside the project")
    assert "hint: conveyor only tracks paths inside" in result.err
    assert snapshot(tracked) == before


def _drop_file_permission_override() -> None:
    """In the child: give up root's power to read any file (CAP_DAC_OVERRIDE, _READ_SEARCH)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP; takes effect at exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def unprivileged() -> dict[str, object]:
    """Popen arguments so that chmod 000 really denies reading, even when tests run as root."""
    if os.geteuid() != 0:
        return {}
    probe = subprocess.run(
        ["true"], preexec_fn=_drop_file_permission_override, capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here")
    return {"preexec_fn": _drop_file_permission_override}


@pytest.mark.parametrize("what", ["file", "folder"])
def test_unreadable_path_is_a_short_error(
    tracked: Project, unprivileged: dict[str, object], what: str
) -> None:
    if what == "file":
        secret = tracked.write("secret.txt", "for my eyes only\n")
        target, named = "secret.txt", "secret.txt"
    else:
        secret = tracked.write("extra/locked/inner.txt", "locked away\n").parent
        tracked.write("extra/open.txt", "readable\n")
        target, named = "extra", "extra/locked"
    before = snapshot(tracked)
    secret.chmod(0)
    try:
        proc = conveyor_process(
            "add", target, cwd=tracked.root, stderr=subprocess.PIPE, **unprivileged
        )
        _, err = proc.communicate(timeout=60)
    finally:
        secret.chmod(0o755 if what == "folder" else 0o644)
    assert proc.returncode == 2
    assert_short_error(err.decode(), named, "permission denied")
    assert snapshot(tracked) == before  # no pointer written, no object stored
    assert not (tracked.root / f"{target}.cvy").exists()


def test_mistyped_config_key_in_the_file(tracked: Project) -> None:
    config = tracked.root / ".conveyor/config"
    config.write_text("cache:\n  typ: copy\n")
    before = snapshot(tracked)
    for command in (["status"], ["add", "model.bin"], ["gc"], ["fsck"]):
        result = tracked.run(*command)
        assert result.code == 2, command
        assert_short_error(result.err, ".conveyor/config:2: unknown key 'cache.typ'")
        assert "hint: did you mean 'cache.type'?" in result.err
    assert snapshot(tracked) == before


def test_mistyped_config_key_on_the_command_line(tracked: Project) -> None:
    before = snapshot(tracked)
    result = tracked.run("config", "cache.typ", "copy")
    assert result.code == 2
    assert_short_error(result.err, "unknown key 'cache.typ'")
    assert "hint: did you mean 'cache.type'?" in result.err
    assert snapshot(tracked) == before


# -- a full disk -----------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, if this machine lets us mount one (root, and mounts allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def full_project(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    """A project on the small disk: a 1.2 MB file to add, and a filler that leaves too little."""
    project = Project(small_disk / "proj", capsys)
    project.root.mkdir()
    project.ok("init")
    project.write("big.bin", os.urandom(1_200_000))
    project.write("small.txt", "fits\n")
    (small_disk / "filler").write_bytes(b"\0" * 1_000_000)
    return project


def run_add(project: Project, *paths: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = conveyor_process("add", *paths, cwd=project.root, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    return proc, err.decode()


def test_full_disk_during_add_loses_nothing(full_project: Project) -> None:
    before = snapshot(full_project)
    proc, _ = run_add(full_project, "big.bin")
    assert proc.returncode != 0
    assert_cache_valid(full_project.root)
    assert snapshot(full_project) == before  # no pointer, the data untouched
    # With room again, the next command clears the dead writer's temp files and succeeds.
    (full_project.root.parent / "filler").unlink()
    full_project.ok("add", "big.bin")
    assert temp_files_of(full_project.root, proc.pid) == []
    assert_clean(full_project)
    assert assert_cache_valid(full_project.root) == 1


def test_full_disk_during_add_is_a_short_error(full_project: Project) -> None:
    proc, err = run_add(full_project, "big.bin")
    assert proc.returncode == 1
    assert_short_error(err)
    assert "space" in err.lower()


def test_full_disk_during_checkout(full_project: Project) -> None:
    full_project.ok("config", "cache.type", "copy")
    (full_project.root.parent / "filler").unlink()
    full_project.ok("add", "big.bin", "small.txt")
    (full_project.root / "big.bin").unlink()
    (full_project.root.parent / "filler").write_bytes(b"\0" * 1_000_000)
    result = full_project.run("checkout")
    assert result.code == 1
    assert_short_error(result.err, "big.bin", "No space left on device")
    assert_cache_valid(full_project.root)
    assert (full_project.root / "small.txt").read_text() == "fits\n"
    (full_project.root.parent / "filler").unlink()
    full_project.ok("checkout")
    assert_clean(full_project)


# -- a killed run ----------------------------------------------------------------------------
HEARTBEAT = """\
import os, sys, time
name = sys.argv[1]
with open(f"pids/{name}.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(f"pids/{name}.tmp", f"pids/{name}")
while True:
    with open(f"beats/{name}", "a") as f:
        f.write(f"{time.time()}\\n")
    time.sleep(0.05)
"""


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (a stage's env is the runner's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def beats(project: Project) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (project.root / "beats").iterdir()}


@pytest.mark.parametrize("target", ["process group", "conveyor alone"])
def test_killed_run_leaves_no_stage_process_running(project: Project, target: str) -> None:
    """A CI cancel SIGKILLs the runner's group; stages, and what their shell started, die too."""
    python = shlex.quote(sys.executable)
    project.write("beat.py", HEARTBEAT)
    project.write(
        "conveyor.yaml",
        "stages:\n  train:\n    cmd: >-\n"
        f"      mkdir -p pids beats; {python} beat.py child &\n"
        f"      setsid {python} beat.py escaped &\n"
        "      sleep 100\n",
    )
    marker = f"CONVEYOR_TEST_RUN={os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = conveyor_process(
        "run", cwd=project.root, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        pids = project.root / "pids"
        assert wait_for(proc, lambda: pids.is_dir() and len(os.listdir(pids)) == 2)
        time.sleep(0.2)  # a few beats
        if target == "process group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(marker) == []
        before = beats(project)
        time.sleep(0.3)  # six beats' time
        assert beats(project) == before
    finally:
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def test_killed_add_storing_processes_end_quietly(project: Project, dataset: Path) -> None:
    """kill -9 of `add` mid-store: its storing processes end at once and print nothing."""
    assert (os.cpu_count() or 1) > 1, "the many-small-files path needs two cores"
    populate(project, dataset)
    proc = conveyor_process("-q", "add", "data", cwd=project.root, stderr=subprocess.PIPE)
    workers: list[int] = []

    def storing() -> bool:
        workers[:] = children_of(proc.pid)
        return len(workers) >= 2  # the pool (the folder walk's single fork has ended)

    assert wait_for(proc, storing), "add ended before its storing processes started"
    time.sleep(0.05)  # into their first tasks
    assert kill(proc)
    # stderr ends when its last writer, the last storing process, has ended.
    _, err = proc.communicate(timeout=5)
    assert err.decode() == ""
    deadline = time.monotonic() + 5  # a killed process may take a moment to free its memory
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [pid for pid in workers if running(pid)] == []
    assert_cache_valid(project.root)


# -- a metadata store that does not answer ---------------------------------------------------
@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never says a word: a hung database."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


ONE_STAGE = "stages:\n  train:\n    cmd: echo trained > model.txt\n    outs: [model.txt]\n"


def run_with_store(project: Project, url: str, *args: str) -> tuple[int, str, float]:
    env = {**os.environ, "CONVEYOR_DB": url}
    start = time.monotonic()
    proc = conveyor_process(
        *args, cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # it hung: fail, leaving no process behind
            proc.kill()
            proc.communicate()
    return proc.returncode, err.decode(), time.monotonic() - start


@pytest.mark.parametrize("server", ["silent", "refusing"])
def test_run_with_a_store_that_does_not_answer_keeps_its_records(
    project: Project, request: pytest.FixtureRequest, server: str
) -> None:
    port = request.getfixturevalue("silent_server") if server == "silent" else free_port()
    project.write("conveyor.yaml", ONE_STAGE)
    code, err, took = run_with_store(project, f"postgresql://u@127.0.0.1:{port}/db", "run")
    assert code == 0, err
    assert (project.root / "model.txt").read_text() == "trained\n"
    [warning] = err.strip().splitlines()
    assert warning.startswith("warning: the run waits in .conveyor/spool"), err
    assert f"127.0.0.1:{port}" in warning
    assert took < 40
    assert list((project.root / ".conveyor/spool").glob("*.jsonl")), "the records are gone"


def test_reading_a_store_that_does_not_answer_is_a_short_error(
    project: Project, silent_server: int
) -> None:
    code, err, took = run_with_store(
        project, f"postgresql://u@127.0.0.1:{silent_server}/db", "runs", "list"
    )
    assert code == 1
    assert_short_error(err, f"127.0.0.1:{silent_server}", "timeout")
    assert took < 40
