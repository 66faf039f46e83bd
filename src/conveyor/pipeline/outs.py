"""The pipeline's edge to the object store: hash deps and outs, store outs, restore them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conveyor.data import build
from conveyor.data.pointer import Pointer
from conveyor.data.status import cache_lacks
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConveyorError
from conveyor.pipeline.stage import Meta, Out


class Observer:
    """Hashes of workspace paths, each computed once per run until a stage rewrites it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.seen: dict[str, Meta | None] = {}

    def meta(self, rel: str) -> Meta | None:
        if rel not in self.seen:
            path = self.ws.root / rel
            if not os.path.lexists(path):
                self.seen[rel] = None
            else:
                built = build.scan(self.ws.root, path, self.ws.memo, jobs=self.ws.jobs)
                self.seen[rel] = _meta(built)
        return self.seen[rel]

    def forget(self, rel: str) -> None:
        """``rel`` was (re)written: drop it, what is inside it and the folders holding it."""
        for known in list(self.seen):
            if known == rel or known.startswith(rel + "/") or rel.startswith(known + "/"):
                del self.seen[known]

    def in_cache(self, meta: Meta) -> bool:
        return cache_lacks(self.ws, pointer(self.ws.root, "_", meta)) == 0


def _meta(built: build.Built) -> Meta:
    return Meta(built.oid + (".tree" if built.is_tree else ""), built.size, built.nfiles)


def pointer(root: Path, rel: str, meta: Meta) -> Pointer:
    """A pointer value for an out (never written to disk: checkout and transfers need values)."""
    path = root / rel
    file = path.with_name(path.name + ".cvy")
    return Pointer(file, path.name, meta.oid, meta.is_tree, meta.size, meta.nfiles)


def clear(root: Path, outs: tuple[Out, ...]) -> None:
    """Remove non-persistent outs before a stage runs; make the folders outs are written in."""
    for out in outs:
        path = root / out.path
        if not out.persist:
            remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def commit(ws: Workspace, outs: tuple[Out, ...]) -> dict[str, Meta]:
    """Store every out in the object cache (durably, at once); their metas by path.

    Outs with ``cache: false`` are stored too, so a run-cache hit can restore them; they are
    not git-ignored, since the user commits them.
    """
    missing = [o.path for o in outs if not os.path.lexists(ws.root / o.path)]
    if missing:
        raise ConveyorError(
            f"the command succeeded but did not write {', '.join(missing)}",
            hint="make the command write every declared out, or remove it from 'outs'",
        )
    metas: dict[str, Meta] = {}
    built = []
    with ws.odb.batch() as batch:
        for out in outs:
            result = build.scan(ws.root, ws.root / out.path, ws.memo, store=batch, jobs=ws.jobs)
            built.append(result)
            metas[out.path] = _meta(result)
    generation = ws.odb.generation()
    for result in built:
        if result.is_tree:
            ws.memo.mark_complete(result.oid, generation)
    from conveyor.data.add import ignore

    for out in outs:
        if out.cache:
            ignore(ws.root / out.path)
    return metas


def restore(ws: Workspace, metas: dict[str, Meta], *, link_types: list[str] | None = None) -> None:
    """Write outs from the cache into the workspace (what differs only)."""
    from conveyor.data.checkout import checkout  # the runner's path only: status never loads it

    pointers = [pointer(ws.root, rel, meta) for rel, meta in sorted(metas.items())]
    checkout(ws, pointers, link_types=link_types, force=True)
