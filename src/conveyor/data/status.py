"""``conveyor status``: how each tracked path differs from its pointer, and what the cache lacks.

:func:`compare` is the pure core (two mappings of path -> oid in, the changes out); :func:`status`
does the I/O: it scans the workspace through the memo and checks the cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from conveyor.data import build, hashing
from conveyor.data.pointer import Pointer
from conveyor.data.tree import Tree
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import DataError
from conveyor.foundation.progress import Progress


class Changes(NamedTuple):
    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.deleted or self.modified)


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> Changes:
    """Files added, deleted and modified going from ``expected`` to ``actual`` (sorted)."""
    added = sorted(actual.keys() - expected.keys())
    deleted = sorted(expected.keys() - actual.keys())
    modified = sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p])
    return Changes(tuple(added), tuple(deleted), tuple(modified))


class PathStatus(NamedTuple):
    path: str  # the tracked path, relative to the root
    pointer: str  # the pointer file, relative to the root
    state: str  # "clean", "modified" or "missing"
    changes: Changes = Changes()
    not_in_cache: int = 0  # objects the pointer needs that the cache lacks

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "pointer": self.pointer,
            "state": self.state,
            "added": list(self.changes.added),
            "deleted": list(self.changes.deleted),
            "modified": list(self.changes.modified),
            "not_in_cache": self.not_in_cache,
        }


def status(
    ws: Workspace, targets: list[str] | None = None, *, progress: Progress | None = None
) -> list[PathStatus]:
    return [path_status(ws, p, progress=progress) for p in ws.pointers(targets)]


def path_status(ws: Workspace, ptr: Pointer, *, progress: Progress | None = None) -> PathStatus:
    data = ptr.data_path
    shown, shown_ptr = ws.display(data), ws.display(ptr.file)
    lacking = cache_lacks(ws, ptr)
    if not os.path.lexists(data):
        return PathStatus(shown, shown_ptr, "missing", not_in_cache=lacking)
    now = build.scan(ws.root, data, ws.memo, odb=ws.odb, jobs=ws.jobs, progress=progress)
    if now.oid == ptr.oid and now.is_tree == ptr.is_tree:
        return PathStatus(shown, shown_ptr, "clean", not_in_cache=lacking)
    tree = load_tree(ws, ptr)
    if tree is not None and now.is_tree:
        if now.tree is None:
            now = build.scan(ws.root, data, ws.memo, odb=ws.odb, need_tree=True, jobs=ws.jobs)
        assert now.tree is not None
        expected = {e.path: e.oid for e in tree.entries}
        changes = compare(expected, {e.path: e.oid for e in now.tree.entries})
    else:
        changes = Changes(modified=(shown,))
    return PathStatus(shown, shown_ptr, "modified", changes, lacking)


def cache_lacks(ws: Workspace, ptr: Pointer) -> int:
    """How many objects the pointer needs that the cache lacks (remembered once complete)."""
    generation = ws.odb.generation()  # before looking: a concurrent removal then invalidates
    if ptr.is_tree and ws.memo.is_complete(ptr.oid, generation):
        return 0
    lacking = missing_objects(ws, ptr, load_tree(ws, ptr))
    if lacking == 0 and ptr.is_tree:
        ws.memo.mark_complete(ptr.oid, generation)
    return lacking


def load_tree(ws: Workspace, ptr: Pointer) -> Tree | None:
    """The pointer's tree if it is a folder and its tree object is in the cache."""
    if not ptr.is_tree or not ws.odb.exists(ptr.oid):
        return None
    data = ws.odb.read_bytes(ptr.oid)
    if hashing.hash_bytes(data) != ptr.oid:  # a few milliseconds even for a large folder
        raise DataError(
            f"tree object {ptr.oid} of {ws.display(ptr.data_path)} is corrupt: its bytes no "
            "longer match its hash",
            hint="run `conveyor fsck` to move it aside, then `conveyor pull` to fetch a good copy",
        )
    return Tree.from_bytes(data, oid=ptr.oid)


def missing_objects(ws: Workspace, ptr: Pointer, tree: Tree | None) -> int:
    if not ptr.is_tree:
        return 0 if ws.odb.exists(ptr.oid) else 1
    if tree is None:
        return ptr.nfiles + 1
    return sum(1 for e in tree.entries if not ws.odb.exists(e.oid))
