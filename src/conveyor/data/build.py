"""Build: hash a file or folder (memo first), store what is new, and describe it as a tree.

``scan`` is shared by ``add`` (which stores objects) and ``status`` (which only hashes). Files
whose (inode, mtime, size) match the memo are never read; the others are read once, on several
threads, and written to the cache from the same buffer.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conveyor.data import hashing
from conveyor.data.objects import Batch
from conveyor.data.state import Stat, StateMemo, stat_key
from conveyor.data.tree import Entry, Tree
from conveyor.foundation.errors import PathError
from conveyor.foundation.progress import Progress, Silent

_CHUNK = 64  # files per task handed to a worker thread


@dataclass(frozen=True)
class Found:
    rel: str  # relative to the scanned folder ("" for a single file)
    abspath: str
    st: Stat
    executable: bool


@dataclass(frozen=True)
class Built:
    """What a tracked path holds now: one file's oid, or a folder's tree."""

    oid: str
    is_tree: bool
    size: int
    nfiles: int
    tree: Tree | None = None


def walk(folder: Path) -> list[Found]:
    """Every regular file under ``folder`` (symlinks to files followed, to folders not)."""
    found: list[Found] = []
    stack: list[tuple[str, str]] = [(os.fspath(folder), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            entries = list(os.scandir(path))
        except PermissionError as exc:
            raise PathError(f"cannot read folder {path}: permission denied") from exc
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, rel + "/"))
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # a dangling symlink or a file removed while we look
            if stat_mod.S_ISREG(st.st_mode):
                found.append(Found(rel, entry.path, stat_key(st), bool(st.st_mode & 0o100)))
    return found


def scan(
    root: Path,
    target: Path,
    memo: StateMemo,
    *,
    store: Batch | None = None,
    jobs: int = 4,
    progress: Progress | None = None,
) -> Built:
    """Hash ``target`` (a file or folder inside ``root``), storing new objects in ``store``."""
    progress = progress or Silent()
    rel_target = target.relative_to(root).as_posix()
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise PathError(f"{rel_target} does not exist") from None
    except PermissionError:
        raise PathError(f"{rel_target} cannot be read: permission denied") from None
    if stat_mod.S_ISDIR(st.st_mode):
        files = walk(target)
        known = memo.under(rel_target)
        key_of: Callable[[Found], str] = lambda f: f"{rel_target}/{f.rel}"  # noqa: E731
    elif stat_mod.S_ISREG(st.st_mode):
        files = [Found("", os.fspath(target), stat_key(st), bool(st.st_mode & 0o100))]
        digest = memo.get(rel_target, st)
        known = {rel_target: (stat_key(st), digest)} if digest else {}
        key_of = lambda f: rel_target  # noqa: E731
    else:
        raise PathError(f"{rel_target} is neither a file nor a folder")

    oids: dict[str, str] = {}
    pending: list[Found] = []
    for f in files:
        hit = known.get(key_of(f))
        if hit is not None and hit[0] == f.st and (store is None or store.odb.exists(hit[1])):
            oids[f.rel] = hit[1]
        else:
            pending.append(f)

    if pending:
        oids.update(_hash_all(pending, store, jobs, progress))
        memo.save((key_of(f), f.st, oids[f.rel]) for f in pending)

    if not stat_mod.S_ISDIR(st.st_mode):
        f = files[0]
        return Built(oids[f.rel], False, f.st[2], 1)
    tree = Tree.of([Entry(f.rel, oids[f.rel], f.st[2], f.executable) for f in files])
    data = tree.to_bytes()
    tree_oid = store.add_bytes(data) if store is not None else hashing.hash_bytes(data)
    return Built(tree_oid, True, tree.size, len(tree.entries), tree)


def _hash_all(
    pending: list[Found], store: Batch | None, jobs: int, progress: Progress
) -> dict[str, str]:
    total = sum(f.st[2] for f in pending)
    progress.start("hashing" if store is None else "storing", total, unit="bytes")

    def work(chunk: list[Found]) -> list[tuple[str, str]]:
        out = []
        for f in chunk:
            try:
                if store is None:
                    oid = hashing.hash_file(f.abspath, f.st[2])
                else:
                    oid = store.add_file(f.abspath, f.st[2])
            except PermissionError:
                raise PathError(f"cannot read {f.abspath}: permission denied") from None
            out.append((f.rel, oid))
            progress.advance(f.st[2])
        return out

    results: dict[str, str] = {}
    try:
        big = [f for f in pending if f.st[2] >= hashing.SMALL]
        small = [f for f in pending if f.st[2] < hashing.SMALL]
        # Large files already use two threads each (copy and hash): run them one at a time.
        results.update(work(big))
        chunks = [small[i : i + _CHUNK] for i in range(0, len(small), _CHUNK)]
        if jobs <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                results.update(work(chunk))
        else:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="conveyor-hash") as pool:
                for part in pool.map(work, chunks):
                    results.update(part)
    finally:
        progress.stop()
    return results
