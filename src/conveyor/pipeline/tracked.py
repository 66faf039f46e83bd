"""Pipeline outs as the data layer sees them: pointers to push, pull and keep from gc.

``conveyor.lock`` names every out a stage wrote; those objects matter as much as data tracked
with ``conveyor add``. The data layer knows nothing of the lock, so the commands hand it these.
"""

from __future__ import annotations

import os

from conveyor.data.pointer import Pointer
from conveyor.data.workspace import Workspace
from conveyor.foundation import git
from conveyor.pipeline import definition
from conveyor.pipeline import lock as lock_mod
from conveyor.pipeline.outs import pointer


def out_pointers(ws: Workspace) -> list[Pointer]:
    """The cached outs (``cache: true``) that the workspace's ``conveyor.lock`` records."""
    entries = lock_mod.load(ws.root)
    if not entries:
        return []
    cached = {
        o.path for stage in definition.load(ws.root).stages.values() for o in stage.outs if o.cache
    }
    found: dict[str, Pointer] = {}
    for entry in entries.values():
        for rel, meta in entry.outs.items():
            if rel in cached:
                found[rel] = pointer(ws.root, rel, meta)
    return [found[rel] for rel in sorted(found)]


def lock_refs(ws: Workspace, *, all_commits: bool = False) -> dict[str, set[str]]:
    """Out ref -> where it is named: the workspace's lock, and every commit's if asked.

    Every out is kept, cached or not: a run-cache restore needs the object either way.
    """
    refs: dict[str, set[str]] = {}
    for name, entry in lock_mod.load(ws.root).items():
        for rel, meta in entry.outs.items():
            refs.setdefault(meta.hash, set()).add(f"{lock_mod.FILE} ({name}: {rel})")
    if not all_commits:
        return refs
    top = git.toplevel(ws.root)
    prefix = os.path.relpath(ws.root, top)
    wanted = lock_mod.FILE if prefix == "." else f"{prefix}/{lock_mod.FILE}"
    blobs: dict[str, str] = {}
    for commit in git.all_commits(ws.root):
        blob = git.blobs_at(ws.root, commit, lock_mod.FILE).get(wanted)
        if blob is not None:
            blobs.setdefault(blob, commit)
    for blob, text in git.read_blobs(ws.root, blobs).items():
        source = f"{lock_mod.FILE} at {blobs[blob][:8]}"
        for name, entry in lock_mod.parse(text.decode(), source).items():
            for rel, meta in entry.outs.items():
                refs.setdefault(meta.hash, set()).add(f"{source} ({name}: {rel})")
    return refs
