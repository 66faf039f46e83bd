"""An environment's monitor, put together: the ``monitor:`` entry with the ``deploy:`` one it
watches (the model, the server's address), the versions' roles from the deployment record, each
version's columns and, for the label-free estimate, its model from the registry, the server's
error rate and latency from its ``/metrics``, and the ``rollback`` action.

    watch = open_watch(root, "production", actions={"retrain": ...})
    with exclusive(root, "production"):    # one monitor per environment at a time
        watch.tick()

The ``retrain`` action runs the pipeline, so it comes from above (:mod:`conveyor.ci`): the
command that starts the loop passes it in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conveyor.deploy import observe
from conveyor.deploy.config import Environment, environment
from conveyor.foundation.errors import LockError
from conveyor.monitor.alerts import Notice, Notifier
from conveyor.monitor.config import monitor
from conveyor.monitor.reference import folder
from conveyor.monitor.watch import Action, Announce, Watch

log = logging.getLogger(__name__)
CONTROL_LOG = ".conveyor/predictions"


def open_watch(
    root: Path,
    env_name: str,
    *,
    predictions: Path | None = None,
    url: str | bool | None = None,
    actions: Mapping[str, Action] | None = None,
    notify: bool = True,
    clock: Callable[[], float] = time.time,
) -> Watch:
    """The monitor of environment ``env_name`` (both sections checked: the environment must
    be under ``deploy:`` and under ``monitor:``)."""
    env = environment(root, env_name)
    spec = monitor(root, env_name)
    given = {"rollback": _rollback(root, env_name), **(actions or {})}
    return Watch(
        root,
        spec,
        model=env.model,
        predictions=predictions or root / CONTROL_LOG,
        feedback=_feedback(root),
        roles=lambda: _roles(root, env_name),
        server=None if url is False else ServerFigures(str(url or _url(env)), env.model),
        actions=given,
        notifier=Notifier(spec) if notify and spec.notify else None,
        columns=_Columns(root, env.model),
        scorer=_Scorer(root, env.model) if spec.estimate else None,
        clock=clock,
    )


@contextmanager
def exclusive(root: Path, env_name: str, *, timeout: float = 0.0) -> Iterator[None]:
    """Hold the environment's monitor lock: two monitors of one environment would count its
    windows twice. A LockError (naming the holder) when another holds it."""
    from conveyor.foundation.lock import ProjectLock

    where = folder(root, env_name)
    where.mkdir(parents=True, exist_ok=True)
    lock = ProjectLock(where / "lock", timeout=timeout, command=f"monitor {env_name}")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def start_thread(
    watch: Watch, *, stop: threading.Event, notify: Callable[[str], None] | None = None
) -> threading.Thread | None:
    """Tick ``watch`` every ``interval`` seconds in a daemon thread until ``stop`` is set, while
    holding its lock (None when another monitor holds it: that one watches). A failing tick is
    told and retried at the next interval; it never stops the thread or the server."""
    root, env = watch.root, watch.spec.env
    say = notify or log.warning
    try:
        holder = exclusive(root, env)
        holder.__enter__()
    except LockError as exc:
        say(f"monitor {env}: not started here: {exc.message}")
        return None

    def loop() -> None:
        failing = ""
        late = False
        interval = watch.spec.interval
        first = True  # the first look reads what the log holds since the last run: not told
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    done = watch.tick()
                    failing = ""
                    for notice in done.notices:
                        say(f"monitor {env}: {told(notice)}")
                except Exception as exc:  # a bad tick is told once, then retried
                    message = f"monitor {env}: {exc}"
                    if message != failing:
                        say(message)
                        failing = message
                took = time.monotonic() - started
                if (took > LATE * interval) != late and not first:
                    late = not late
                    say(behind(env, took, interval) if late else f"monitor {env}: on time again")
                first = False
                _between(watch, stop, until=started + interval)
        finally:
            if watch.notifier is not None:
                watch.notifier.close(timeout=2.0)
            holder.__exit__(None, None, None)

    thread = threading.Thread(target=loop, name=f"conveyor-monitor-{env}", daemon=True)
    thread.start()
    return thread


LATE = 3  # a look that takes this many intervals is told (once, until looks are quick again)
STEP = 0.25  # seconds between two catch-ups of the log between looks


def _between(watch: Watch, stop: threading.Event, *, until: float) -> None:
    """Until ``until`` (monotonic), read the log every ``STEP`` seconds (``Watch.catch_up``):
    the look's work in small steps, not one burst per interval. A failing step is left to the
    next look, which fails the same way and says so."""
    while not stop.wait(max(0.0, min(STEP, until - time.monotonic()))):
        if time.monotonic() >= until:
            return
        try:
            watch.catch_up()
        except Exception as exc:
            log.debug("monitor %s: catch-up failed: %s", watch.spec.env, exc)


def behind(env: str, took: float, interval: float) -> str:
    return (
        f"monitor {env}: a look took {took:.0f} s (interval {interval:g} s): its alerts come "
        "late (it runs only on the processor time the server's requests leave)"
    )


def told(notice: Notice) -> str:
    """An alert's change in one line: ``alert drift firing: drift.share = 0.6 (retrain ...)``."""
    moved = notice.transition
    said = f" ({notice.action})" if notice.action else ""
    metric = notice.rule.condition.metric
    return f"alert {notice.rule.name} {moved.to}: {metric} = {moved.value:.4g}{said}"


# ----------------------------------------------------------------------------------- pieces


def _url(env: Environment) -> str:
    host = env.host if env.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{env.port}"


def _feedback(root: Path) -> Path:
    from conveyor.monitor import feedback

    return feedback.folder(root)


def _roles(root: Path, env_name: str) -> dict[str, str]:
    from conveyor.registry.stored import deployment

    record = deployment(root, env_name)
    if record is None or record.stable is None:
        return {}
    roles = {str(record.stable): "stable"}
    if record.active and record.candidate is not None:
        roles[str(record.candidate)] = "shadow" if record.mode == "shadow" else "candidate"
    return roles


def _rollback(root: Path, env_name: str) -> Action:
    def act(notice: Notice, announce: Announce) -> str:
        from conveyor.deploy import flows

        record = flows.rollback(root, env_name)
        return f"rolled back to version {record.stable}"

    return act


class _Columns:
    """A version's input columns, from its package's signature (cached; None without one)."""

    def __init__(self, root: Path, model: str) -> None:
        self.root, self.model = root, model
        self._known: dict[str, tuple[str, ...] | None] = {}

    def __call__(self, version: str) -> tuple[str, ...] | None:
        if version not in self._known:
            self._known[version] = self._read(version)
        return self._known[version]

    def _read(self, version: str) -> tuple[str, ...] | None:
        try:
            folder = _package(self.root, self.model, version)
            from conveyor.registry.package import read_manifest
            from conveyor.registry.signature import Signature

            raw = read_manifest(folder).get("signature")
            if not raw:
                return None
            return tuple(c.name for c in Signature.from_dict(raw).inputs) or None
        except Exception as exc:  # no such version, a package not fetched: reference order
            log.warning("monitor: columns of %s/%s unknown: %s", self.model, version, exc)
            return None


class _Scorer:
    """A version's ``predict_proba``, loaded from the registry once (None without one)."""

    def __init__(self, root: Path, model: str) -> None:
        self.root, self.model = root, model
        self._known: dict[str, Callable[[Any], Any] | None] = {}

    def __call__(self, version: str) -> Callable[[Any], Any] | None:
        if version not in self._known:
            self._known[version] = self._load(version)
        return self._known[version]

    def _load(self, version: str) -> Callable[[Any], Any] | None:
        try:
            from conveyor.registry.package import load

            model = load(_package(self.root, self.model, version))
            if not hasattr(model.model, "predict_proba"):
                return None
            return model.predict_proba
        except Exception as exc:  # no estimate for that version; the rest goes on
            log.warning("monitor: no estimate for %s/%s: %s", self.model, version, exc)
            return None


def _package(root: Path, model: str, version: str) -> Path:
    from conveyor.data.workspace import Workspace
    from conveyor.registry.stored import materialize, resolve

    found = resolve(root, f"models:/{model}/{version}")
    with Workspace(root) as ws:
        return materialize(ws, found)


class ServerFigures:
    """The stable version's error rate, latency and traffic since the last call, from the
    server's ``/metrics`` (two scrapes make an interval; the first call knows nothing)."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        self._before: dict[Any, float] | None = None
        self._when = 0.0

    def __call__(self) -> dict[str, float | None]:
        from conveyor.deploy.analysis import quantile

        now = time.monotonic()
        after = observe.parse(observe.scrape(self.url, timeout=2.0))
        before, self._before = self._before, after
        elapsed, self._when = now - self._when, now
        if before is None:
            return {}
        stable, _, _ = observe.sides(observe.delta(before, after), self.model)
        if not stable.requests:
            return {"requests_per_second": 0.0}
        return {
            "error_rate": stable.errors / stable.requests,
            "latency_p50": quantile(stable.latency_buckets, 0.5),
            "latency_p99": quantile(stable.latency_buckets, 0.99),
            "requests_per_second": stable.requests / elapsed if elapsed > 0 else None,
        }
