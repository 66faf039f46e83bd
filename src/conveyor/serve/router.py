"""The router: one :class:`~conveyor.serve.predictor.Predictor` over a stable and a candidate
version of a model, splitting traffic as an environment's deployment record says.

    canary, ab    a request goes to the candidate when its key's bucket (0..9999, a stable hash
                  of the key) is below ``weight`` x 100: a retried request (same x-request-id)
                  lands on the same version, and the requests that reach the candidate at 10 %
                  still reach it at 50 %. The key is the request id, or with ``sticky`` the
                  value of a header (``header:x-user-id``) or cookie (``cookie:uid``), so one
                  user stays on one side. The hash is salted with the candidate's version: the
                  next rollout picks other users.
    shadow        stable answers every request; a copy of ``weight`` percent of them (every one
                  at weight 0) goes to the candidate in a background task whose answer is only
                  compared with stable's, row by row, and counted (agree, disagree, error).
    blue_green    as canary (0 or 100 %); at weight 0 every request is copied, as in shadow, so
                  that the candidate is analysed before the switch.

Copies are bounded: at most ``max_copies`` in flight, and one more is dropped (and counted), so
a slow or failing candidate never holds up nor fails a request; the request never awaits its
copy. Which routing applies is a pure function of the record, :func:`routing`; the router
only reads the result on each request (one attribute read).

Every answer says which version answered and in which role (``x-model-version``,
``x-model-role``); an error raised by the candidate is marked with its version and role too
(:func:`blame`), so that it is counted against the candidate and not against stable.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.cookies
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from conveyor.serve.errors import RequestError
from conveyor.serve.metrics import Metrics
from conveyor.serve.predictor import Prediction, Role, Version
from conveyor.serve.remote import Remote, Unavailable

if TYPE_CHECKING:
    from conveyor.registry.deployment import Deployment

BUCKETS = 10_000


# How long a shadow's batch waits for more copies: nobody waits on a copy, and a model's cost
# hardly grows with the rows, so copies batched 20 ms at a time cost the server little.
SHADOW_HOLD = 0.02


class Member(Protocol):
    """What the router needs of each version it routes to (:class:`~conveyor.serve.served.
    Served` is one): a predictor whose role the router sets."""

    uri: str
    name: str
    role: Role

    @property
    def version(self) -> str | None: ...

    @property
    def ready(self) -> bool: ...

    def require(self) -> Version: ...

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Routing:
    """How requests are split now: percent answered by the candidate, percent copied to it."""

    weight: float = 0.0
    copy: float = 0.0
    sticky: str = ""  # "header:NAME", "cookie:NAME" or "" (the request id)
    salt: str = ""
    mode: str = "canary"


STABLE_ONLY = Routing()


PROMOTED = Routing(100.0, 0.0, "", "", "promoted")


def routing(d: Deployment | None, candidate: str | None, stable: str | None = None) -> Routing:
    """The routing for record ``d`` when the candidate slot holds version ``candidate`` (None:
    nothing loaded) and the stable slot ``stable``. Stable alone unless a rollout is on and its
    candidate is the one loaded: an abort, a promotion or a candidate still loading all answer
    from stable at once. One exception: the record's stable version loaded only in the
    candidate's slot (promoted, while the stable slot loads it; the candidate's own process
    holds it) answers everything from there."""
    if d is not None and d.stable is not None and stable is not None:
        promoted = str(d.stable)
        if promoted == candidate and promoted != stable:
            return PROMOTED
    if d is None or not d.active or d.candidate is None or str(d.candidate) != candidate:
        return STABLE_ONLY
    weight = min(max(float(d.weight), 0.0), 100.0)
    salt = str(d.candidate)
    if d.mode == "shadow":
        return Routing(0.0, weight or 100.0, d.sticky, salt, d.mode)
    copy = 100.0 if d.mode == "blue_green" and weight == 0 else 0.0
    if weight == 0 and copy == 0:
        return STABLE_ONLY
    return Routing(weight, copy, d.sticky, salt, d.mode)


def bucket(key: str, salt: str = "") -> int:
    """The key's bucket, 0 to 9999: the same for the same key and salt in every process."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def request_key(sticky: str, headers: Mapping[bytes, bytes], request_id: str) -> str:
    """The value a request is routed by: the sticky header's or cookie's when the request has
    one, else its id."""
    kind, _, name = sticky.partition(":")
    if kind == "header" and name:
        value = headers.get(name.strip().lower().encode("latin-1"))
        if value:
            return "h:" + value.decode("latin-1")
    elif kind == "cookie" and name:
        raw = headers.get(b"cookie")
        if raw:
            jar = http.cookies.SimpleCookie()
            try:
                jar.load(raw.decode("latin-1"))
            except http.cookies.CookieError:
                return request_id
            morsel = jar.get(name.strip())
            if morsel is not None and morsel.value:
                return "c:" + morsel.value
    return request_id


def agreement(primary: Any, copy: Any, *, rtol: float = 1e-6, atol: float = 1e-9) -> int:
    """How many rows of ``copy`` equal ``primary``'s (numbers within a tolerance); rows of
    different shapes or kinds all disagree."""
    a, b = np.asarray(primary), np.asarray(copy)
    if a.shape != b.shape or a.ndim == 0:
        return int(a.shape == b.shape and _equal(a, b, rtol, atol).all())
    same = _equal(a, b, rtol, atol)
    return int(same.reshape(len(a), -1).all(axis=1).sum())


def _equal(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return np.asarray(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True), dtype=bool)
    try:
        same = np.asarray(a == b, dtype=bool)
    except (TypeError, ValueError):  # kinds numpy will not compare: not the same answers
        same = np.zeros(a.shape, dtype=bool)
    return same if same.shape == a.shape else np.zeros(a.shape, dtype=bool)


def blame(exc: RequestError, version: str | None, role: Role) -> RequestError:
    """Mark an error with the version that raised it, for the reply's headers and metrics."""
    exc.answered = (version, role)  # type: ignore[attr-defined]
    return exc


def counted(
    metrics: Metrics, name: str, version: str, status: int, agreed: int, rows: int, seconds: float
) -> None:
    """One shadow copy of ``rows`` rows, answered with ``status``: its comparison (``agreed``
    rows the same as stable's) or its failure, and its time."""
    if status == 200:
        metrics.compared(name, version, agreed, rows - agreed)
    else:
        metrics.copy_failed(name, version, rows)
    metrics.request(name, version, "shadow", status, seconds, "shadow")


def rows_of(outputs: Any) -> int:
    return len(outputs) if np.ndim(outputs) else 1


class Router:
    """A predictor over ``stable`` and, while a rollout is on, ``candidate``; see the module."""

    def __init__(
        self,
        stable: Member,
        candidate: Member | None = None,
        *,
        metrics: Metrics,
        max_copies: int = 64,
    ) -> None:
        self.stable = stable
        self.candidate = candidate
        self.metrics = metrics
        self.max_copies = max_copies
        self.routing = STABLE_ONLY
        self.copies: set[asyncio.Task[None]] = set()

    # -- Predictor ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.stable.name

    @property
    def role(self) -> Role:
        return "stable"

    @property
    def version(self) -> str | None:
        return self.stable.version

    @property
    def ready(self) -> bool:
        return self.stable.ready

    @property
    def sticky(self) -> str:
        return self.routing.sticky

    def require(self) -> Version:
        return self.stable.require()

    def at(self, version: str) -> Member | None:
        """The member answering with ``version``, for a request that names it."""
        for member in (self.stable, self.candidate):
            if member is not None and member.version == version:
                return member
        return None

    def apply(self, d: Deployment | None) -> Routing:
        """Route as record ``d`` says, from the next request on."""
        candidate = self.candidate
        new = routing(d, candidate.version if candidate is not None else None, self.stable.version)
        if candidate is not None:
            role: Role = "shadow" if new.copy > 0 and new.weight == 0 else "candidate"
            if new is PROMOTED:
                role = "stable"
            batcher = getattr(candidate, "batcher", None)  # a loaded version's (Served)
            if batcher is not None:
                batcher.hold = SHADOW_HOLD if role == "shadow" else 0.0
            if candidate.role != role:
                candidate.role = role
                if candidate.version is not None:
                    self.metrics.serving(candidate.uri, candidate.name, candidate.version, role)
        self.routing = new
        return new

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]:
        route, candidate = self.routing, self.candidate
        if candidate is None or (route.weight <= 0 and route.copy <= 0):
            return await self.stable.predict(data, timeout=timeout, key=key)
        slot = bucket(key, route.salt) if key else random.randrange(BUCKETS)
        if slot < route.weight * 100 and candidate.ready:
            start = time.perf_counter()
            version = candidate.version
            try:
                return await candidate.predict(data, timeout=timeout, key=key)
            except Unavailable:  # its process went: nothing reached it, stable answers
                seconds = time.perf_counter() - start
                role = candidate.role
                self.metrics.request(self.name, version or "", "failover", 503, seconds, role)
            except RequestError as exc:
                raise blame(exc, candidate.version, candidate.role) from None
        checked, prediction = await self.stable.predict(data, timeout=timeout, key=key)
        if slot < route.copy * 100 and candidate.ready:
            if isinstance(candidate, Remote):  # compared in its process: nothing to await here
                if not candidate.copy(data, prediction.outputs, timeout, self.max_copies):
                    self.metrics.copy_dropped(self.name)
            else:
                self._copy(candidate, data, prediction, timeout)
        return checked, prediction

    # -- shadow copies -----------------------------------------------------------------------

    def _copy(
        self, candidate: Member, data: Any, primary: Prediction, timeout: float | None
    ) -> None:
        if len(self.copies) >= self.max_copies:
            self.metrics.copy_dropped(self.name)
            return
        task = asyncio.get_running_loop().create_task(
            self._compare(candidate, data, primary, timeout)
        )
        self.copies.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self.copies.discard)

    async def _compare(
        self, candidate: Member, data: Any, primary: Prediction, timeout: float | None
    ) -> None:
        start = time.perf_counter()
        version, status, agreed = candidate.version or "", 200, 0
        try:
            _, copy = await candidate.predict(data, timeout=timeout)
        except RequestError as exc:
            status = exc.status
        except Exception:  # a copy must never take the server down
            status = 500
        else:
            version, agreed = copy.version, agreement(primary.outputs, copy.outputs)
        rows, seconds = rows_of(primary.outputs), time.perf_counter() - start
        counted(self.metrics, self.name, version, status, agreed, rows, seconds)

    def close(self) -> None:
        for task in list(self.copies):
            task.cancel()
