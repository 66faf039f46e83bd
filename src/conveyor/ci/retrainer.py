"""Retrains on request, as a monitoring alert makes them: at most one in flight per project,
and a cooldown between two of an environment.

:meth:`Retrainer.request` starts :func:`conveyor.ci.retrain.retrain` on a thread of its own,
unless one is in flight (on this object, or anywhere that holds ``.conveyor/retrain.lock``: two
servers of one project never retrain at once, nor a server and ``conveyor retrain`` by hand) or
the cooldown since the environment's last retrain ended has not passed. That end is read back
from the retrain's events in the store, so a restart does not reset the cooldown and a retrain
by hand counts too. :func:`decide` is the decision over plain values; the lock is an advisory
one the kernel drops when its holder dies, so a crashed server leaves none behind.

    >>> r = Retrainer(root, "production", cooldown=3600, on_done=notify)  # doctest: +SKIP
    >>> r.request("accuracy below 0.9 for 10 min")  # doctest: +SKIP
    'started'
    >>> r.request("accuracy below 0.9 for 10 min")  # doctest: +SKIP
    'refused: one in flight'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.ci.retrain import ENDINGS, Clock, Retrained, retrain
from conveyor.foundation.errors import ConveyorError, LockError
from conveyor.foundation.lock import ProjectLock
from conveyor.foundation.paths import CONTROL_DIR

if TYPE_CHECKING:
    from conveyor.monitor.alerts import Notice
    from conveyor.monitor.watch import Announce
    from conveyor.tracking.events import Event

log = logging.getLogger(__name__)

LOCK = "retrain.lock"


@dataclass(frozen=True)
class Decision:
    """Whether a retrain may start now; if not, why (and until when, for a cooldown)."""

    start: bool
    why: str = ""  # "one in flight", "cooldown"
    until: float | None = None

    def said(self) -> str:
        """``started``, ``refused: one in flight``, ``refused: cooldown until HH:MM:SS``."""
        if self.start:
            return "started"
        if self.until is None:
            return f"refused: {self.why}"
        return f"refused: {self.why} until {time.strftime('%H:%M:%S', time.localtime(self.until))}"


def decide(*, now: float, last_end: float | None, in_flight: bool, cooldown: float) -> Decision:
    """May a retrain start at ``now``? Not while one is in flight, nor within ``cooldown``
    seconds of the last one's end (None: there was none)."""
    if in_flight:
        return Decision(False, "one in flight")
    if last_end is not None and now < last_end + cooldown:
        return Decision(False, "cooldown", last_end + cooldown)
    return Decision(True)


@contextmanager
def exclusive(root: Path, env_name: str) -> Iterator[None]:
    """Hold the project's retrain lock for a retrain by hand; :class:`LockError` at once when
    a retrain is in flight (here or in a server of the project)."""
    lock = _lock(root, env_name)
    if lock is None:
        raise LockError(
            f"a retrain is in flight in this project ({_holder(root)})",
            hint=f"wait for it to end; `conveyor rollout history {env_name}` shows its steps",
        )
    try:
        yield
    finally:
        lock.release()


class Retrainer:
    """Retrains of environment ``env_name`` on request, one at a time, ``cooldown`` seconds
    apart at least (from one's end to the next one's start). ``on_done`` hears each
    :class:`Retrained` on the retrain's thread (a daemon: :meth:`wait` for it before exiting).
    ``clock`` is the time (and the events' time) the cooldown is measured with."""

    def __init__(
        self,
        root: Path,
        env_name: str,
        *,
        cooldown: float,
        on_done: Callable[[Retrained], None] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.root = root
        self.env_name = env_name
        self.cooldown = cooldown
        self.on_done = on_done
        self.clock = clock
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_end: float | None = None  # of this object's last retrain

    def request(self, reason: str) -> str:
        """Start a retrain for ``reason`` unless :func:`decide` refuses; what was decided."""
        with self._mutex:
            busy = self._thread is not None and self._thread.is_alive()
            lock = None if busy else _lock(self.root, self.env_name)
            # Read under the lock: a retrain elsewhere cannot end between the read and the start.
            last = self._last() if lock is not None else None
            decision = decide(
                now=self.clock(), last_end=last, in_flight=lock is None, cooldown=self.cooldown
            )
            if not decision.start:
                if lock is not None:
                    lock.release()
                return decision.said()
            assert lock is not None
            self._thread = threading.Thread(
                target=self._work, args=(reason, lock), name=f"retrain {self.env_name}",
                daemon=True,
            )  # fmt: skip
            self._thread.start()
            return decision.said()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the retrain in flight (if any) to end; whether none is in flight now."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _work(self, reason: str, lock: ProjectLock) -> None:
        try:
            done = retrain(self.root, self.env_name, reason=reason, now=self.clock)
            self._last_end = done.ended
        except Exception:  # a bug: the next request must still find no retrain in flight
            self._last_end = self.clock()
            log.exception("environment %s: the retrain failed unexpectedly", self.env_name)
            return
        finally:
            lock.release()
        if self.on_done is not None:
            try:
                self.on_done(done)
            except Exception:
                log.exception("environment %s: on_done failed", self.env_name)

    def _last(self) -> float | None:
        """The latest end of a retrain of the environment: this object's, or its events'."""
        ends = [self._last_end] if self._last_end is not None else []
        try:
            ends.extend(e.time for e in _endings(self.root, self.env_name))
        except ConveyorError as exc:
            log.warning("environment %s: past retrains not read: %s", self.env_name, exc)
        return max(ends, default=None)


def _endings(root: Path, env_name: str) -> list[Event]:
    """The latest event of each ending kind of the environment's retrains."""
    from conveyor.registry.stored import last_deployment_event

    found = (last_deployment_event(root, env_name, kind) for kind in ENDINGS)
    return [e for e in found if e is not None]


def _lock(root: Path, env_name: str) -> ProjectLock | None:
    """The project's retrain lock, held; None if another holds it (no waiting)."""
    lock = ProjectLock(
        root / CONTROL_DIR / LOCK, timeout=0.0, command=f"conveyor retrain {env_name}"
    )
    try:
        lock.acquire()
    except LockError:
        return None
    return lock


def _holder(root: Path) -> str:
    try:
        return (root / CONTROL_DIR / LOCK).read_text().strip() or "unknown pid"
    except OSError:
        return "unknown pid"


def action(
    root: Path, env_name: str, *, say: Callable[[str], None] | None = None
) -> Callable[[Notice, Announce], str]:
    """The monitor's ``retrain`` action for environment ``env_name``: a :class:`Retrainer`
    with the cooldown of its ``monitor:`` entry. An alert that fires asks for a retrain; what
    it ended with is told (``say``) and announced to the alert's receivers: a retrain whose
    gates failed as a critical alert, production untouched."""
    from conveyor.monitor.config import monitor

    spec = monitor(root, env_name)
    tell = say or log.warning
    pending: list[Announce] = []  # the announcer of the alert that asked, until it is done

    def done(result: Retrained) -> None:
        tell(f"retrain {result.message}")
        failed = result.outcome in ("gates_failed", "failed")
        for announce in pending:
            announce("critical" if failed else "info", result.message)
        pending.clear()

    retrainer = Retrainer(root, env_name, cooldown=spec.cooldown, on_done=done)

    def act(notice: Notice, announce: Announce) -> str:
        moved = notice.transition
        reason = f"alert {notice.rule.name}: {notice.rule.condition.metric} = {moved.value:.4g}"
        said = retrainer.request(reason)
        if said == "started":
            pending.append(announce)
        return f"retrain {said}"

    return act
