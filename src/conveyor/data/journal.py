"""Objects named before their bytes reach the disk, and the journal that keeps a crash honest.

With ``core.fsync: journal`` (the default) a batch of complete temp files is renamed into place
at once and the kernel writes the bytes back in its own time, as git and DVC do; a command does
not wait for the disk. Safety does not depend on that wait:

* A killed process (SIGKILL, at any moment) loses nothing: the page cache holds what it wrote,
  and an object is only ever named once its temp file is complete.
* A crash of the machine can leave an object named whose bytes never reached the disk. Before a
  batch names anything, its oids are written to a journal file (fsynced, never overwriting
  another) named after this machine, this boot of it, the writer's pid and a random token. A
  crash changes the boot id: the next command on this machine that opens the cache re-hashes
  every object that a journal of another boot names and quarantines those whose bytes do not
  match, so no object is ever trusted with bytes that differ from its name.
* Journals of this boot are settled once their writer has exited and the kernel's writeback
  delay has passed: one ``syncfs`` (which then finds little left to write), then they are
  removed; a failed ``syncfs`` keeps them. A command that writes objects settles them anyway; a
  command that only reads does so only while little is waiting to be written on the machine, so
  that it never waits long for other programs' writes.
* A cache shared by several machines (a network filesystem) holds other machines' journals:
  those are left to their own machine, and checked by anyone only once they are a day old.

Machines without a boot id (not Linux) fall back to ``core.fsync: true``: a ``syncfs`` before
anything is named.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from conveyor.data import hashing
from conveyor.foundation import atomic
from conveyor.foundation.lock import alive

if TYPE_CHECKING:
    from conveyor.data.objects import ObjectDB

SETTLE_S = 35.0  # the kernel's writeback delay (dirty_expire_centisecs, 30 s) and a margin
FOREIGN_S = 86_400.0  # another machine's journal is checked by anyone once this old
QUIET_DIRTY_KB = 64 << 10  # a reader settles journals only while less than this waits to be written
_counter = itertools.count()


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (changes at every restart, so after every crash), or None."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            text = f.read().strip().replace("-", "")
    except OSError:
        return None
    return text if text.isalnum() else None


@functools.cache
def machine() -> str:
    """This machine, as a short name safe in a file name."""
    return hashing.hash_bytes(os.uname().nodename.encode())[:12]


def record(folder: Path, oids: Iterable[str]) -> Path:
    """Durably note that ``oids`` are about to be named before their bytes are on disk.

    The file is named ``MACHINE.BOOT.PID.TOKEN`` and is never put over another journal (a pid
    seen again in another container of the same boot must not erase what the first protects).
    It is on disk before this returns, and so before the first rename.
    """
    boot = boot_id()
    if boot is None:  # pragma: no cover - callers use syncs where there is no boot id
        raise RuntimeError("no boot id: objects must be synced before they are named")
    made = not folder.is_dir()
    if made:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.fsync_dir(folder.parent)
    data = "\n".join(oids).encode("ascii")
    while True:
        token = f"{next(_counter)}x{os.urandom(6).hex()}"
        path = folder / f"{machine()}.{boot}.{os.getpid()}.{token}"
        tmp = folder / f".{path.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                atomic.write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)  # unlike a rename, never replaces an existing journal
        except FileExistsError:
            continue
        finally:
            tmp.unlink(missing_ok=True)
        atomic.fsync_dir(folder)
        return path


class Recovered(NamedTuple):
    settled: int = 0  # journals of this boot whose objects are now on disk
    checked: int = 0  # objects re-hashed after a crash
    corrupt: tuple[str, ...] = ()  # objects quarantined because their bytes did not match


def recover(odb: ObjectDB, *, settle: bool = False, now: float | None = None) -> Recovered:
    """Check the objects named by journals of an earlier boot, and settle this boot's old ones.

    ``settle`` (a command that writes objects) settles whatever is due; otherwise only while the
    machine has little waiting to be written. Cheap when there is nothing to do (one
    ``listdir``). Safe to run from several processes at once: checking is idempotent and every
    removal tolerates a file already gone.
    """
    folder = odb.journal
    try:
        names = os.listdir(folder)
    except OSError:  # none yet, or unreadable: nothing this command can check
        return Recovered()
    boot, here = boot_id(), machine()
    now = time.time() if now is None else now
    due: list[Path] = []
    checked = 0
    corrupt: list[str] = []
    for name in names:
        path = folder / name
        if name.startswith("."):  # a journal being written: its writer links it in milliseconds
            if _age(path, now) >= SETTLE_S:
                _unlink(path)  # its writer died first: it named no object
            continue
        parts = name.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        host, jboot, pid = parts[0], parts[1], int(parts[2])
        if host == here and jboot == boot:
            if not alive(pid) and _age(path, now) >= SETTLE_S:
                due.append(path)
            continue
        if host != here and _age(path, now) < FOREIGN_S:
            continue  # another machine's: its own commands settle or check it
        n, bad = _check(path, odb)
        checked += n
        corrupt.extend(bad)
        _unlink(path)
    settled = 0
    if due and (settle or _quiet()):
        try:
            atomic.syncfs(folder, strict=True)
        except OSError:
            pass  # not known to be on disk: keep the journals for a later command
        else:
            for path in due:
                _unlink(path)
            settled = len(due)
    if corrupt:
        import logging  # only here: ``status`` should not pay for importing it

        logging.getLogger(__name__).warning(
            "%d object(s) written before the machine last stopped did not reach the disk intact "
            "and were quarantined; `conveyor pull` or `conveyor add` stores them again",
            len(corrupt),
        )
    return Recovered(settled, checked, tuple(corrupt))


def _quiet() -> bool:
    """Whether little is waiting to be written back on this machine (a ``syncfs`` is quick)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"Dirty:"):
                    return int(line.split()[1]) < QUIET_DIRTY_KB
    except (OSError, ValueError, IndexError):
        pass
    return False


def _check(journal: Path, odb: ObjectDB) -> tuple[int, list[str]]:
    try:
        text = journal.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return 0, []  # fsynced before any rename: an unreadable journal named nothing
    checked, corrupt, lost = 0, [], False
    for oid in text.split():
        if not hashing.is_oid(oid):
            continue
        try:
            matches = odb.verify(oid)
        except FileNotFoundError:
            lost = True  # never named, or its name lost in the crash
            continue
        except OSError:
            matches = False  # unreadable after the crash: not to be trusted either
        checked += 1
        if not matches:
            corrupt.append(oid)
            with contextlib.suppress(OSError):  # gone meanwhile, or a read-only cache
                odb.quarantine(oid, odb.quarantined)
    if lost and not corrupt:
        with contextlib.suppress(OSError):
            odb.forget_complete()  # trees once complete may lack it now
    return checked, corrupt


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # removed by another command, or a read-only cache
        path.unlink()
