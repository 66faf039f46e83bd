"""A file as a run or a lock recorded it: an out of its own, or a file inside an out folder.

Runs and locks record their outs as ``path -> ref`` (``<oid>`` for a file, ``<oid>.tree`` for a
folder). dvclive and similar loggers write metrics and plots files inside an out folder, so a
reader of "this file as the run left it" must look inside the folder's tree as well.
"""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.data.hashing import is_oid
from conveyor.data.objects import ObjectDB
from conveyor.data.tree import Tree, split_ref


def read(odb: ObjectDB, outs: Mapping[str, str], path: str) -> bytes | None:
    """The bytes of ``path`` from the cache; None when no out holds it or it is not cached."""
    ref = outs.get(path)
    if ref is not None:
        oid, is_tree = split_ref(ref)
        if not is_oid(oid):  # a record edited outside conveyor: never a path into the cache
            return None
        return odb.read_bytes(oid) if not is_tree and odb.exists(oid) else None
    for folder, ref in outs.items():
        if not path.startswith(folder + "/"):
            continue
        oid, is_tree = split_ref(ref)
        if not is_tree or not is_oid(oid) or not odb.exists(oid):
            return None
        entry = Tree.from_bytes(odb.read_bytes(oid), oid=oid).by_path().get(path[len(folder) + 1 :])
        return odb.read_bytes(entry.oid) if entry and odb.exists(entry.oid) else None
    return None
