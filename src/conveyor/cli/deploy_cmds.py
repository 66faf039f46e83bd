"""Progressive delivery: deploy a version, watch and steer its rollout, roll back.

Each command parses, calls one flow of :mod:`conveyor.deploy.flows` and prints. The commands
that change a rollout act on the metadata store directly (the local CLI is the project's owner);
a server started with ``conveyor serve --env ENV`` follows the record within a fraction of a
second.
"""

from __future__ import annotations

import json
import time
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table

if TYPE_CHECKING:
    from conveyor.deploy.flows import Rollout
    from conveyor.registry.deployment import Deployment
    from conveyor.tracking.events import Event

group("rollout", help="watch and steer the rollouts of deploy: environments")

_ENDED = {"promoted": "green", "aborted": "red", "rolled_back": "yellow", "idle": None}


def _root() -> Path:
    from conveyor.foundation.paths import find_root

    return find_root()


@command(
    "deploy",
    arg("uri", metavar="MODEL", help="NAME@ALIAS, models:/NAME/3, or a version number"),
    arg("--env", required=True, metavar="ENV", help="the environment (deploy: in conveyor.yaml)"),
    help="start a rollout of a model version in an environment",
)
def deploy_cmd(opts: Namespace) -> None:
    """Start a rollout of a model version in an environment, as its strategy says (the first
    deploy of an environment goes straight to 100 %). Refused, with the reason, when the
    version's gates failed or it is already the stable version."""
    from conveyor.deploy import flows

    record = flows.deploy(_root(), opts.env, opts.uri)
    if record.status == "promoted" and record.candidate is None:
        echo(f"{record.model} version {record.stable} now serves all of {record.env}")
        return
    echo(
        f"{record.env}: rolling out {record.model} version {record.candidate} over version "
        f"{record.stable} ({record.mode}, {_split(record)})"
    )
    echo(f"Follow it with `conveyor rollout watch {record.env}`.")


@command(
    "rollout status",
    arg("env", nargs="?", metavar="ENV", help="one environment (default: all)"),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="each environment's versions, split, step and last analysis",
)
def status_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    rollouts = flows.status(_root(), opts.env)
    if opts.as_json:
        print(json.dumps([_as_dict(r) for r in rollouts], indent=2, default=str))
        return
    if not rollouts:
        echo("No environments: add a deploy: section to conveyor.yaml.")
        return
    rows = [_status_row(r) for r in rollouts]
    table(["env", "model", "stable", "candidate", "status", "split", "step", "analysis"], rows)
    for r in rollouts:
        if r.record is not None and r.record.message:
            echo(f"  {r.env.name}: {r.record.message}")
        for check in (r.analysis or {}).get("checks", []):
            if r.record is not None and r.record.active:
                echo(f"  {r.env.name}: {_check(check)}")


@command(
    "rollout history",
    arg("env", nargs="?", metavar="ENV", help="the environment (default: the only one)"),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="every decision of an environment's rollouts, with its inputs",
)
def history_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    root = _root()
    events = flows.history(root, _env(root, opts.env))
    if opts.as_json:
        print(json.dumps([_event_dict(e) for e in events], indent=2, default=str))
        return
    if not events:
        echo("No rollout events yet: `conveyor deploy MODEL --env ENV`.")
        return
    rows = [[_when(e.time, seconds=True), _kind(e.kind), _detail(e)] for e in events]
    table(["when", "event", "detail"], rows)


@command(
    "rollout watch",
    arg("env", nargs="?", metavar="ENV", help="the environment (default: the only one)"),
    arg("--interval", type=float, default=1.0, metavar="S", help="refresh every S seconds"),
    arg(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="give up after S seconds (default: an hour); exit 1 if the rollout is still on",
    ),
    help="print a rollout's decisions as they happen, until it ends",
)
def watch_cmd(opts: Namespace) -> int:
    """Print the rollout's events as they happen, until it is promoted, aborted or rolled back
    (exit 0 when it was promoted, 1 otherwise: a script can wait on it)."""
    from conveyor.deploy import flows

    if opts.interval <= 0 or opts.timeout <= 0:
        raise UsageError("--interval and --timeout must be above 0")
    root = _root()
    name = _env(root, opts.env)
    shown = 0
    deadline = time.monotonic() + opts.timeout
    for event in _current(flows.history(root, name)):  # where it stands
        _print_event(event)
        shown = event.id
    while True:
        for event in flows.history(root, name, after=shown):
            _print_event(event)
            shown = event.id
        (rollout,) = flows.status(root, name)
        record = rollout.record
        if record is None or not record.active:
            status = record.status if record is not None else "never deployed"
            colour = _ENDED.get(status)
            echo(f"{name}: {style(status, colour, True) if colour else status}")
            return 0 if record is not None and record.status == "promoted" else 1
        if time.monotonic() >= deadline:
            echo(f"{name}: still {record.status} at {_split(record)} after {opts.timeout:g} s")
            return 1
        time.sleep(min(opts.interval, max(0.0, deadline - time.monotonic())))


@command(
    "rollout promote",
    arg("env", metavar="ENV"),
    arg("--full", action="store_true", help="skip the remaining steps: candidate becomes stable"),
    help="move a rollout to its next step now (or all the way)",
)
def promote_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    _said(flows.promote(_root(), opts.env, full=opts.full))


@command("rollout pause", arg("env", metavar="ENV"), help="hold a rollout at its current split")
def pause_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    _said(flows.pause(_root(), opts.env))


@command("rollout resume", arg("env", metavar="ENV"), help="go on with a paused rollout")
def resume_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    _said(flows.resume(_root(), opts.env))


@command(
    "rollout abort",
    arg("env", metavar="ENV"),
    arg("--reason", default="aborted by hand", help="said in the event and the status"),
    help="all traffic back to stable at once; the candidate stays loaded",
)
def abort_cmd(opts: Namespace) -> None:
    from conveyor.deploy import flows

    _said(flows.abort(_root(), opts.env, opts.reason))


@command(
    "rollback",
    arg("env", metavar="ENV"),
    help="the previous stable version, its alias and all traffic back at once",
)
def rollback_cmd(opts: Namespace) -> None:
    """Put the previous stable version back: its alias, and 100 % of the traffic at once, with
    an event; works whether or not a rollout is running."""
    from conveyor.deploy import flows

    _said(flows.rollback(_root(), opts.env))


def _env(root: Path, name: str | None) -> str:
    """The environment named, or the only one configured."""
    if name:
        return name
    from conveyor.deploy.config import environments

    names = sorted(environments(root))
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("no environments: add a deploy: section to conveyor.yaml")
    raise UsageError(f"name the environment: one of {', '.join(names)}")


def _current(events: list[Event], most: int = 20) -> list[Event]:
    """The events of the latest rollout (from its start), the last ``most`` of them."""
    starts = [i for i, e in enumerate(events) if e.kind == "rollout.started"]
    return events[starts[-1] if starts else 0 :][-most:]


def _said(record: Deployment) -> None:
    stable = f"version {record.stable}" if record.stable is not None else "nothing"
    if record.active:
        echo(
            f"{record.env}: {record.status}, {record.model} version {record.candidate} at "
            f"{_split(record)} over {stable}"
        )
    else:
        echo(f"{record.env}: {record.status}; {record.model} {stable} serves all traffic")


def _split(record: Deployment) -> str:
    if record.active and record.mode == "shadow":
        return "shadow copy"
    if record.active:
        return f"{record.weight:g} % candidate"
    return "100 % stable"


def _status_row(r: Rollout) -> list[str]:
    d = r.record
    if d is None:
        return [r.env.name, r.env.model, "-", "-", "never deployed", "-", "-", "-"]
    verdict = (r.analysis or {}).get("verdict") if d.active else None
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    return [
        d.env,
        d.model,
        _v(d.stable),
        _v(d.candidate),
        style(d.status, _ENDED.get(d.status)) if d.status in _ENDED else d.status,
        _split(d),
        _step(r) if d.active else "-",
        style(str(verdict), colours.get(str(verdict))) if verdict else "-",
    ]


def _step(r: Rollout) -> str:
    """The current step, counted from 1, of how many (a canary's)."""
    assert r.record is not None
    steps = len(r.env.strategy.steps) if r.record.mode == "canary" else 0
    return f"{r.record.step + 1}/{steps}" if steps else str(r.record.step + 1)


def _as_dict(r: Rollout) -> dict[str, Any]:
    from dataclasses import asdict

    record = asdict(r.record) if r.record is not None else None
    return {"env": r.env.name, "model": r.env.model, "record": record, "analysis": r.analysis}


def _check(check: dict[str, Any]) -> str:
    """One check's result as a line: metric, values side by side, threshold, verdict."""
    values = f"stable {_num(check.get('stable'))}, candidate {_num(check.get('candidate'))}"
    samples = check.get("samples") or ("?", "?")
    line = (
        f"{check.get('metric')}: {check.get('verdict')} ({values}; threshold "
        f"{_num(check.get('threshold'))}; n={samples[0]}/{samples[1]})"
    )
    return f"{line} {check['detail']}" if check.get("detail") else line


def _detail(event: Event) -> str:
    """An event's inputs on one line; nested values (the strategy a rollout started with)
    are left to ``--json``."""
    data = event.data
    if event.kind == "rollout.analysis":
        checks = "; ".join(_check(c) for c in data.get("checks", []))
        step = data.get("step")
        where = f"step {step + 1}" if isinstance(step, int) else "step ?"
        return f"{where}: {data.get('verdict', '?')}" + (f" - {checks}" if checks else "")
    if event.kind == "rollout.started" and "strategy" in data:
        return f"version {data.get('version')} over {data.get('stable')}: " + _strategy(
            data["strategy"]
        )
    parts = []
    for key, value in sorted(data.items()):
        if value in (None, "") or isinstance(value, (dict, list)):
            continue
        if key == "step" and isinstance(value, int):
            value = value + 1  # people count steps from 1
        parts.append(f"{key}={_num(value)}")
    return ", ".join(parts)


def _strategy(strategy: dict[str, Any]) -> str:
    kind = strategy.get("kind", "?")
    if kind != "canary":
        return str(kind)
    steps = []
    for step in strategy.get("steps", []):
        if step.get("weight") is not None:
            steps.append(f"{step['weight']:g} %")
        elif step.get("pause") is not None:
            steps.append(f"pause {step['pause']:g} s")
        else:
            steps.append("pause until resumed")
    return f"canary {', '.join(steps)}"


def _print_event(event: Event) -> None:
    echo(f"{_when(event.time, seconds=True)}  {_kind(event.kind):<12} {_detail(event)}")


def _event_dict(event: Event) -> dict[str, Any]:
    return {"id": event.id, "time": event.time, "kind": event.kind, "data": event.data}


def _kind(kind: str) -> str:
    name = kind.removeprefix("rollout.")
    colour = {"aborted": "red", "promoted": "green", "rolled_back": "yellow"}.get(name)
    return style(name, colour) if colour else name


def _when(ts: float, *, seconds: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(ts))


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _v(version: int | None) -> str:
    return "-" if version is None else str(version)
