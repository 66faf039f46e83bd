"""``conveyor checkout``: make tracked paths match their pointers, touching only what differs.

Nothing unsaved is lost: a workspace file that differs from the pointer and whose content is not
in the cache stops the checkout unless ``force`` is given.

Nothing is written outside the project or into ``.git``: a tracked path is checked with
:func:`~conveyor.foundation.paths.check_place` (a folder above it that is a symbolic link out
of the project is refused), and a symbolic link standing where a folder is to be written (the
tracked folder itself, or one inside it) is refused rather than written through: links are
never part of what was added. Objects are checked as they are linked or copied (see
:mod:`conveyor.data.linker`); a corrupt one is moved to the quarantine and named in the error.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.data import build
from conveyor.data.linker import Linker
from conveyor.data.objects import CorruptObject
from conveyor.data.pointer import Pointer
from conveyor.data.status import compare, load_tree
from conveyor.data.tree import Entry
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import DataError, PathError
from conveyor.foundation.paths import CONTROL_DIR, check_place, check_relative
from conveyor.foundation.progress import Progress, Silent

_CHUNK = 64
_Rows = list[tuple[str, tuple[int, int, int], str]]  # state memo rows: path, stat, oid


@dataclass
class Result:
    path: str
    added: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    links: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


def checkout(
    ws: Workspace,
    pointers: list[Pointer],
    *,
    link_types: list[str] | None = None,
    force: bool = False,
    verify: bool = False,
    progress: Progress | None = None,
) -> list[Result]:
    types = link_types or str(ws.config.get("cache.type")).split(",")
    linker = Linker(ws.odb, types)
    return [
        _checkout_one(ws, ptr, linker, force=force, verify=verify, progress=progress or Silent())
        for ptr in pointers
    ]


def _checkout_one(
    ws: Workspace, ptr: Pointer, linker: Linker, *, force: bool, verify: bool, progress: Progress
) -> Result:
    data = _place(ws, ptr)
    result = Result(ws.display(data))
    _link_in_the_way(ws, data)
    if ptr.is_tree:
        tree = load_tree(ws, ptr)
        if tree is None:
            raise _not_in_cache(ws, ptr, 1)
        wanted = {e.path: e for e in tree.entries}
    else:
        wanted = {"": Entry("", ptr.oid, ptr.size)}

    actual: dict[str, str] = {}
    if os.path.lexists(data):
        is_dir = data.is_dir() and not data.is_symlink()
        if is_dir != ptr.is_tree:
            _ensure_saved(ws, data, force, "is a folder" if is_dir else "is a file")
            _remove(data)
        else:
            now = build.scan(ws.root, data, ws.memo, odb=ws.odb, jobs=ws.jobs)
            if now.oid == ptr.oid:
                result.unchanged = len(wanted)
                return result
            if now.is_tree and now.tree is None:
                now = build.scan(ws.root, data, ws.memo, odb=ws.odb, need_tree=True, jobs=ws.jobs)
            actual = {e.path: e.oid for e in now.tree.entries} if now.tree else {"": now.oid}
    expected = {p: e.oid for p, e in wanted.items()}
    changes = compare(expected, actual)
    unsaved = [p for p in (*changes.added, *changes.modified) if not ws.odb.exists(actual[p])]
    if unsaved and not force:
        shown = ", ".join(ws.display(_join(data, p)) for p in unsaved[:5])
        more = f" and {len(unsaved) - 5} more" if len(unsaved) > 5 else ""
        raise DataError(
            f"checkout would discard changes that are not in the cache: {shown}{more}",
            hint=f"save them with `conveyor add {result.path}`, or pass --force to discard them",
        )
    to_write = [wanted[p] for p in (*changes.deleted, *changes.modified)]
    generation = ws.odb.generation()
    complete = ptr.is_tree and ws.memo.is_complete(ptr.oid, generation)
    lacking = [] if complete else [e for e in to_write if not ws.odb.exists(e.oid)]
    if lacking:
        raise _not_in_cache(ws, ptr, len(lacking))
    if verify:
        _verify(ws, to_write)
    _check_folders(ws, data, to_write)

    for rel in (*changes.added, *changes.modified):
        _remove(_join(data, rel))
    _write(ws, data, to_write, linker, progress)
    if ptr.is_tree and not complete and len(to_write) == len(wanted):
        ws.memo.mark_complete(ptr.oid, generation)

    result.added, result.modified = len(changes.deleted), len(changes.modified)
    result.deleted = len(changes.added)
    result.unchanged = len(wanted) - len(to_write)
    result.links = set(linker.used)
    return result


def _write(
    ws: Workspace, data: Path, entries: list[Entry], linker: Linker, progress: Progress
) -> None:
    if not entries:
        return
    base = os.fspath(data)
    try:
        if entries[0].path:
            folders = {e.path.rpartition("/")[0] for e in entries}
            for folder in sorted(folders):
                os.makedirs(f"{base}/{folder}" if folder else base, exist_ok=True)
        else:
            data.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        where = ws.display(Path(exc.filename)) if exc.filename else ws.display(data)
        raise PathError(
            f"cannot write {ws.display(data)}: a file is in the way of the folder {where}",
            hint="move the file away, then run the command again",
        ) from None
    progress.start("checking out", len(entries))
    rel_root = ws.display(data)

    def work(chunk: list[Entry]) -> tuple[_Rows, list[Entry]]:
        rows, corrupt = [], []
        link, advance = linker.link, progress.advance
        for e in chunk:
            dest = f"{base}/{e.path}" if e.path else base
            try:
                st = link(e.oid, dest, e.executable)
            except CorruptObject:
                corrupt.append(e)
                continue
            key = f"{rel_root}/{e.path}" if e.path else rel_root
            rows.append((key, (st.st_ino, st.st_mtime_ns, st.st_size), e.oid))
            advance()
        return rows, corrupt

    chunks = [entries[i : i + _CHUNK] for i in range(0, len(entries), _CHUNK)]
    corrupt: list[Entry] = []
    try:
        if len(chunks) == 1:
            rows, corrupt = work(chunks[0])
        else:
            rows = []
            with ThreadPoolExecutor(ws.jobs, thread_name_prefix="conveyor-checkout") as pool:
                for part, bad in pool.map(work, chunks):
                    rows.extend(part)
                    corrupt.extend(bad)
    finally:
        progress.stop()
    # We wrote these bytes ourselves from checked objects: trust the memo rows at once.
    ws.memo.save(rows, trusted=True)
    if corrupt:
        _refuse_corrupt(ws, data, corrupt)


def _refuse_corrupt(ws: Workspace, data: Path, corrupt: list[Entry]) -> None:
    """Quarantine objects found corrupt while linking, and say which paths they left out."""
    oids = sorted({e.oid for e in corrupt})
    for oid in oids:
        if ws.odb.exists(oid):
            ws.odb.quarantine(oid, ws.paths.quarantine)
    shown = sorted(ws.display(_join(data, e.path)) for e in corrupt)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    raise DataError(
        f"{len(oids)} cache object(s) are corrupt (first: {oids[0]}), so these were not checked "
        f"out: {', '.join(shown[:5])}{more}",
        hint="the corrupt copies were moved to .conveyor/cache/quarantine; `conveyor pull` "
        "fetches good ones from a remote, or `conveyor add` stores a good copy again",
    )


def _verify(ws: Workspace, entries: list[Entry]) -> None:
    bad = sorted({e.oid for e in entries if not ws.odb.verify(e.oid)})
    if not bad:
        return
    for oid in bad:
        ws.odb.quarantine(oid, ws.paths.quarantine)
    raise DataError(
        f"{len(bad)} cache object(s) are corrupt (first: {bad[0]}); nothing was checked out",
        hint="the corrupt copies were moved to .conveyor/cache/quarantine; "
        "`conveyor pull` fetches good ones from a remote",
    )


def _ensure_saved(ws: Workspace, data: Path, force: bool, what: str) -> None:
    if force:
        return
    now = build.scan(ws.root, data, ws.memo, odb=ws.odb, need_tree=True, jobs=ws.jobs)
    oids = [e.oid for e in now.tree.entries] if now.tree else [now.oid]
    if all(ws.odb.exists(o) for o in oids):
        return
    raise DataError(
        f"{ws.display(data)} {what} with content that is not in the cache",
        hint=f"save it with `conveyor add {ws.display(data)}`, or pass --force to replace it",
    )


def _place(ws: Workspace, ptr: Pointer) -> Path:
    """The pointer's data path, refused if conveyor must not write there (see module doc)."""
    data = ptr.data_path
    try:
        rel = data.relative_to(ws.root).as_posix()
    except ValueError:
        raise PathError(
            f"{ws.display(ptr.file)}: {data} is outside the project at {ws.root}"
        ) from None
    if rel.split("/")[0] == CONTROL_DIR:
        # Conveyor's own places (registered model packages): pointer values built by code. A
        # pointer read from a file can never name one: parsing refuses .conveyor paths. Built
        # from the metadata store's values, it still never climbs out (``..``).
        check_relative(rel, where=ws.display(ptr.file))
        return data
    where = ws.display(ptr.file) if ptr.file.exists() else rel
    return check_place(ws.root, rel, where=where)


def _link_in_the_way(ws: Workspace, data: Path) -> None:
    """Refuse a symbolic link to a folder at the tracked path; drop one that leads nowhere.

    A link to a file is data (``add`` stores what it points to; the symlink link type makes
    them): it is hashed and replaced like any file.
    """
    if not os.path.islink(data):
        return
    try:
        target = os.stat(data)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            raise
        os.unlink(data)  # it holds nothing: no data is lost, nothing is followed
        return
    if stat.S_ISDIR(target.st_mode):
        raise _link_error(ws, data)


def _check_folders(ws: Workspace, data: Path, entries: list[Entry]) -> None:
    """Refuse a symbolic link (or anything but a folder or a file about to be replaced) where
    a folder inside ``data`` is to be written: writing through it would land elsewhere."""
    base = os.fspath(data)
    seen: set[str] = set()
    for folder in sorted({e.path.rpartition("/")[0] for e in entries} - {""}):
        parts = folder.split("/")
        for n in range(1, len(parts) + 1):
            sub = "/".join(parts[:n])
            if sub in seen:
                continue
            seen.add(sub)
            path = f"{base}/{sub}"
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break  # made as a real folder when written
            if stat.S_ISDIR(st.st_mode):
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    followed = os.stat(path).st_mode
                except OSError:
                    followed = 0  # a link to nothing
                if not stat.S_ISREG(followed):  # a link to a file is data, replaced as a file
                    raise _link_error(ws, Path(path))
            elif not stat.S_ISREG(st.st_mode):  # a regular file is replaced
                raise PathError(
                    f"{ws.display(Path(path))} is in the way: checkout writes a folder there",
                    hint=f"move it away (`mv {ws.display(Path(path))} ...`), then run again",
                )
            break


def _link_error(ws: Workspace, link: Path) -> PathError:
    shown = ws.display(link)
    real = os.path.realpath(link)
    where = "outside the project" if not Path(real).is_relative_to(ws.root) else "in the project"
    return PathError(
        f"{shown} is a symbolic link to {real} ({where}), where checkout writes a folder; "
        "conveyor does not write through links it did not make",
        hint=f"remove the link (`rm {shown}`), then run the command again",
    )


def _not_in_cache(ws: Workspace, ptr: Pointer, count: int) -> DataError:
    return DataError(
        f"{ws.display(ptr.data_path)}: {count} object(s) named by "
        f"{ws.display(ptr.file)} are not in the cache",
        hint="run `conveyor pull` to fetch them from a remote",
    )


def _join(data: Path, rel: str) -> Path:
    return data / rel if rel else data


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
