"""Following a desired state: which version each served model should answer with, read from the
store, compared with what is loaded, and the difference applied by hot swaps.

Two sources of desired state. Each served alias's version (``models:/clf@production`` -> 4):
deciding what to change is a pure function, :func:`plan`, over plain values; the
:class:`Follower` does the reading and the loading around it, and says what happened through
``notify`` (once per failure, not at every poll) and the reload metrics. And an environment's
deployment record (stable and candidate versions, the split): the
:class:`DeploymentFollower` reads it every ``Options.deploy_interval`` and applies it to a
:class:`~conveyor.serve.router.Router` (which split applies is the router's pure
:func:`~conveyor.serve.router.routing`).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError
from conveyor.serve.errors import CannotServe
from conveyor.serve.predictor import Role, Version
from conveyor.serve.remote import Remote, Unavailable
from conveyor.serve.rollout import Activity, ReadActivity, stored_activity
from conveyor.serve.router import Member, Router
from conveyor.serve.served import Served

Slot = Served | Remote  # a version loaded here, or in the candidate's own process

if TYPE_CHECKING:
    from conveyor.registry.deployment import Deployment
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


# -- an environment's deployment record ------------------------------------------------------

ReadDeployment = Callable[[Path, str], "Deployment | None"]
RETRY_SECONDS = 30.0  # a version that failed to load is tried again after this long
Resolve = Callable[[Path, str], "ModelVersion"]


def stored_deployment(root: Path, env: str) -> Deployment | None:
    """The environment's record as the store holds it (read without SQLAlchemy when it can)."""
    stored = importlib.import_module("conveyor.registry.stored")
    read = getattr(stored, "deployment", None)
    if read is None:
        raise CannotServe(
            "this installation of conveyor cannot read deployment records "
            "(conveyor.registry.stored.deployment is missing)",
            hint="upgrade conveyor, or serve a model URI instead of --env",
        )
    found: Deployment | None = read(root, env)
    return found


def resolve_version(root: Path, uri: str) -> ModelVersion:
    from conveyor.registry.stored import resolve

    return resolve(root, uri)


class DeploymentFollower:
    """Serves an environment as its deployment record says, through a
    :class:`~conveyor.serve.router.Router`, and follows the record.

    Every ``interval`` the record is read again. What needs no loading is applied at once: a new
    split or mode, an abort (stable alone from the next request, the candidate kept loaded for
    requests that name its version), a promotion (the candidate's loaded version becomes
    stable's), a rollback to a version still held. A version not loaded yet is loaded in the
    background, one at a time, while the router goes on answering from what is loaded; stable
    alone answers until a candidate is loaded, and a candidate that cannot be loaded leaves
    stable answering everything and says why (in ``notify``, the reload metrics and
    :attr:`candidate_error`); it is tried again when the record names other versions, or
    after ``RETRY_SECONDS``. The previous stable version is kept loaded, so that a rollback is
    a swap. When the record's revision moves, the environment's events added since are read
    too (``read_activity``; see :mod:`conveyor.serve.rollout`) for the rollout metrics.
    """

    def __init__(
        self,
        router: Router,
        *,
        root: Path,
        env: str,
        model: str,
        make: Callable[[str, Role], Slot],
        interval: float,
        notify: Callable[[str], None],
        read: ReadDeployment = stored_deployment,
        resolve: Resolve = resolve_version,
        read_activity: ReadActivity = stored_activity,
    ) -> None:
        self.router = router
        self.root = root
        self.env = env
        self.model = model
        self.make = make  # a new slot for a candidate version: (uri, role) -> Served/Remote
        self.interval = interval
        self.notify = notify
        self.read = read
        self.resolve = resolve
        self.record: Deployment | None = None
        # The environment's events and last analysis, for the rollout metrics
        self.activity = Activity(root, env, read_activity)
        self.kept: dict[str, Version] = {}  # loaded versions held for an instant switch
        self.failed: dict[str, float] = {}  # version -> when it last failed to load
        self.candidate_error: str | None = None
        self._queue: list[tuple[Slot, str]] = []
        self._loader: asyncio.Task[None] | None = None
        self._told: str | None = None

    @property
    def stable(self) -> Served:
        stable = self.router.stable
        assert isinstance(stable, Served)
        return stable

    async def first(self) -> str | None:
        """Load the stable version the record names; None when it is loaded (or when the
        environment has no deployment yet: the server waits for one, unready), else why not.
        A candidate is loaded in the background afterwards."""
        try:
            d = await asyncio.to_thread(self.read, self.root, self.env)
        except Exception as exc:
            return f"cannot read the deployment of environment {self.env}: {_message(exc)}"
        await self._count(d)
        if d is not None and d.stable is not None and d.model == self.model:
            version = str(d.stable)
            try:
                await self._load_into(self.stable, version)
            except Exception as exc:
                return f"cannot load {self.model} version {version}: {_message(exc)}"
            self.notify(f"serving {self.model} version {version} (stable in {self.env})")
            settle()
        self.apply(d)
        return None

    async def run(self) -> None:
        """Follow the record for ever."""
        while True:
            await asyncio.sleep(self.interval)
            await self.step()

    async def step(self) -> Deployment | None:
        """Read the record once and apply it; the record read."""
        try:
            d = await asyncio.to_thread(self.read, self.root, self.env)
        except Exception as exc:
            self._say(f"cannot read the deployment of {self.env} (serving as before): {exc}")
            return self.record
        await self._count(d)
        self.apply(d)
        return d

    async def _count(self, d: Deployment | None) -> None:
        """Read the events added since the last revision, when the record moved; a failed
        read leaves the rollout metrics as they were, and is tried again at the next step."""
        try:
            await asyncio.to_thread(self.activity.update, d)
        except Exception as exc:
            self._say(f"cannot read the events of {self.env} (rollout metrics as before): {exc}")

    def apply(self, d: Deployment | None) -> None:
        """Route as record ``d`` says with what is loaded now; load what is missing."""
        if d is not None and d.model != self.model:
            self._say(f"environment {self.env} deploys model {d.model}, not {self.model}: ignored")
            return
        if d is not None and (self.record is None or d.revision != self.record.revision):
            if self.record is None or _versions(d) != _versions(self.record):
                self.failed.clear()  # other versions: one that failed may be tried again
            self._say(_describe(d))
        self.record = d
        stable = self.stable
        if d is None or d.stable is None:
            if stable.current is None:
                stable.error = f"environment {self.env} has no deployment yet"
            self.router.apply(None)
            self._publish(d)
            return
        self._place_stable(str(d.stable))
        wanted = d.candidate if d.candidate is not None and d.candidate != d.stable else None
        if wanted is None and self._bridging(d):
            wanted = d.stable
        self._place_candidate(None if wanted is None else str(wanted), active=d.active)
        self.router.apply(d)
        # Held aside: the versions the record may switch to at once that no slot serves now.
        held = {str(v) for v in (d.stable, d.previous, d.candidate) if v is not None}
        held -= {stable.version, *(c.version for c in [self.router.candidate] if c is not None)}
        self.kept = {v: k for v, k in self.kept.items() if v in held}
        self._publish(d)

    def _bridging(self, d: Deployment) -> bool:
        """Whether ``d`` promoted the version the candidate's slot holds while the stable slot
        does not hold it yet: the candidate's answers everything until then."""
        held = self.router.candidate
        return held is not None and held.version == str(d.stable) != self.stable.version

    def close(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
        self.router.close()
        self.stable.close()
        candidate = self.router.candidate
        if candidate is not None:
            candidate.close()

    # -- placing versions ----------------------------------------------------------------------

    def _place_stable(self, version: str) -> None:
        stable = self.stable
        if stable.version == version:
            return
        held = self._held(version)
        if held is None:
            self._want(stable, version)
            return
        if stable.current is not None:
            self.kept[stable.current.number] = stable.current
        stable.swap(held)
        stable.metrics.reload(stable.name, "loaded", "stable")
        self.notify(f"{self.env}: version {version} answers as stable now")

    def _place_candidate(self, version: str | None, *, active: bool) -> None:
        router = self.router
        current = router.candidate
        uri = None if version is None else f"models:/{self.model}/{version}"
        if current is not None and current.uri == uri:
            if current.version is None and active:
                self._want_served(current, version)
            return
        if current is not None:  # another candidate, or none any more
            if current.version is not None and isinstance(current, Served):
                assert current.current is not None
                self.kept[current.version] = current.current
                current.close()
            self.stable.metrics.forget(current.uri)
            router.candidate = None
            self.candidate_error = None
        if uri is None or version is None or not active:
            return  # a candidate is loaded for a rollout on, else only kept if loaded
        slot = self.make(uri, "candidate")
        router.candidate = slot
        held = self.kept.get(version)
        if held is not None and isinstance(slot, Served):
            slot.swap(held)
        else:
            self._want(slot, version)

    def _want_served(self, served: Member, version: str | None) -> None:
        if isinstance(served, Served | Remote) and version is not None:
            self._want(served, version)

    def _held(self, version: str) -> Version | None:
        candidate = self.router.candidate
        if candidate is not None and candidate.version == version and isinstance(candidate, Served):
            return candidate.current
        return self.kept.get(version)

    def _want(self, served: Slot, version: str) -> None:
        """Load ``version`` into ``served`` in the background (once; not again after a failure
        until the record moves)."""
        failed = self.failed.get(version)
        if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
            return
        if any(s is served and v == version for s, v in self._queue):
            return
        self._queue.append((served, version))
        if self._loader is None or self._loader.done():
            self._loader = asyncio.get_running_loop().create_task(self._load_queued())

    async def _load_queued(self) -> None:
        while self._queue:
            served, version = self._queue.pop(0)
            if not self._wanted(served, version):
                continue  # the record moved on while it waited
            try:
                await self._load_into(served, version)
            except Unavailable as exc:  # not the version's fault: asked again at the next read
                self.candidate_error = exc.message
                self._say(f"{self.env}: candidate not loaded: {exc.message}; stable answers all")
                continue
            except Exception as exc:
                why = _message(exc)
                self.failed[version] = time.monotonic()
                served.metrics.reload(served.name, "failed", served.role)
                if served is self.stable:
                    told = f"{self.env}: cannot load version {version} as stable: {why}"
                    self._say(told + f"; version {served.version or 'none'} answers")
                else:
                    self.candidate_error = f"version {version} did not load: {why}"
                    self._say(f"{self.env}: candidate {self.candidate_error}; stable answers all")
                continue
            served.metrics.reload(served.name, "loaded", served.role)
            settle()
            role = "stable" if served is self.stable else "candidate"
            self.notify(f"{self.env}: version {version} loaded as {role}")
            if self.record is not None:
                self.apply(self.record)  # route to it from now on

    def _wanted(self, served: Slot, version: str) -> bool:
        if served is self.stable:
            record = self.record
            return record is not None and str(record.stable) == version
        return served is self.router.candidate  # a candidate's slot holds one version

    async def _load_into(self, served: Slot, version: str) -> None:
        uri = f"models:/{self.model}/{version}"
        record = await asyncio.to_thread(self.resolve, self.root, uri)
        await served.fetch(record)

    def _publish(self, d: Deployment | None) -> None:
        metrics = self.stable.metrics
        metrics.rolled(self.activity.state(d))
        if d is None:
            metrics.deployed(self.env, self.model, "", "", "idle", "canary", 0.0)
            return
        stable, candidate = (str(v) if v is not None else "" for v in (d.stable, d.candidate))
        weight = self.router.routing.weight
        metrics.deployed(self.env, self.model, stable, candidate, d.status, d.mode, weight)

    def serving(self) -> dict[str, Any]:
        """What this server answers with now, for ``GET /deployments/{env}``."""
        candidate = self.router.candidate
        routing = self.router.routing
        return {
            "stable": self.stable.version,
            "candidate": candidate.version if candidate is not None else None,
            "weight": routing.weight,
            "copy": routing.copy,
            "candidate_error": self.candidate_error,
        }

    def _say(self, message: str) -> None:
        if message != self._told:  # once, not at every read
            self._told = message
            self.notify(message)


def _versions(d: Deployment) -> tuple[int | None, int | None]:
    return d.stable, d.candidate


def _describe(d: Deployment) -> str:
    where = f"{d.env}: {d.status}, stable {d.stable}"
    if d.candidate is not None:
        where += f", candidate {d.candidate} ({d.mode}, {d.weight:g} %)"
    return where + (f": {d.message}" if d.message else "")


def deployment_state(
    root: Path, env: str, read: ReadDeployment, serving: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """An environment's record and its last analysis, as ``GET /deployments/{env}`` answers
    (blocking: run in a thread); None for an environment without a record."""
    d = read(root, env)
    if d is None:
        return None
    from conveyor.registry.stored import last_deployment_event  # plain SQL, no SQLAlchemy

    last = last_deployment_event(root, env, "rollout.analysis")
    analysis = last.data if last is not None else None
    verdict = analysis.get("verdict") if isinstance(analysis, dict) else None
    return {
        "env": d.env,
        "model": d.model,
        "stable": d.stable,
        "candidate": d.candidate,
        "status": d.status,
        "mode": d.mode,
        "step": d.step,
        "weight": d.weight,
        "revision": d.revision,
        "message": d.message,
        "analysis": analysis,
        "verdict": verdict if verdict in ("pass", "fail", "inconclusive") else None,
        "serving": serving,
    }
