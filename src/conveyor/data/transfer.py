"""``conveyor push`` and ``conveyor pull``: move the objects pointers name to and from a remote.

A pointer names one object (a file) or a tree object plus every object its entries name (a
folder). Only what the other side lacks is transferred, so a re-run after an interruption sends
only what is still missing.

- push uploads files first and a tree only after all its entries are on the remote, so a tree on
  a remote always means its whole folder can be pulled from it. What it uploads is checked
  first: an object whose stamp shows no write since it was named costs one ``stat``, any other
  is re-hashed (:meth:`~conveyor.data.objects.ObjectDB.check`); a corrupt one is not uploaded
  (nor the trees that need it), so a remote never serves bad bytes to a clone.
- pull fetches trees first (their entries are known only then), then the entries, verifying each
  object's hash before it enters the cache; then it checks out every pointer it has complete.

:func:`plan_push` is the pure core of push; :func:`push`, :func:`fetch` and :func:`pull` do the
I/O. Objects that are nowhere to be found, or that arrive corrupt, do not stop the transfer: they
are collected in the :class:`TransferResult`, whose :meth:`~TransferResult.error` says which
paths they belong to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from conveyor.data.checkout import Result as CheckoutResult
from conveyor.data.checkout import checkout
from conveyor.data.hashing import object_path
from conveyor.data.objects import stamped
from conveyor.data.pointer import Pointer
from conveyor.data.remote import Fetched, Remote
from conveyor.data.status import load_tree, missing_objects
from conveyor.data.transfer_io import Landing, Scratch
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import DataError
from conveyor.foundation.progress import Progress, Silent

_SHOWN = 5  # paths named in an error before "and N more"


@dataclass
class Needed:
    """The objects a set of pointers names, and the workspace paths that need each one."""

    files: dict[str, int] = field(default_factory=dict)  # oid -> size
    trees: dict[str, frozenset[str]] = field(default_factory=dict)  # tree -> its entries' oids
    unknown_trees: set[str] = field(default_factory=set)  # trees whose object is not in the cache
    owners: dict[str, list[str]] = field(default_factory=dict)  # oid -> paths needing it

    def all(self) -> set[str]:
        return set(self.files) | set(self.trees) | self.unknown_trees

    def own(self, oid: str, path: str) -> None:
        self.owners.setdefault(oid, []).append(path)


def collect(ws: Workspace, pointers: Iterable[Pointer]) -> Needed:
    """What ``pointers`` need, reading their trees from the cache."""
    needed = Needed()
    for ptr in pointers:
        shown = ws.display(ptr.data_path)
        needed.own(ptr.oid, shown)
        if not ptr.is_tree:
            needed.files[ptr.oid] = ptr.size
            continue
        tree = load_tree(ws, ptr)
        if tree is None:
            needed.unknown_trees.add(ptr.oid)
            continue
        needed.trees[ptr.oid] = frozenset(e.oid for e in tree.entries)
        for entry in tree.entries:
            needed.files[entry.oid] = entry.size
            needed.own(entry.oid, f"{shown}/{entry.path}")
    return needed


@dataclass(frozen=True)
class PushPlan:
    files: tuple[str, ...]  # to upload first
    trees: tuple[str, ...]  # to upload once the files are there
    already: frozenset[str]  # on the remote
    missing: frozenset[str]  # neither in the cache nor on the remote


def plan_push(needed: Needed, in_cache: set[str], on_remote: set[str]) -> PushPlan:
    """What to upload, given what the cache and the remote hold (pure)."""
    everything = needed.all()
    missing = everything - in_cache - on_remote
    files = sorted(o for o in needed.files if o in in_cache and o not in on_remote)
    reachable = in_cache | on_remote
    trees = sorted(
        t
        for t, entries in needed.trees.items()
        if t not in on_remote and t in in_cache and entries <= reachable
    )
    return PushPlan(
        tuple(files), tuple(trees), frozenset(everything & on_remote), frozenset(missing)
    )


@dataclass
class TransferResult:
    """What a push or pull did, and what it could not do."""

    direction: str  # "push" or "pull"
    remote: str
    url: str
    transferred: int = 0
    size: int = 0  # bytes transferred
    already: int = 0  # objects the other side had
    missing: dict[str, list[str]] = field(default_factory=dict)  # oid -> paths needing it
    corrupt: dict[str, str] = field(default_factory=dict)  # oid -> what its bytes hash to
    corrupt_paths: dict[str, list[str]] = field(default_factory=dict)  # push: oid -> its paths
    checkout: list[CheckoutResult] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # push: what is on the remote after it

    def error(self) -> DataError | None:
        """A DataError naming every object that was not transferred, or None."""
        parts, hints = [], []
        if self.missing:
            paths = sorted({p for ps in self.missing.values() for p in ps})
            if self.direction == "push":
                parts.append(
                    f"{_count(self.missing)} neither in the cache nor on remote {self.remote!r}, "
                    f"so not pushed: {_list(paths)}"
                )
                hints.append("push them from the clone where they were added")
            else:
                parts.append(
                    f"{_count(self.missing)} not on remote {self.remote!r} ({self.url}), "
                    f"so not pulled: {_list(paths)}"
                )
                hints.append(
                    f"push them from a clone that has them (`conveyor push -r {self.remote}`), "
                    "or check the remote's url (`conveyor remote list`)"
                )
        if self.corrupt and self.direction == "push":
            paths = sorted({p for ps in self.corrupt_paths.values() for p in ps})
            first = sorted(self.corrupt)[0]
            parts.append(
                f"{_count(self.corrupt)} corrupt in the cache (bytes that no longer match their "
                f"hash, first: {first}), so not pushed: {_list(paths)}"
            )
            hints.append(
                "run `conveyor fsck` to move the corrupt copies aside, then restore them "
                "(`conveyor add` from a good copy, or `conveyor pull` from another remote)"
            )
        elif self.corrupt:
            oid, actual = sorted(self.corrupt.items())[0]
            parts.append(
                f"{_count(self.corrupt)} corrupt on remote {self.remote!r} and not stored: "
                f"{oid} holds bytes that hash to {actual}"
                + (f" (and {len(self.corrupt) - 1} more)" if len(self.corrupt) > 1 else "")
            )
            hints.append(
                f"delete the damaged copy ({self.url}/{object_path(oid)}) and push a good one "
                "from a clone that has it"
            )
        if not parts:
            return None
        rest = "; everything else was transferred" if self.transferred else ""
        return DataError("; ".join(parts) + rest, hint="; ".join(hints))


def push(
    ws: Workspace,
    remote: Remote,
    pointers: list[Pointer],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Upload the objects ``pointers`` name that ``remote`` lacks."""
    progress = progress or Silent()
    result = TransferResult("push", remote.name, remote.url)
    needed = collect(ws, pointers)
    everything = needed.all()
    on_remote = remote.exists_many(everything)
    # One stat per object the remote lacks tells both whether the cache has it and whether it
    # is intact; what the remote has is reachable either way.
    sizes = _checked(ws, sorted(everything - on_remote))
    bad = {o for o, size in sizes.items() if size < 0}
    plan = plan_push(needed, set(sizes) - bad, on_remote)
    result.already = len(plan.already)
    result.present = set(plan.already)
    result.missing = {o: needed.owners[o] for o in sorted(plan.missing - bad)}
    result.corrupt = {o: "" for o in sorted(bad)}
    result.corrupt_paths = {o: needed.owners[o] for o in sorted(bad)}
    paths = {o: ws.odb.file(o) for o in (*plan.files, *plan.trees)}

    def uploaded(oid: str) -> None:
        result.present.add(oid)
        result.transferred += 1
        result.size += sizes[oid]
        progress.advance(sizes[oid])

    progress.start(f"pushing to {remote.name}", sum(sizes[o] for o in paths), unit="bytes")
    try:
        for phase in (plan.files, plan.trees):
            items = [(paths[o], o) for o in phase]
            remote.upload_many(items, jobs=jobs or ws.jobs, done=uploaded)
    finally:
        progress.stop()
    return result


def _checked(ws: Workspace, oids: list[str]) -> dict[str, int]:
    """The size of each object the cache holds (absent ones are left out), or -1 if its bytes
    no longer match its oid (see ObjectDB.check).

    One ``stat`` each; only objects without their stamp are re-hashed, on ``ws.jobs`` threads.
    """
    sizes: dict[str, int] = {}
    doubtful: dict[str, os.stat_result] = {}
    for oid in oids:
        try:
            st = os.stat(ws.odb.file(oid))
        except FileNotFoundError:
            continue
        sizes[oid] = st.st_size
        if not stamped(oid, st):
            doubtful[oid] = st

    def check(oid: str) -> tuple[str, bool]:
        try:
            return oid, ws.odb.check(oid, doubtful[oid])
        except FileNotFoundError:
            return oid, False

    if len(doubtful) <= 1:
        checked = [check(o) for o in doubtful]
    else:
        with ThreadPoolExecutor(ws.jobs, thread_name_prefix="conveyor-verify") as pool:
            checked = list(pool.map(check, doubtful))
    for oid, good in checked:
        if not good:
            sizes[oid] = -1
    return sizes


def fetch(
    ws: Workspace,
    remote: Remote,
    pointers: list[Pointer],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Download into the cache the objects ``pointers`` name that it lacks (no checkout)."""
    progress = progress or Silent()
    result = TransferResult("pull", remote.name, remote.url)
    jobs = jobs or ws.jobs
    # Trees first: their entries are known only once they are here. Their sizes are unknown
    # until then too, so they are counted as files, and everything else in bytes.
    trees = Needed()
    for ptr in pointers:
        if ptr.is_tree:
            trees.files[ptr.oid] = 0
            trees.own(ptr.oid, ws.display(ptr.data_path))
    _download(ws, remote, trees, result, jobs, progress, "fetching trees", sized=False)
    needed = collect(ws, pointers)
    _download(ws, remote, needed, result, jobs, progress, "pulling", sized=True)
    return result


def pull(
    ws: Workspace,
    remote: Remote,
    pointers: list[Pointer],
    *,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """:func:`fetch`, then check out every pointer whose objects are all in the cache now."""
    result = fetch(ws, remote, pointers, jobs=jobs, progress=progress)
    complete = [p for p in pointers if missing_objects(ws, p, load_tree(ws, p)) == 0]
    result.checkout = checkout(ws, complete, force=force, progress=progress)
    return result


def _download(
    ws: Workspace,
    remote: Remote,
    needed: Needed,
    result: TransferResult,
    jobs: int,
    progress: Progress,
    description: str,
    *,
    sized: bool,
) -> None:
    """Download what ``needed.files`` names and the cache lacks; record what went wrong."""
    lacking = [o for o in sorted(needed.files) if not ws.odb.exists(o)]
    result.already += len(needed.files) - len(lacking)
    present = remote.exists_many(lacking) if lacking else set()
    for oid in lacking:
        if oid not in present:
            result.missing[oid] = needed.owners[oid]
    wanted = [o for o in lacking if o in present]
    total = sum(needed.files[o] for o in wanted) if sized else len(wanted)
    landing = Landing.into(ws.odb)
    scratch = Scratch(ws.odb.tmp, f"{os.getpid()}.{uuid.uuid4().hex[:8]}")

    def arrived(oid: str, got: Fetched) -> None:
        if got.path is None:  # deleted from the remote since we looked
            result.missing[oid] = needed.owners[oid]
        elif got.digest != oid:  # never stored: the cache holds only verified objects
            os.unlink(got.path)
            result.corrupt[oid] = got.digest
        else:
            landing.add(got.path, oid)
            result.transferred += 1
            result.size += got.size
        progress.advance(needed.files[oid] if sized else 1)

    progress.start(description, total, unit="bytes" if sized else "files")
    try:
        # The landing is left first: it renames what arrived out of the scratch folders.
        with scratch, landing:
            remote.download_many(wanted, scratch, jobs=jobs, done=arrived)
    finally:
        progress.stop()


def _count(objects: Mapping[str, object]) -> str:
    return f"{len(objects)} object{'s are' if len(objects) != 1 else ' is'}"


def _list(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")
