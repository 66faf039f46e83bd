"""The spool: how every writer hands records to the metadata store without waiting for it.

A writer (a pipeline run, code logging metrics) appends records to memory and, at each flush,
writes them as one new file ``.conveyor/spool/<time_ns>-<pid>-<rand>.jsonl``: a temp file,
fsynced, renamed. So a flush costs one small file write, never a database round-trip, and every
file in the spool is whole and immutable. Readers call :func:`drain` first: each file is applied
to the store in one transaction under its name (applied at most once, see the store's contract)
and then removed. A record is a JSON object with ``t`` (its type), ``run`` and ``ts``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation import atomic
from conveyor.foundation.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.tracking.store import Store

SUFFIX = ".jsonl"


def folder(root: Path) -> Path:
    return root / ".conveyor" / "spool"


def write(root: Path, records: Iterable[Mapping[str, Any]], *, durable: bool = True) -> Path:
    """Write ``records`` as one new spool file; returns its path."""
    spool = folder(root)
    spool.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
    data = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records)
    final = spool / (name + SUFFIX)
    atomic.write_bytes(final, data.encode(), durable=durable)
    return final


def pending(root: Path) -> list[Path]:
    """Whole spool files not yet applied, oldest first."""
    try:
        names = os.listdir(folder(root))
    except FileNotFoundError:
        return []
    return [folder(root) / n for n in sorted(names) if n.endswith(SUFFIX)]


def drain(root: Path, store: Store, *, chunk: int = 200) -> int:
    """Apply every pending spool file to ``store`` (``chunk`` files per transaction) and
    remove them; returns how many were new to the store.

    A chunk the store refuses is applied again file by file, and a file it still refuses is
    moved to ``spool/rejected/`` (with a warning), so one bad record never blocks the rest.
    """
    count = 0
    files = pending(root)
    for start in range(0, len(files), chunk):
        batch = _read(files[start : start + chunk])
        try:
            count += store.apply_many(batch)
        except Exception as exc:  # a constraint the store enforces: find the file and set it aside
            if unreachable(exc):  # down or busy: every file stays pending for the next drain
                raise _kept(exc) from exc
            if len(batch) == 1:
                _reject(root, batch[0][0])
                continue
            count += sum(drain_one(root, store, name, records) for name, records in batch)
            continue
        for name, _ in batch:
            (folder(root) / name).unlink(missing_ok=True)
    return count


def drain_one(root: Path, store: Store, name: str, records: list[dict[str, Any]]) -> int:
    try:
        applied = store.apply_many([(name, records)])
    except Exception as exc:
        if unreachable(exc):
            raise _kept(exc) from exc
        _reject(root, name)
        return 0
    (folder(root) / name).unlink(missing_ok=True)
    return applied


def unreachable(exc: BaseException) -> bool:
    """The store could not take anything (down, busy, read-only), whatever the records: not a
    reason to set a file aside. Only a SQL store raises into the drain, so SQLAlchemy is loaded."""
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def _kept(exc: Exception) -> ConveyorError:
    reason = " ".join(str(getattr(exc, "orig", exc)).split())  # libpq's run over several lines
    return ConveyorError(
        f"the metadata store cannot take the pending records now: {reason}",
        hint="they stay in .conveyor/spool and are applied by the next command that reads it",
    )


def _read(paths: list[Path]) -> list[tuple[str, list[dict[str, Any]]]]:
    batch = []
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue  # another reader drained it
        try:
            records = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        except ValueError:
            records = [{"t": "unreadable"}]  # refused by the store, so set aside below
        batch.append((path.name, records))
    return batch


def _reject(root: Path, name: str) -> None:
    import warnings

    rejected = folder(root) / "rejected"
    rejected.mkdir(exist_ok=True)
    try:
        os.replace(folder(root) / name, rejected / name)
    except FileNotFoundError:
        return
    warnings.warn(
        f"the metadata store refused .conveyor/spool/{name}; it was moved to spool/rejected/",
        RuntimeWarning,
        stacklevel=2,
    )
