"""Objects named before their bytes reach the disk, and the journal that keeps a crash honest.

With ``core.fsync: journal`` (the default) a batch of complete temp files is renamed into place
at once and the kernel writes the bytes back in its own time, as git and DVC do; a command does
not wait for the disk. Safety does not depend on that wait:

* A killed process (SIGKILL, at any moment) loses nothing: the page cache holds what it wrote,
  and an object is only ever named once its temp file is complete.
* A crash of the machine can leave an object named whose bytes never reached the disk. Before a
  batch names anything, its oids are written to a journal file (fsynced) named after this boot of
  the machine. A crash changes the boot id: the next command that opens the cache re-hashes every
  object that a journal of another boot names and quarantines those whose bytes do not match, so
  no object is ever trusted with bytes that differ from its name.
* Journals of this boot are settled by the next command that writes objects, once their writer
  has exited and the kernel's writeback delay has passed: one ``syncfs`` (which then finds little
  left to write), then they are removed. Commands that only read never wait for a ``syncfs``
  (it flushes everything dirty on the filesystem, other programs' writes too).

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


def record(folder: Path, oids: Iterable[str]) -> Path:
    """Durably note that ``oids`` are about to be named before their bytes are on disk.

    The file is named ``BOOT.PID.N``; it must reach the disk before the first rename.
    """
    boot = boot_id()
    if boot is None:  # pragma: no cover - callers use syncs where there is no boot id
        raise RuntimeError("no boot id: objects must be synced before they are named")
    path = folder / f"{boot}.{os.getpid()}.{next(_counter)}"
    atomic.write_bytes(path, "\n".join(oids).encode("ascii"), parents=True)
    return path


class Recovered(NamedTuple):
    settled: int = 0  # journals of this boot whose objects are now on disk
    checked: int = 0  # objects re-hashed after a crash
    corrupt: tuple[str, ...] = ()  # objects quarantined because their bytes did not match


def recover(
    odb: ObjectDB,
    folder: Path,
    quarantine: Path,
    *,
    settle: bool = False,
    now: float | None = None,
) -> Recovered:
    """Check the objects named by other boots' journals; with ``settle``, settle this boot's.

    Cheap when there is nothing to do (one ``listdir``). Safe to run from several processes at
    once: checking is idempotent and every removal tolerates a file already gone.
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return Recovered()
    boot = boot_id()
    now = time.time() if now is None else now
    settled: list[Path] = []
    checked = 0
    corrupt: list[str] = []
    for name in names:
        path = folder / name
        parts = name.split(".")
        if name.startswith(".") and parts[-1] == "tmp":  # a journal being written
            if parts[-2].isdigit() and not alive(int(parts[-2])):
                _unlink(path)  # its writer died before naming it: it named no object
            continue
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if parts[0] == boot:
            if settle and not alive(int(parts[1])) and _age(path, now) >= SETTLE_S:
                settled.append(path)
            continue
        n, bad = _check(path, odb, quarantine)
        checked += n
        corrupt.extend(bad)
        _unlink(path)
    if settled:
        with contextlib.suppress(OSError):  # a read-only cache: nothing to settle from here
            atomic.syncfs(folder)
            for path in settled:
                _unlink(path)
    if corrupt:
        import logging  # only here: ``status`` should not pay for importing it

        logging.getLogger(__name__).warning(
            "%d object(s) written before the machine last stopped did not reach the disk intact "
            "and were quarantined; `conveyor pull` or `conveyor add` stores them again",
            len(corrupt),
        )
    return Recovered(len(settled), checked, tuple(corrupt))


def _check(journal: Path, odb: ObjectDB, quarantine: Path) -> tuple[int, list[str]]:
    try:
        text = journal.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return 0, []  # fsynced before any rename: an unreadable journal named nothing
    checked, corrupt = 0, []
    for oid in text.split():
        if not hashing.is_oid(oid):
            continue
        try:
            matches = odb.verify(oid)
        except FileNotFoundError:
            continue
        checked += 1
        if not matches:
            corrupt.append(oid)
            with contextlib.suppress(OSError):  # gone meanwhile, or a read-only cache
                odb.quarantine(oid, quarantine)
    return checked, corrupt


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # removed by another command, or a read-only cache
        path.unlink()
