"""Pointers as they were at a git revision (``checkout --rev``, ``gc --all-commits``)."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.data import pointer as pointer_mod
from conveyor.data.pointer import Pointer
from conveyor.data.workspace import Workspace
from conveyor.foundation import git
from conveyor.foundation.errors import PathError
from conveyor.foundation.paths import inside


def pointers_at(ws: Workspace, rev: str, targets: list[str] | None = None) -> list[Pointer]:
    """The pointers under the project at ``rev``, placed at their workspace paths."""
    top = git.toplevel(ws.root)
    commit = git.resolve(ws.root, rev)
    blobs = _project_blobs(ws, top, commit)
    if targets:
        wanted = {_pointer_rel(ws, top, t) for t in targets}
        missing = sorted(wanted - blobs.keys())
        if missing:
            raise PathError(f"{missing[0]} is not tracked at revision {rev}")
        blobs = {k: v for k, v in blobs.items() if k in wanted}
    texts = git.read_blobs(ws.root, blobs.values())
    return [
        pointer_mod.parse(texts[blob].decode(), top / rel, f"{rev}:{rel}", ws.root)
        for rel, blob in sorted(blobs.items())
    ]


def _project_blobs(ws: Workspace, top: Path, commit: str) -> dict[str, str]:
    prefix = os.path.relpath(ws.root, top)
    blobs = git.blobs_at(ws.root, commit, pointer_mod.SUFFIX)
    if prefix == ".":
        return blobs
    return {k: v for k, v in blobs.items() if k.startswith(prefix + "/")}


def _pointer_rel(ws: Workspace, top: Path, target: str) -> str:
    path = inside(ws.root, target)
    if not path.name.endswith(pointer_mod.SUFFIX):
        path = pointer_mod.pointer_file_for(path)
    return path.relative_to(top.resolve()).as_posix()


def oids_in_history(ws: Workspace) -> dict[str, set[str]]:
    """Every pointer ref (``oid`` or ``oid.tree``) in any commit -> the pointer paths naming it."""
    top = git.toplevel(ws.root)
    blobs: dict[str, str] = {}
    for commit in git.all_commits(ws.root):
        for rel, blob in _project_blobs(ws, top, commit).items():
            blobs.setdefault(blob, rel)
    refs: dict[str, set[str]] = {}
    for blob, data in git.read_blobs(ws.root, blobs).items():
        ptr = pointer_mod.parse(data.decode(), top / blobs[blob], f"git:{blobs[blob]}")
        refs.setdefault(ptr.ref, set()).add(blobs[blob])
    return refs
