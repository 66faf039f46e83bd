"""The deploy flows a person starts: deploy a version, move a rollout by hand, roll back, read.

Each changing flow is the same four moves: read the environment's record, ask the pure
decision (:mod:`conveyor.deploy.decide`) for the next record and its events, write both with
the revision read (:func:`conveyor.registry.deployments.save` refuses the write when someone
else, usually the controller, wrote in between; the flow then reads again and decides again),
and tell the environment's webhooks. The local CLI is the project's owner: it acts on the store
directly, and a running server follows the record within its poll interval.

    >>> deploy(root, "production", "classifier@staging")  # doctest: +SKIP
    Deployment(env='production', stable=3, candidate=4, status='progressing', weight=10.0, ...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.deploy import decide as decisions
from conveyor.deploy.config import Environment, environment, environments
from conveyor.deploy.errors import DeployError
from conveyor.foundation.errors import ConveyorError
from conveyor.registry.deployment import Deployment

if TYPE_CHECKING:
    from conveyor.monitor.webhooks import Sender
    from conveyor.registry.records import ModelVersion
    from conveyor.tracking.events import Event
    from conveyor.tracking.store import SqlStore

log = logging.getLogger(__name__)

# A write that lost the race with the controller is decided again on the new record; past this
# many losses in a row something writes without pause, and saying so beats spinning.
_ATTEMPTS = 5
# How long a command waits for its webhooks to be delivered before it returns.
_HOOK_WAIT = 5.0

Change = Callable[[Deployment, float], "tuple[Deployment, list[decisions.Event]]"]


@dataclass(frozen=True)
class Rollout:
    """An environment as ``rollout status`` shows it: its config, its record (None before its
    first deploy) and the inputs and verdict of the last analysis."""

    env: Environment
    record: Deployment | None
    analysis: dict[str, Any] | None = None


def deploy(root: Path, env_name: str, uri: str, *, now: float | None = None) -> Deployment:
    """Start a rollout of the version ``uri`` names (``clf@staging``, ``models:/clf/4``, or a
    bare version number of the environment's model) in ``env_name``; the first deploy of an
    environment serves it at 100 % at once. Refused, with the reason, when the version's gates
    failed, when it is already stable, or while another rollout is on."""
    from conveyor.tracking.db import opened

    env = environment(root, env_name)
    with opened(root) as store:
        version = _version(store, env, uri)
        _require_gates_passed(store, version)
        change: Change = lambda current, at: decisions.start(env, current, version.version, at)  # noqa: E731
        return _apply(store, env, change, now=now, allow_missing=True)


def promote(root: Path, env_name: str, *, full: bool = False) -> Deployment:
    """The next step of the rollout now (``full``: the candidate becomes stable at once)."""
    env = environment(root, env_name)
    return _change(root, env, lambda d, at: decisions.promote(d, at, full, env=env))


def pause(root: Path, env_name: str) -> Deployment:
    """Hold the rollout where it is (the split stays) until :func:`resume` or :func:`promote`."""
    return _change(root, environment(root, env_name), decisions.pause)


def resume(root: Path, env_name: str) -> Deployment:
    """Go on with a paused rollout: its current step starts again from now."""
    env = environment(root, env_name)
    return _change(root, env, lambda d, at: decisions.resume(d, at, env=env))


def abort(root: Path, env_name: str, reason: str = "aborted by hand") -> Deployment:
    """All traffic back on stable at once; the candidate stays loaded for inspection."""
    return _change(root, environment(root, env_name), lambda d, at: decisions.abort(d, at, reason))


def rollback(root: Path, env_name: str) -> Deployment:
    """The previous stable version, its alias and all traffic back at once, rollout or not."""
    return _change(root, environment(root, env_name), decisions.rollback)


def status(root: Path, env_name: str | None = None) -> list[Rollout]:
    """Every configured environment (or ``env_name``) with its record and last analysis."""
    from conveyor.registry import queries
    from conveyor.tracking.db import exists, opened

    envs = [environment(root, env_name)] if env_name else list(environments(root).values())
    if not envs or not exists(root):
        return [Rollout(env, None) for env in envs]
    out = []
    with opened(root, write=False) as store:
        for env in envs:
            record = queries.deployment(store.execute, env.name)
            last = queries.last_deployment_event(store.execute, env.name, "rollout.analysis")
            out.append(Rollout(env, record, last.data if last is not None else None))
    return out


def history(root: Path, env_name: str, *, after: int = 0) -> list[Event]:
    """The environment's rollout events, oldest first; only those with an id above ``after``
    when given (what ``rollout watch`` has not shown yet)."""
    from conveyor.registry import queries
    from conveyor.tracking.db import exists, opened

    env = environment(root, env_name)
    if not exists(root):
        return []
    with opened(root, write=False) as store:
        rows = queries.deployment_events(store.execute, env.name)
    return [e for e in rows if e.id > after]


def webhook_sender(env: Environment) -> Sender | None:
    """A sender for the environment's webhooks (None without any, or when they cannot be set
    up). A secret is read from the environment variable the config names; a hook whose secret
    is not set is not sent unsigned: it is left out, with a warning in the log, and the
    rollout goes on (a rollback must not wait for a webhook's configuration)."""
    if not env.webhooks:
        return None
    from conveyor.monitor.webhooks import Sender, resolve

    hooks = []
    for hook in env.webhooks:
        try:
            hooks.append(resolve(hook))
        except ConveyorError as exc:
            log.warning("environment %s: webhook %s left out: %s", env.name, hook.url, exc)
    return Sender(hooks) if hooks else None


def announce(sender: Sender | None, record: Deployment, events: Iterable[decisions.Event]) -> None:
    """Send each rollout event to the webhooks that asked for it (never blocks, never raises)."""
    if sender is None:
        return
    for event in events:
        if event.kind.startswith("rollout."):
            sender.send(event.kind.removeprefix("rollout."), payload(record, event))


def payload(record: Deployment, event: decisions.Event) -> dict[str, Any]:
    """A webhook's ``data``: the environment's record after the event, and the event's own
    data (an analysis's checks, an abort's reason)."""
    return {
        "env": record.env,
        "model": record.model,
        "stable": record.stable,
        "candidate": record.candidate,
        "status": record.status,
        "mode": record.mode,
        "step": record.step,
        "weight": record.weight,
        "message": record.message,
        "event": event.data,
    }


def save(
    store: SqlStore, new: Deployment, events: Sequence[decisions.Event], *, expected: int | None
) -> Deployment:
    """Write ``new`` and its events if the stored revision is still ``expected``."""
    from conveyor.registry import deployments

    return deployments.save(store, new, [(e.kind, e.data) for e in events], expected=expected)


def _change(root: Path, env: Environment, change: Change) -> Deployment:
    from conveyor.tracking.db import opened

    with opened(root) as store:
        return _apply(store, env, change)


def _apply(
    store: SqlStore,
    env: Environment,
    change: Callable[..., tuple[Deployment, list[decisions.Event]]],
    *,
    now: float | None = None,
    allow_missing: bool = False,
) -> Deployment:
    """Read, decide, save with the revision read; decided again when the controller wrote in
    between. Webhooks hear about it once it is stored."""
    from conveyor.registry import queries
    from conveyor.registry.deployments import Conflict

    for _ in range(_ATTEMPTS):
        current = queries.deployment(store.execute, env.name)
        if current is None and not allow_missing:
            raise DeployError(
                f"environment {env.name} has no deployment yet",
                hint=f"deploy a version first: conveyor deploy {env.model}@ALIAS --env {env.name}",
            )
        at = time.time() if now is None else now
        new, events = change(current, at)
        try:
            saved = save(store, new, events, expected=None if current is None else current.revision)
        except Conflict:
            continue
        sender = webhook_sender(env)
        if sender is not None:
            announce(sender, saved, events)
            sender.close(timeout=_HOOK_WAIT)
        return saved
    raise DeployError(
        f"environment {env.name}: its record changed under every one of {_ATTEMPTS} attempts",
        hint="something writes it without pause; `conveyor rollout history` shows what",
    )


def _version(store: SqlStore, env: Environment, uri: str) -> ModelVersion:
    """The registered version ``uri`` names, which must be of the environment's model."""
    from conveyor.registry import queries
    from conveyor.registry.uris import parse_uri

    text = f"{env.model}/{uri}" if uri.isdigit() else uri
    parsed = parse_uri(text)
    if parsed.name != env.model:
        raise DeployError(
            f"{uri} is a version of {parsed.name}; environment {env.name} serves {env.model}",
            hint=f"deploy a version of {env.model} (e.g. {env.model}@staging), or change the "
            f"environment's model in conveyor.yaml",
        )
    return queries.resolve(store.execute, parsed)


def _require_gates_passed(store: SqlStore, version: ModelVersion) -> None:
    """Refuse a version whose run's gates did not pass (``conveyor check`` stores the verdict
    as the run's tags); a version without a recorded verdict was never gated and may go."""
    if not version.run_id:
        return
    try:
        tags = store.run_record(version.run_id).tags
    except ConveyorError:
        return  # its run was pruned: nothing says it failed
    verdict = tags.get("gates.verdict")
    if verdict in (None, "pass"):
        return
    failed = tags.get("gates.failed", "-")
    which = f" ({failed})" if failed not in ("", "-") else ""
    raise DeployError(
        f"{version.name} version {version.version}: its gates did not pass{which}; "
        f"verdict {verdict!r} on run {version.run_id[:12]}",
        hint="fix what failed and run `conveyor check` again, or deploy a version whose gates "
        "passed",
    )
