"""A team shares its run-cache: entries pushed to and pulled from a remote, with their outs.

On a remote, entries live beside the objects under ``ROOT/runs/ab/cdef...`` (as DVC keeps its
run-cache under ``runs/``): a store of its own, opened with ``open_remote(..., under="runs")``,
which the object listings (``ab/`` shards, ``gc --remote``) never look into.

- :func:`push_runs` sends the objects of every entry the remote lacks first (as ``conveyor
  push`` sends objects: files, then complete trees, each verified), and only then the entries
  whose outs are all on the remote now. An entry naming an object that is neither in the cache
  nor on the remote (``conveyor gc`` removed it) is skipped and counted: an entry on a remote
  always means its outs can be pulled from it.
- :func:`pull_runs` downloads every entry the cache lacks and checks each one
  (:func:`~conveyor.pipeline.runcache.parse`: its identity must hash to its name, its out paths
  must stay in the project); a bad one is refused, named, and never stored. The objects of the
  good ones are fetched (each verified against its hash), and an entry is written into
  ``.conveyor/cache/runs/`` (atomically, under its checked key, never anywhere else) only once
  all its objects are in the cache, so ``conveyor run`` can restore it without a network.

:func:`split_complete` is the pure core of both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from conveyor.data.hashing import object_path
from conveyor.data.remote import protocol_of
from conveyor.foundation.errors import DataError
from conveyor.foundation.progress import Progress, Silent
from conveyor.pipeline.outs import pointer
from conveyor.pipeline.runcache import MAX_ENTRY, BadEntry, Entry, FolderRunCache, parse

if TYPE_CHECKING:
    from conveyor.data.pointer import Pointer
    from conveyor.data.remote import Fetched
    from conveyor.data.transfer import TransferResult
    from conveyor.data.workspace import Workspace

RUNS = "runs"  # the remote's subfolder that holds the entries
# A web server's folder listing (if any) is no inventory: its entries cannot be found.
_UNLISTABLE = frozenset({"http", "https"})
_SHOWN = 3  # entries named in an error before "and N more"


def local_cache(ws: Workspace) -> FolderRunCache:
    """The workspace's run-cache (``.conveyor/cache/runs``)."""
    return FolderRunCache(ws.paths.cache / RUNS)


def split_complete(entries: Mapping[str, Entry], present: set[str]) -> tuple[list[str], list[str]]:
    """The keys of the entries whose outs' objects are all in ``present``, and the others.

    A folder out counts by its tree object: a tree is only ever stored (on a remote, or by a
    pull) once every file it names is, so its presence vouches for the whole folder.

    >>> from conveyor.pipeline.stage import Meta
    >>> e = Entry("k1", {}, {"m": Meta("ab" * 32, 1, 1)})
    >>> split_complete({"k1": e}, {"ab" * 32}), split_complete({"k1": e}, set())
    ((['k1'], []), ([], ['k1']))
    """
    complete: list[str] = []
    incomplete: list[str] = []
    for key in sorted(entries):
        outs = entries[key].outs.values()
        (complete if all(m.oid in present for m in outs) else incomplete).append(key)
    return complete, incomplete


@dataclass
class RunsPushed:
    """What ``push --run-cache`` did with the entries."""

    remote: str
    objects: TransferResult  # the entries' outs' objects
    pushed: int = 0
    already: int = 0  # entries the remote had
    incomplete: list[str] = field(default_factory=list)  # skipped: objects not on the remote
    unreadable: dict[str, str] = field(default_factory=dict)  # local entries not sent: why

    def error(self) -> DataError | None:
        """Objects of entries that are corrupt in the cache (missing ones only skip entries)."""
        return replace(self.objects, missing={}).error()


@dataclass
class RunsPulled:
    """What ``pull --run-cache`` did with the entries."""

    remote: str
    url: str
    objects: TransferResult | None = None  # the entries' outs' objects
    pulled: int = 0  # entries written into the cache
    already: int = 0  # entries the cache had
    incomplete: list[str] = field(default_factory=list)  # not written: objects not on the remote
    refused: dict[str, str] = field(default_factory=dict)  # key -> why it was refused
    unlisted: bool = False  # an HTTP remote: its entries cannot be listed, none were pulled

    def error(self) -> DataError | None:
        """Refused entries and corrupt objects, in one error; None if there were none."""
        errors = []
        if self.refused:
            key, why = sorted(self.refused.items())[0]
            more = len(self.refused) - 1
            errors.append(
                DataError(
                    f"{_entries(len(self.refused))} on remote {self.remote!r} "
                    f"{'are' if more else 'is'} refused and not stored: {key[:12]}… {why}"
                    + (f" (and {more} more)" if more else ""),
                    hint=f"delete the bad entry ({self.url}/{RUNS}/{object_path(key)}); a "
                    "clone that ran the stage pushes a good one with `conveyor push --run-cache`",
                )
            )
        if self.objects is not None:
            corrupt = replace(self.objects, missing={}).error()
            if corrupt is not None:
                errors.append(corrupt)
        if not errors:
            return None
        if len(errors) == 1:
            return errors[0]
        return DataError(
            "; ".join(e.message for e in errors), hint="; ".join(e.hint for e in errors if e.hint)
        )


def push_runs(
    ws: Workspace,
    name: str | None = None,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> RunsPushed:
    """Push the run-cache entries the remote ``name`` (default: core.remote) lacks, after the
    objects their outs name (see the module)."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import push

    progress = progress or Silent()
    jobs = jobs or ws.jobs
    objects = open_remote(ws, name, jobs=jobs)
    runs = open_remote(ws, name, jobs=jobs, under=RUNS)
    cache = local_cache(ws)
    entries: dict[str, Entry] = {}
    unreadable: dict[str, str] = {}
    for key in cache.iter_keys():
        try:
            entries[key] = cache.read(key)
        except BadEntry as exc:
            unreadable[key] = exc.message
    there = runs.exists_many(entries)
    todo = {k: e for k, e in entries.items() if k not in there}
    moved = push(ws, objects, pointers(ws, todo.values()), jobs=jobs, progress=progress)
    complete, incomplete = split_complete(todo, moved.present)
    result = RunsPushed(objects.name, moved, already=len(there), incomplete=incomplete)
    result.unreadable = unreadable

    def sent(key: str) -> None:
        result.pushed += 1
        progress.advance(1)

    progress.start(f"pushing run-cache entries to {objects.name}", len(complete))
    try:
        items = [(str(cache.path(k)), k) for k in complete]
        runs.upload_many(items, jobs=jobs, done=sent)
    finally:
        progress.stop()
    return result


def pull_runs(
    ws: Workspace,
    name: str | None = None,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> RunsPulled:
    """Pull the run-cache entries the cache lacks from the remote ``name`` (default:
    core.remote), with their outs' objects (see the module)."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import fetch
    from conveyor.data.transfer_io import Scratch

    progress = progress or Silent()
    jobs = jobs or ws.jobs
    objects = open_remote(ws, name, jobs=jobs)
    if protocol_of(objects.url) in _UNLISTABLE:
        return RunsPulled(objects.name, objects.url, unlisted=True)
    runs = open_remote(ws, name, jobs=jobs, under=RUNS)
    cache = local_cache(ws)
    listed = sorted(set(runs.iter_oids()))
    lacking = [k for k in listed if not cache.has(k)]
    result = RunsPulled(objects.name, objects.url, already=len(listed) - len(lacking))
    good: dict[str, Entry] = {}

    def arrived(key: str, got: Fetched) -> None:
        progress.advance(1)
        if got.path is None:  # removed from the remote since it was listed
            return
        try:
            good[key] = parse(key, _read_at_most(got.path, MAX_ENTRY))
        except BadEntry as exc:
            result.refused[key] = exc.message
        finally:
            os.unlink(got.path)

    ws.odb.ensure_tmp()
    progress.start(f"fetching run-cache entries from {objects.name}", len(lacking))
    try:
        with Scratch(ws.odb.tmp, f"{os.getpid()}.{uuid.uuid4().hex[:8]}.runs") as scratch:
            runs.download_many(lacking, scratch, jobs=jobs, done=arrived)
    finally:
        progress.stop()
    result.objects = fetch(ws, objects, pointers(ws, good.values()), jobs=jobs, progress=progress)
    complete, result.incomplete = split_complete(good, _in_cache(ws, good.values()))
    for key in complete:
        cache.write(good[key])
        result.pulled += 1
    return result


def pointers(ws: Workspace, entries: Iterable[Entry]) -> list[Pointer]:
    """Pointer values for the outs ``entries`` name (never written: transfers need values)."""
    found: dict[str, Pointer] = {}
    for entry in entries:
        for rel, meta in entry.outs.items():
            found.setdefault(meta.hash, pointer(ws.root, rel, meta))
    return [found[h] for h in sorted(found)]


def _in_cache(ws: Workspace, entries: Iterable[Entry]) -> set[str]:
    """The outs' objects (a folder's tree only if all its files are there too) in the cache."""
    from conveyor.data.status import load_tree, missing_objects

    present = set()
    for ptr in pointers(ws, entries):
        try:
            if missing_objects(ws, ptr, load_tree(ws, ptr)) == 0:
                present.add(ptr.oid)
        except DataError:  # a tree damaged in the cache: the entry waits for a good copy
            continue
    return present


def _read_at_most(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise BadEntry(f"it is more than {limit} bytes, the most an entry may be")
    return raw


def _entries(n: int) -> str:
    return f"{n} run-cache entr{'ies' if n != 1 else 'y'}"
