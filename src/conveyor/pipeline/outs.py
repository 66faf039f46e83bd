"""The pipeline's edge to the object store: hash deps and outs, store outs, restore them.

A run deletes each out before its stage runs and writes it back from the cache, so an out is
checked twice: by name when ``conveyor.yaml`` is compiled (:func:`check_out`: never ``.git``,
``.conveyor``, a pointer or a control file), and on disk before anything runs
(:func:`check_places`: no folder on the way that is a link out of the project, or a file).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from conveyor.data import build
from conveyor.data.pointer import Pointer
from conveyor.data.status import cache_lacks
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import PathError, PipelineError
from conveyor.foundation.paths import check_path, check_place
from conveyor.pipeline.stage import Meta, Out, Stage

_FIX = "declare outs the stage writes inside the project, outside .git and .conveyor"


def check_out(rel: str, where: str) -> None:
    """Refuse an out (relative to the root) that a run must never delete or write."""
    check_path(rel, where=where, what="out", hint=_FIX)


def check_places(root: Path, stages: Iterable[Stage], source: str) -> None:
    """Refuse, before anything runs, an out that lies under a link leaving the project or under
    a file; errors name ``source:LINE`` (where the stage is declared) and the stage."""
    for stage in stages:
        where = f"{source}:{stage.line}: stage {stage.name!r}"
        for out in stage.outs:
            check_place(root, out.path, where=where, what="out")
            _check_folders(root, out.path, where)


def _check_folders(root: Path, rel: str, where: str) -> None:
    folder = root
    for part in rel.split("/")[:-1]:
        folder = folder / part
        try:
            st = os.stat(folder)  # a link inside the project was let through: follow it
        except FileNotFoundError:
            return  # made when the stage runs
        if not stat.S_ISDIR(st.st_mode):
            shown = folder.relative_to(root).as_posix()
            raise PathError(
                f"{where}: out {rel} needs {shown} to be a folder, but it is a file",
                hint=f"move {shown} away (or change the out's path), then run again",
            )


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


def pointer_meta(ptr: Pointer) -> Meta:
    """What a pointer names, as a dep or out's meta."""
    return Meta(ptr.oid + (".tree" if ptr.is_tree else ""), ptr.size, ptr.nfiles)


def clear(root: Path, outs: tuple[Out, ...]) -> None:
    """Remove non-persistent outs before a stage runs; make the folders outs are written in."""
    for out in outs:
        path = root / out.path
        if not out.persist:
            remove(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # an upstream stage wrote a file there
            _check_folders(root, out.path, "conveyor run")
            raise


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
        raise PipelineError(
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


def adopt(ws: Workspace, outs: tuple[Out, ...], metas: dict[str, Meta]) -> dict[str, Meta]:
    """Outs a stage wrote elsewhere (on a Ray worker), whose objects the cache holds now:
    checked out into the workspace as :func:`commit` would have left them; their metas."""
    missing = [o.path for o in outs if o.path not in metas]
    if missing:
        raise PipelineError(
            f"the command succeeded but did not write {', '.join(missing)}",
            hint="make the command write every declared out, or remove it from 'outs'",
        )
    chosen = {o.path: metas[o.path] for o in outs}
    for out in outs:
        remove(ws.root / out.path)  # a persistent one came back grown from the worker
    restore(ws, chosen)
    from conveyor.data.add import ignore

    for out in outs:
        if out.cache:
            ignore(ws.root / out.path)
    return chosen


def restore(ws: Workspace, metas: dict[str, Meta], *, link_types: list[str] | None = None) -> None:
    """Write outs from the cache into the workspace (what differs only)."""
    from conveyor.data.checkout import checkout  # the runner's path only: status never loads it

    pointers = [pointer(ws.root, rel, meta) for rel, meta in sorted(metas.items())]
    checkout(ws, pointers, link_types=link_types, force=True)
