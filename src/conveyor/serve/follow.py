"""Following a desired state: which version each served model should answer with, read from the
store, compared with what is loaded, and the difference applied by hot swaps.

Today the desired state is each served alias's version (``models:/clf@production`` -> 4); a
deployment record (stable and candidate versions of an environment) is the next source, read
the same way. Deciding what to change is a pure function, :func:`plan`, over plain values; the
:class:`Follower` does the reading and the loading around it, and says what happened through
``notify`` (once per failure, not at every poll) and the reload metrics.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError
from conveyor.serve.served import Served

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion


@dataclass(frozen=True)
class Swap:
    """Load ``version`` for the model served under ``slot`` (its URI) and swap it in."""

    slot: str
    version: str
    was: str | None  # the version it replaces; None for a first load


def plan(desired: Mapping[str, str], current: Mapping[str, str | None]) -> list[Swap]:
    """What to change so that every slot serves the version desired for it, in the order the
    slots are served. A slot the desired state does not name (a fixed version, or one whose
    desired version could not be read) keeps what it serves; a desired slot that is not served
    here is none of this server's business."""
    return [
        Swap(slot, desired[slot], was)
        for slot, was in current.items()
        if slot in desired and desired[slot] != was
    ]


@dataclass(frozen=True)
class Desired:
    """The desired state as read: each slot's version, the store's record of it (what loading
    needs), and why a slot's could not be read."""

    versions: dict[str, str]
    records: dict[str, Any]
    errors: dict[str, Exception]


def read_desired(served: Sequence[Served], *, first: bool) -> Desired:
    """What the store says each slot should serve (blocking: run in a thread). After the first
    load only the slots that follow an alias are read again."""
    versions: dict[str, str] = {}
    records: dict[str, Any] = {}
    errors: dict[str, Exception] = {}
    for one in served:
        if not first and not one.follows_alias:
            continue
        try:
            record = _resolve(one)
        except Exception as exc:
            errors[one.uri] = exc
            continue
        versions[one.uri] = str(record.version) if record is not None else "local"
        records[one.uri] = record
    return Desired(versions, records, errors)


def _resolve(served: Served) -> ModelVersion | None:
    if not served.registered:
        return None  # a package folder: its one version
    from conveyor.registry.stored import resolve  # the standard library's sqlite3, no SQLAlchemy

    assert served.root is not None
    return resolve(served.root, served.uri)


class Follower:
    def __init__(
        self,
        served: Sequence[Served],
        *,
        interval: float,
        notify: Callable[[str], None],
    ) -> None:
        self.served = list(served)
        self.by_slot = {s.uri: s for s in self.served}
        self.interval = interval
        self.notify = notify
        self._told: dict[str, str] = {}  # the last failure said, by slot

    async def first(self) -> str | None:
        """Load every slot's version; None when all are loaded, else why one cannot be (the
        first that failed, with its hint)."""
        desired = await asyncio.to_thread(read_desired, self.served, first=True)
        for one in self.served:
            error = desired.errors.get(one.uri)
            if error is not None:
                one.error = _message(error, hint=False)
                return f"cannot load {one.uri}: {_message(error)}"
            try:
                version = await asyncio.to_thread(one.load, desired.records[one.uri])
            except Exception as exc:
                return f"cannot load {one.uri}: {_message(exc)}"
            self.notify(f"serving {one.name} version {version.number} ({one.uri})")
        settle()
        return None

    async def run(self) -> None:
        """Follow the desired state for ever; a version that fails to load leaves the old one
        serving."""
        while True:
            await asyncio.sleep(self.interval)
            await self.step()

    async def step(self) -> list[Swap]:
        """Read the desired state once and apply the difference; the swaps done."""
        desired = await asyncio.to_thread(read_desired, self.served, first=False)
        for slot, error in desired.errors.items():
            self._failed(self.by_slot[slot], error)
        current = {s.uri: s.version for s in self.served if s.follows_alias}
        for slot in desired.versions.keys() & current.keys():
            if desired.versions[slot] == current[slot]:
                self._told.pop(slot, None)
        done = []
        for swap in plan(desired.versions, current):
            served = self.by_slot[swap.slot]
            try:
                await asyncio.to_thread(served.load, desired.records[swap.slot])
            except Exception as exc:
                self._failed(served, exc)
                continue
            self._told.pop(swap.slot, None)
            served.metrics.reload(served.name, "loaded", served.role)
            settle()
            self.notify(f"{swap.slot} moved: serving version {swap.version} (was {swap.was})")
            done.append(swap)
        return done

    def _failed(self, served: Served, exc: Exception) -> None:
        served.metrics.reload(served.name, "failed", served.role)
        told = f"{served.uri}: keeping version {served.version or '?'}: {exc}"
        if self._told.get(served.uri) != told:  # once, not every few seconds
            self._told[served.uri] = told
            self.notify(told)


def _message(exc: Exception, *, hint: bool = True) -> str:
    if isinstance(exc, ConveyorError):
        return exc.message + (f" (hint: {exc.hint})" if hint and exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def settle() -> None:
    """Keep what is loaded now (models, numpy, scikit-learn...) out of the garbage collector's
    way: each full collection would walk it all again, stalling every request in flight for tens
    of milliseconds. (Objects are still freed when nothing refers to them.)"""
    gc.freeze()
