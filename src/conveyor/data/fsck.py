"""``conveyor fsck``: re-hash every cache object and cross-check the workspace's pointers.

Objects whose bytes no longer match their name are moved to the quarantine folder (kept for
inspection, out of the cache), so that ``conveyor pull`` fetches good copies and nothing ever
links a corrupt object into the workspace again. The report also names every workspace path that
used a corrupt object, tree objects that do not parse as trees, pointers whose objects the cache
lacks, and pointer files that cannot be read.

:func:`cross_check` is the pure core: given the pointers, their trees and what the cache holds,
it says which paths use which object and what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from conveyor.data import hashing
from conveyor.data import pointer as pointer_mod
from conveyor.data.pointer import Pointer
from conveyor.data.tree import Tree
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConveyorError
from conveyor.foundation.progress import Progress, Silent

_CHUNK = 64  # small objects per task handed to a worker thread


@dataclass(frozen=True)
class Corrupt:
    oid: str
    reason: str  # what re-hashing found
    used_by: tuple[str, ...] = ()  # workspace paths whose pointer names this object
    quarantined: str | None = None  # where the object was moved, relative to the root


@dataclass(frozen=True)
class InvalidTree:
    oid: str
    reason: str
    used_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Missing:
    pointer: str
    path: str
    oids: tuple[str, ...]  # objects the pointer needs that the cache lacks


@dataclass(frozen=True)
class BadPointer:
    pointer: str
    error: str


@dataclass(frozen=True)
class Report:
    checked: int
    size: int
    corrupt: tuple[Corrupt, ...] = ()
    invalid_trees: tuple[InvalidTree, ...] = ()
    missing: tuple[Missing, ...] = ()
    bad_pointers: tuple[BadPointer, ...] = ()

    @property
    def ok(self) -> bool:
        """False if anything is broken; missing objects alone are not (``pull`` fetches them)."""
        return not (self.corrupt or self.invalid_trees or self.bad_pointers)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, **asdict(self)}


@dataclass
class Uses:
    """What :func:`cross_check` found: which paths use each oid, and what the cache lacks."""

    used_by: dict[str, list[str]] = field(default_factory=dict)
    missing: list[Missing] = field(default_factory=list)


def cross_check(
    pointers: list[tuple[str, str, Pointer]],
    trees: Mapping[str, Tree],
    present: Collection[str],
) -> Uses:
    """Map each oid to the workspace paths that use it, and list what ``present`` lacks.

    ``pointers`` holds (pointer display, data path display, pointer); ``trees`` the readable
    trees by oid. A tree pointer whose tree is unreadable uses only the tree object itself.
    """
    uses = Uses()
    for shown_ptr, shown_path, ptr in pointers:
        needed = [(ptr.oid, f"{shown_path} ({shown_ptr})")]
        tree = trees.get(ptr.oid) if ptr.is_tree else None
        if tree is not None:
            needed += [(e.oid, f"{shown_path}/{e.path} ({shown_ptr})") for e in tree.entries]
        for oid, where in needed:
            uses.used_by.setdefault(oid, []).append(where)
        lacking = tuple(dict.fromkeys(oid for oid, _ in needed if oid not in present))
        if lacking:
            uses.missing.append(Missing(shown_ptr, shown_path, lacking))
    return uses


def hash_objects(
    ws: Workspace, sizes: Mapping[str, int], *, progress: Progress | None = None
) -> dict[str, str]:
    """Re-hash objects (oid -> size) on ``ws.jobs`` threads; returns oid -> why it is corrupt.

    A size below zero marks an object that vanished since it was listed: it is skipped.
    """
    progress = progress or Silent()
    oids = list(sizes)
    progress.start("checking", sum(s for s in sizes.values() if s > 0), unit="bytes")

    def work(chunk: list[str]) -> list[tuple[str, str]]:
        bad = []
        for oid in chunk:
            reason = _check(ws, oid, sizes[oid])
            if reason is not None:
                bad.append((oid, reason))
            progress.advance(max(sizes[oid], 0))
        return bad

    corrupt: dict[str, str] = {}
    try:
        # Large objects are hashed on every core already: one at a time.
        corrupt.update(work([o for o in oids if sizes[o] >= hashing.SMALL]))
        small = [o for o in oids if sizes[o] < hashing.SMALL]
        chunks = [small[i : i + _CHUNK] for i in range(0, len(small), _CHUNK)]
        if ws.jobs <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                corrupt.update(work(chunk))
        else:
            with ThreadPoolExecutor(ws.jobs, thread_name_prefix="conveyor-fsck") as pool:
                for part in pool.map(work, chunks):
                    corrupt.update(part)
    finally:
        progress.stop()
    return corrupt


def fsck(ws: Workspace, *, quarantine: bool = True, progress: Progress | None = None) -> Report:
    """Check the whole cache and every workspace pointer; quarantine corrupt objects."""
    sizes = {oid: _size(ws, oid) for oid in ws.odb.iter_oids()}
    bad = hash_objects(ws, sizes, progress=progress)
    present = {oid for oid, size in sizes.items() if size >= 0} - bad.keys()

    pointers: list[tuple[str, str, Pointer]] = []
    bad_pointers = []
    for file in sorted(pointer_mod.discover(ws.root)):
        try:
            ptr = pointer_mod.load(file, ws.root)
        except ConveyorError as exc:
            bad_pointers.append(BadPointer(ws.display(file), exc.message))
            continue
        pointers.append((ws.display(ptr.file), ws.display(ptr.data_path), ptr))

    trees: dict[str, Tree] = {}
    invalid: dict[str, str] = {}
    for _, _, ptr in pointers:
        if ptr.is_tree and ptr.oid in present and ptr.oid not in trees:
            try:
                trees[ptr.oid] = Tree.from_bytes(ws.odb.read_bytes(ptr.oid), oid=ptr.oid)
            except ConveyorError as exc:
                invalid[ptr.oid] = exc.message

    # Corrupt objects are reported as corrupt, not also as missing.
    uses = cross_check(pointers, trees, present | bad.keys())
    corrupt = []
    for oid, reason in sorted(bad.items()):
        moved = None
        if quarantine:
            moved = ws.display(ws.odb.quarantine(oid, ws.paths.quarantine))
        corrupt.append(Corrupt(oid, reason, tuple(uses.used_by.get(oid, ())), moved))
    return Report(
        checked=len(sizes),
        size=sum(size for size in sizes.values() if size > 0),
        corrupt=tuple(corrupt),
        invalid_trees=tuple(
            InvalidTree(oid, why, tuple(uses.used_by.get(oid, ())))
            for oid, why in sorted(invalid.items())
        ),
        missing=tuple(uses.missing),
        bad_pointers=tuple(bad_pointers),
    )


def _check(ws: Workspace, oid: str, size: int) -> str | None:
    """Why the object is corrupt, or None if its bytes still hash to its name."""
    if size < 0:
        return None  # removed while we looked
    try:
        actual = hashing.hash_file(ws.odb.path(oid), size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == oid else f"its bytes hash to {actual}"


def _size(ws: Workspace, oid: str) -> int:
    try:
        return os.stat(ws.odb.path(oid)).st_size
    except FileNotFoundError:
        return -1
