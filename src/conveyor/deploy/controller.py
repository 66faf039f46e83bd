"""The rollout controller: observe both versions, judge, decide, write; once per interval.

One :meth:`Controller.tick` reads the environment's record and, while a rollout is on,

1. observes the stable and the candidate side by side over the same window: request counts,
   errors and latency histograms from the server's own ``/metrics`` (the difference between
   two scrapes; summed over its workers by the server), labelled and correct predictions per
   version from feedback joined with the prediction log since the rollout started, and shadow
   agreement (:class:`MetricsSource`);
2. judges the window with the environment's checks (:func:`conveyor.deploy.analysis.evaluate`);
3. asks the pure decision (:func:`conveyor.deploy.decide.decide`) for the next record and its
   events, given the wall-clock time;
4. writes them with the revision it read. A :class:`~conveyor.registry.deployments.Conflict`
   means someone else moved the record (``rollout abort`` from a terminal): the write is
   dropped and the next tick starts from theirs;
5. tells the webhooks.

A window grows until its analysis is conclusive: with little traffic the samples add up over
several ticks instead of every tick judging too few, and once a window passed or failed the
next starts fresh, so a candidate that turns bad is seen within one interval under load.

Everything a rollout needs to go on lives in the record (the step, when it started, the
failures in a row), so a controller started after a restart resumes at the same step; only
the current window is lost, and the next tick starts a new one. The environment's config is
read again when conveyor.yaml changes, so that the controller judges a rollout by the
strategy and checks ``conveyor deploy`` started it with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from conveyor.deploy import analysis, decide, flows
from conveyor.deploy.config import Environment
from conveyor.foundation.errors import ConveyorError
from conveyor.registry.deployment import Deployment

if TYPE_CHECKING:
    from conveyor.deploy.observe import Samples
    from conveyor.monitor.webhooks import Sender
    from conveyor.tracking.store import SqlStore

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# Why the candidate's process stopped, if it did at or after the given time (a rollout's start)
Health = Callable[[float], "str | None"]


class Source(Protocol):
    """Where observations come from.

    - ``observe``: what was seen of ``record``'s two versions since the window started (None:
      nothing to judge yet, e.g. at the first scrape), with their labelled and correct
      predictions since the rollout started when ``labels`` (an accuracy check, an A/B test
      need them); a ConveyorError says what could not be read.
    - ``restart``: a new window starts at the last observation.
    - ``idle``: called on the ticks without a rollout, so that a rollout's first window starts
      at the tick before it; never raises (a server that is not up yet is no error there).
    """

    def observe(self, record: Deployment, labels: bool) -> analysis.Observations | None: ...

    def restart(self) -> None: ...

    def idle(self) -> None: ...


class Controller:
    """Advances one environment's rollout; ``run`` ticks every ``env.analysis.interval``
    seconds until its stop event is set. Not thread-safe: one thread drives it."""

    def __init__(
        self,
        root: Path,
        env: Environment,
        *,
        url: str,
        clock: Clock = time.time,
        source: Source | None = None,
        sender: Sender | None = None,
        notify: Callable[[str], None] | None = None,
        predictions: Path | None = None,
        health: Health | None = None,
    ) -> None:
        self.root = root
        self.health = health
        self.env = env
        self.url = url
        self.clock = clock
        self.source: Source = source or MetricsSource(root, url, predictions=predictions)
        self.sender = sender if sender is not None else flows.webhook_sender(env)
        self.notify = notify or (lambda message: log.warning("%s", message))
        self._window: tuple[object, ...] | None = None
        self._said = ""  # the last problem told, told again only when it changes
        self._config: int | None = None  # conveyor.yaml's mtime when ``env`` was read
        self._resources = ExitStack()
        self._store: SqlStore | None = None

    def tick(self) -> Deployment | None:
        """One round: the record as it is after it (None before the first deploy)."""
        store = self._opened()
        record = self._read(store)
        self._reread_config()
        if record is None or not record.active:
            self._window = None
            self.source.idle()
            return record
        self._follow(record)
        down = self.health(record.started) if self.health is not None else None
        if down is not None:  # nothing of the candidate's to judge: it is gone
            return self._write(store, record, decide.fail(record, self.clock(), down))
        try:
            observations = self.source.observe(record, _needs_labels(self.env))
        except ConveyorError as exc:
            # Nothing seen is nothing judged, not a stop: the clock still moves the rollout
            # (a pause ends, a deadline passes and aborts a rollout whose server is gone).
            self._say(f"{exc.message} (the rollout waits: nothing to judge)")
            observations = None
        else:
            self._said = ""
        results = None
        if observations is not None:
            results = analysis.evaluate(self.env, observations)
            if analysis.overall([r for r in results if r.metric != "ab"]) != "inconclusive":
                self.source.restart()
        return self._write(store, record, decide.decide(self.env, record, results, self.clock()))

    def _write(
        self, store: SqlStore, record: Deployment, decision: decide.Decision
    ) -> Deployment | None:
        """Save a decision on ``record`` and tell the webhooks; the record as it is after."""
        new, events = decision
        if new == record and not events:
            return record
        from conveyor.registry.deployments import Conflict

        try:
            saved = flows.save(store, new, events, expected=record.revision)
        except Conflict:
            log.info("deploy %s: the record moved under this tick; following it", record.env)
            return self._read(store)
        flows.announce(self.sender, saved, events)
        return saved

    def run(self, stop: threading.Event, *, delay: float = 0.0) -> None:
        """Tick until ``stop`` is set, the first time after ``delay`` seconds (a server started
        with it gets to listen first). A failing tick (the store unreachable for a moment) is
        told once per distinct reason and the loop goes on."""
        try:
            stop.wait(delay)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except ConveyorError as exc:
                    self._say(exc.message)
                    self._reopen()
                except Exception:  # a bug: say it, keep the rollout's server up
                    log.exception("deploy %s: controller tick failed", self.env.name)
                    self._reopen()
                elapsed = time.monotonic() - started
                stop.wait(max(0.0, self.env.analysis.interval - elapsed))
        finally:
            self.close()

    def close(self) -> None:
        """Let go of the store and deliver the webhooks still queued (bounded)."""
        self._reopen()
        if self.sender is not None:
            self.sender.close()

    def _reread_config(self) -> None:
        """The environment as conveyor.yaml says now, when the file changed since it was read;
        a file being edited that does not parse leaves the one read before in force."""
        from conveyor.deploy.config import environment
        from conveyor.foundation.project import FILE

        try:
            stamp = (self.root / FILE).stat().st_mtime_ns
        except OSError:
            return
        if stamp == self._config:
            return
        first = self._config is None
        self._config = stamp
        if first:
            return  # ``env`` was given read from this state of the file
        try:
            self.env = environment(self.root, self.env.name)
        except ConveyorError as exc:
            self._say(f"{FILE} changed and cannot be used: {exc.message} (going on as before)")

    def _say(self, problem: str) -> None:
        if problem != self._said:
            self.notify(f"deploy {self.env.name}: {problem}")
            self._said = problem

    def _follow(self, record: Deployment) -> None:
        """A new step, a new candidate or a status change starts a new window: the last one
        measured traffic split another way."""
        window = (record.stable, record.candidate, record.step, record.status, record.weight)
        if window != self._window:
            self.source.restart()
            self._window = window

    def _opened(self) -> SqlStore:
        if self._store is None:
            from conveyor.tracking.db import opened

            self._store = self._resources.enter_context(opened(self.root))
        return self._store

    def _reopen(self) -> None:
        self._resources.close()
        self._resources = ExitStack()
        self._store = None

    def _read(self, store: SqlStore) -> Deployment | None:
        from conveyor.registry import queries

        return queries.deployment(store.execute, self.env.name)


class MetricsSource:
    """Observations from the server's ``/metrics`` (the difference since the window's first
    scrape), with labels from feedback joined to the prediction log since the rollout began.

    A window belongs to one pair of versions; the caller restarts it when the split changes.
    Feedback is read only when asked for; it is cumulative over the rollout, as labels arrive
    late and few. Joining it is a pass over the prediction log, made at most every
    ``labels_every`` seconds (the counts in between are the last join's): the controller may
    share its process with the server, and labels that count in hundreds gain nothing from a
    join every second.
    """

    def __init__(
        self,
        root: Path,
        url: str,
        *,
        predictions: Path | None = None,
        timeout: float = 2.0,
        labels_every: float = 5.0,
    ) -> None:
        from conveyor.foundation.paths import CONTROL_DIR
        from conveyor.monitor import feedback
        from conveyor.monitor.joiner import Joiner

        self.url = url.rstrip("/")
        self.timeout = timeout
        # Where the server logs its predictions (``conveyor serve --log-dir``), and its labels.
        self.predictions = predictions or root / CONTROL_DIR / "predictions"
        self.feedback = feedback.folder(root)
        self.labels_every = labels_every
        self._base: Samples | None = None
        self._last: Samples | None = None
        # The last join: for which rollout (start, versions), when, and its counts.
        self._joined: tuple[tuple[object, ...], float, dict[str, tuple[int, int]]] | None = None
        # The rollout's join, kept up to date with what was logged and labelled since.
        self._joiner: tuple[tuple[object, ...], Joiner] | None = None

    def observe(self, record: Deployment, labels: bool) -> analysis.Observations | None:
        scraped = self._scrape()
        self._last = scraped
        if self._base is None:  # the first tick after a start: the window starts now
            self._base = scraped
            return None
        from conveyor.deploy import observe

        stable, candidate, agreement = observe.sides(
            observe.delta(self._base, scraped), record.model
        )
        seen = analysis.Observations(stable, candidate, agreement)
        if labels:
            seen = self._with_labels(seen, record)
        return seen

    def restart(self) -> None:
        self._base = self._last

    def idle(self) -> None:
        try:
            self._last = self._scrape()
        except ConveyorError:
            self._last = None  # not up yet, or going down: the next rollout's first tick waits
        self._base = self._last

    def _scrape(self) -> Samples:
        from conveyor.deploy import observe

        return observe.parse(observe.scrape(self.url + "/metrics", timeout=self.timeout))

    def _with_labels(
        self, seen: analysis.Observations, record: Deployment
    ) -> analysis.Observations:
        """Labelled and correct predictions of each version since the rollout started: the
        feedback received so far joined with the prediction log by request id."""
        counts = self._labelled(record)
        stable = counts.get(str(record.stable), (0, 0))
        candidate = counts.get(str(record.candidate), (0, 0))
        return replace(
            seen,
            stable=replace(seen.stable, labelled=stable[0], correct=stable[1]),
            candidate=replace(seen.candidate, labelled=candidate[0], correct=candidate[1]),
        )

    def _labelled(self, record: Deployment) -> dict[str, tuple[int, int]]:
        """Version -> (labelled, correct), updated when the last update is older than
        ``labels_every`` or was for another rollout. One joiner per rollout reads only what was
        logged and labelled since its last update; another rollout starts a new one."""
        from conveyor.monitor import predlog
        from conveyor.monitor.joiner import Joiner

        key = (record.started, record.stable, record.candidate)
        now = time.monotonic()
        if self._joined is not None:
            was, at, counts = self._joined
            if was == key and now - at < self.labels_every:
                return counts
        if self._joiner is None or self._joiner[0] != key:
            logged = predlog.model_folder(self.predictions, record.model)
            self._joiner = (key, Joiner(logged, self.feedback, since=record.started))
        joined = self._joiner[1].update()
        counts = {v: (t.labelled, t.correct) for v, t in joined.versions.items()}
        self._joined = (key, now, counts)
        return counts


def _needs_labels(env: Environment) -> bool:
    """Whether judging ``env``'s rollouts takes feedback (reading it costs a pass over the
    prediction log, so it is read only then)."""
    return env.strategy.kind == "ab" or any(c.metric == "accuracy" for c in env.analysis.checks)


def start_thread(
    root: Path,
    env: Environment,
    url: str,
    *,
    notify: Callable[[str], None] | None = None,
    predictions: Path | None = None,
    delay: float = 1.0,
    health: Health | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """A daemon thread running the environment's controller (first tick after ``delay``), and
    the event that stops it."""
    stop = threading.Event()
    controller = Controller(
        root, env, url=url, notify=notify, predictions=predictions, health=health
    )
    thread = threading.Thread(
        target=controller.run,
        args=(stop,),
        kwargs={"delay": delay},
        name=f"conveyor-deploy-{env.name}",
        daemon=True,
    )
    thread.start()
    return thread, stop
