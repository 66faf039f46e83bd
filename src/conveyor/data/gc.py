"""``conveyor gc``: remove cache (or remote) objects that no pointer references.

What is kept is decided by :func:`needed`, a pure function over plain values: the pointer refs in
scope (the workspace's, plus every commit's with ``all_commits``), each expanded through its
tree. A tree that cannot be read stops gc: guessing its entries could delete data a pointer
needs, so the user is asked to fetch the tree first.

    >>> from conveyor.data.tree import Entry, Tree
    >>> tree = Tree.of([Entry("a.txt", "b" * 64, 3)])
    >>> keep = needed({"a" * 64 + ".tree": {"data.cvy"}}, {"a" * 64: tree}.get)
    >>> sorted(oid[:4] for oid in keep)
    ['aaaa', 'bbbb']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.data import hashing
from conveyor.data.objects import ObjectDB
from conveyor.data.remote import MissingObject, Remote
from conveyor.data.revision import oids_in_history
from conveyor.data.tree import Tree, split_ref
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import DataError
from conveyor.foundation.progress import Progress, Silent

TreeReader = Callable[[str], Tree | None]
_CHUNK = 1000  # objects removed between progress updates


@dataclass(frozen=True)
class Garbage:
    """Objects that no pointer in scope references, and their total size in bytes."""

    oids: tuple[str, ...]
    size: int
    kept: int  # objects present that stay

    def __len__(self) -> int:
        return len(self.oids)


def needed(refs: Mapping[str, Collection[str]], read_tree: TreeReader) -> set[str]:
    """Every oid ``refs`` (pointer ref -> names of the pointers holding it) need.

    A file ref needs its oid; a tree ref needs the tree object and every entry. ``read_tree``
    returns None for a tree it cannot find, which raises :class:`DataError` naming the pointer.
    """
    keep: set[str] = set()
    unknown: list[tuple[str, str]] = []
    for ref, names in sorted(refs.items()):
        oid, is_tree = split_ref(ref)
        keep.add(oid)
        if not is_tree:
            continue
        tree = read_tree(oid)
        if tree is None:
            unknown.append((oid, min(names)))
            continue
        keep.update(e.oid for e in tree.entries)
    if unknown:
        oid, name = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise DataError(
            f"tree object {oid} named by {name}{more} is not in the cache; "
            "gc cannot tell which objects it needs, so it removed nothing",
            hint="fetch it with `conveyor pull` first (for a tree only an old commit names, "
            "pull at that commit), then run gc again",
        )
    return keep


def unreferenced(present: Iterable[str], keep: Collection[str]) -> list[str]:
    """The oids of ``present`` that are not in ``keep``, sorted."""
    return sorted(oid for oid in set(present) if oid not in keep)


def refs_in_scope(ws: Workspace, *, all_commits: bool = False) -> dict[str, set[str]]:
    """Pointer ref -> the pointers naming it: the workspace's, and every commit's if asked.

    A malformed pointer in the workspace raises: gc must not run without knowing what it names.
    """
    refs: dict[str, set[str]] = {}
    for ptr in ws.pointers():
        refs.setdefault(ptr.ref, set()).add(ws.display(ptr.file))
    if all_commits:
        for ref, paths in oids_in_history(ws).items():
            refs.setdefault(ref, set()).update(f"{p} (in git history)" for p in paths)
    return refs


def cache_tree_reader(odb: ObjectDB) -> TreeReader:
    """Read trees from the cache; a tree whose bytes no longer match its name is refused."""

    def read(oid: str) -> Tree | None:
        if not odb.exists(oid):
            return None
        if not odb.verify(oid):
            raise DataError(
                f"tree object {oid} in the cache is corrupt; gc removed nothing",
                hint="run `conveyor fsck` to quarantine it, then `conveyor pull`",
            )
        return Tree.from_bytes(odb.read_bytes(oid), oid=oid)

    return read


def referenced(
    ws: Workspace,
    *,
    all_commits: bool = False,
    remote: Remote | None = None,
    extra: Mapping[str, Collection[str]] | None = None,
) -> set[str]:
    """Every oid the pointers in scope need (see :func:`needed`), and the ``extra`` refs'.

    ``extra`` is how higher layers keep what they reference (pipeline outs in conveyor.lock).
    Trees are read from the cache, or else from ``remote`` when one is given.
    """
    reader = remote_tree_reader(remote, ws.odb) if remote else cache_tree_reader(ws.odb)
    refs = refs_in_scope(ws, all_commits=all_commits)
    for ref, names in (extra or {}).items():
        refs.setdefault(ref, set()).update(names)
    return needed(refs, reader)


def find_garbage(odb: ObjectDB, keep: Collection[str]) -> Garbage:
    """What gc would remove from ``odb`` given the oids to ``keep`` (nothing is removed here)."""
    present = list(odb.iter_oids())
    oids = unreferenced(present, keep)
    size = sum(_size(odb, oid) for oid in oids)
    return Garbage(tuple(oids), size, len(present) - len(oids))


def remove(
    store: ObjectDB | Remote, oids: Sequence[str], *, progress: Progress | None = None
) -> None:
    """Delete ``oids`` from the cache or a remote, in chunks so that progress can be shown.

    Shard folders stay: another writer may be about to put an object in one.
    """
    progress = progress or Silent()
    progress.start("removing", len(oids))
    try:
        for i in range(0, len(oids), _CHUNK):
            chunk = oids[i : i + _CHUNK]
            if isinstance(store, ObjectDB):
                store.remove_many(chunk)  # tells readers of "tree complete" memos
            else:
                store.remove(chunk)
            progress.advance(len(chunk))
    finally:
        progress.stop()


def remote_tree_reader(remote: Remote, odb: ObjectDB) -> TreeReader:
    """Read trees from the cache, else from ``remote`` (verified, and not kept in the cache)."""
    local = cache_tree_reader(odb)

    def read(oid: str) -> Tree | None:
        tree = local(oid)
        if tree is not None:
            return tree
        odb.tmp.mkdir(parents=True, exist_ok=True)
        tmp = odb.temp_path()
        try:
            remote.download(oid, tmp)
            data = Path(tmp).read_bytes()
        except MissingObject:
            return None
        finally:
            Path(tmp).unlink(missing_ok=True)
        if hashing.hash_bytes(data) != oid:
            raise DataError(
                f"tree object {oid} on remote {remote.name} is corrupt; gc removed nothing",
                hint="push a good copy from a clone that has it (`conveyor push`)",
            )
        return Tree.from_bytes(data, oid=oid)

    return read


def _size(odb: ObjectDB, oid: str) -> int:
    try:
        return os.stat(odb.path(oid)).st_size
    except FileNotFoundError:
        return 0
