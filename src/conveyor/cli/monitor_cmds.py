"""conveyor monitor: drift, quality and alerts on an environment's live traffic."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table

if TYPE_CHECKING:
    from conveyor.monitor.rules import AlertState
    from conveyor.monitor.watch import Watch
    from conveyor.monitor.windows import Check

group("monitor", help="drift, quality and alerts on an environment's live traffic")

_ENV = arg("env", nargs="?", metavar="ENV", help="the environment (default: the only monitored)")
_JSON = arg("--json", dest="as_json", action="store_true", help="JSON for machines")
_COLOURS = {"ok": "green", "alert": "red", "inconclusive": "yellow"}


@command(
    "monitor status",
    _ENV,
    _JSON,
    help="each check of the latest window: value, threshold, verdict; and the alerts",
)
def status_cmd(opts: Namespace) -> None:
    """Evaluate what the prediction log holds now and show each check's value, threshold and
    verdict on its window, with the alerts' states. While ``conveyor serve --env`` monitors the
    environment, its last evaluation is shown instead (one monitor per environment)."""
    from conveyor.foundation.errors import LockError

    root = _root()
    name = _env(root, opts.env)
    try:
        checks, alerts, note = _evaluate(root, name)
    except LockError:
        from conveyor.monitor.watch import saved

        last = saved(root, name)
        running = f"the monitor running in conveyor serve --env {name}"
        if last is None:  # it has not finished its first look yet
            checks, alerts, note = [], {}, f"{running} has not looked yet"
        else:
            checks, alerts = last.checks, last.alerts
            note = f"as of {_clock(last.at)}, by {running}"
    _show(name, checks, alerts, note, opts.as_json)


@command(
    "monitor run",
    _ENV,
    _JSON,
    help="evaluate now: close due windows, fire and resolve alerts, act; exit 1 if one fires",
)
def run_cmd(opts: Namespace) -> int:
    """Evaluate now, as one tick of ``monitor watch``: read what the log holds, close due
    windows, fire or resolve alerts, notify their receivers and take their actions. Exit 1
    when an alert is firing (a scheduled job can fail on it)."""
    root = _root()
    name = _env(root, opts.env)
    checks, alerts, note = _evaluate(root, name, act=True, err=opts.as_json)
    _show(name, checks, alerts, note, opts.as_json)
    return 1 if any(s.status == "firing" for s in alerts.values()) else 0


@command(
    "monitor watch",
    _ENV,
    arg("--interval", type=float, metavar="SECONDS", help="between looks (default: interval:)"),
    arg("--ticks", type=int, metavar="N", help="stop after N looks (default: never)"),
    help="the monitoring loop in the foreground: alerts and their actions as they happen",
)
def watch_cmd(opts: Namespace) -> None:
    """Run the monitoring loop in the foreground (``conveyor serve --env`` runs it too), printing
    each window closed and each alert fired or resolved, until interrupted."""
    from conveyor.deploy.monitoring import exclusive

    root = _root()
    name = _env(root, opts.env)
    with exclusive(root, name):
        watch = _open(root, name, act=True)
        interval = opts.interval if opts.interval is not None else watch.spec.interval
        if interval <= 0:
            raise UsageError("--interval must be above 0")
        echo(f"monitoring {name} every {interval:g} s (Ctrl-C stops)")
        done = 0
        try:
            while opts.ticks is None or done < opts.ticks:
                _tell(watch.tick())
                done += 1
                if opts.ticks is None or done < opts.ticks:
                    time.sleep(interval)
        except KeyboardInterrupt:
            echo("stopped")
        finally:
            if watch.notifier is not None:
                watch.notifier.close()


# ---------------------------------------------------------------------------------- helpers


def _root() -> Path:
    from conveyor.foundation.paths import find_root

    return find_root()


def _env(root: Path, name: str | None) -> str:
    if name:
        return name
    from conveyor.monitor.config import monitors

    names = sorted(monitors(root))
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("no monitored environment: add a monitor: section to conveyor.yaml")
    raise UsageError(f"name the environment: one of {', '.join(names)}")


def _open(root: Path, name: str, *, act: bool = False) -> Watch:
    from conveyor.deploy.monitoring import open_watch

    actions: dict[str, Any] = {}
    if act:
        from conveyor.ci.retrainer import action

        actions["retrain"] = action(root, name, say=echo)
    return open_watch(root, name, actions=actions, notify=act)


def _evaluate(
    root: Path, name: str, *, act: bool = False, err: bool = False
) -> tuple[list[Check], dict[str, AlertState], str]:
    from conveyor.deploy.monitoring import exclusive

    with exclusive(root, name):
        watch = _open(root, name, act=act)
        try:
            done = watch.tick()
        finally:
            if watch.notifier is not None:
                watch.notifier.close()
        _tell(done, quiet=True, err=err)
        return done.checks, watch.alerts, f"read {done.read} new records"


def _tell(done: Any, *, quiet: bool = False, err: bool = False) -> None:
    """The windows closed (unless ``quiet``) and the alerts that changed, on stdout (stderr
    when stdout carries JSON)."""
    if not quiet:
        for window in done.closed:
            echo(f"window {window.key} closed: {window.rows} rows", err=err)
    for notice in done.notices:
        moved = notice.transition
        colour = "red" if moved.to == "firing" else "green"
        action = f"; {notice.action}" if notice.action else ""
        echo(
            f"alert {notice.rule.name} {style(moved.to, colour, True)}: "
            f"{notice.rule.condition.metric} = {moved.value:.4g} ({notice.rule.condition}){action}",
            err=err,
        )


def _show(
    name: str, checks: list[Check], alerts: dict[str, AlertState], note: str, as_json: bool
) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "env": name,
                    "checks": [c.to_json() for c in checks],
                    "alerts": {k: _alert_dict(s) for k, s in alerts.items()},
                },
                indent=2,
            )
        )
        return
    if not checks:
        echo(f"{name}: no window closed yet ({note})")
    else:
        rows = [
            [
                c.name,
                _value(c.value),
                c.threshold,
                style(c.verdict, _COLOURS.get(c.verdict)),
                c.window,
                c.detail,
            ]
            for c in checks
        ]
        table(["check", "value", "threshold", "verdict", "window", "detail"], rows)
        echo(f"{name}: {note}")
    for alert, state in alerts.items():
        colour = {"firing": "red", "pending": "yellow"}.get(state.status)
        since = (
            f" since {_clock(state.since)}" if state.since and state.status != "inactive" else ""
        )
        echo(f"  alert {alert}: {style(state.status, colour)}{since}")


def _alert_dict(state: AlertState) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(state)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _clock(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%H:%M:%S", time.localtime(ts))


@command(
    "monitor report",
    _ENV,
    arg(
        "--window",
        default="latest",
        metavar="W",
        help="a window's key (3:12), latest (default) or all (every closed window merged)",
    ),
    arg("--out", metavar="FILE", help="the HTML file (default: reports/monitor-ENV.html)"),
    arg("--png", metavar="DIR", help="also every feature's figure in one PNG, in DIR"),
    help="write an HTML report: checks, alerts, features against the reference, quality",
)
def report_cmd(opts: Namespace) -> None:
    """Write one self-contained HTML page (no network needed to open it) of what the monitor
    of the environment knows: the window's checks and the alerts, each feature's distribution
    against the reference's, quality and drift over the watched version's windows, and the
    predictions against the reference's label. Reads what the monitor kept; it does not read
    the log further nor change anything (``monitor run`` does)."""
    from conveyor.deploy.monitoring import open_watch
    from conveyor.foundation.atomic import write_bytes
    from conveyor.monitor import report

    root = _root()
    name = _env(root, opts.env)
    watch = open_watch(root, name, notify=False, url=False)
    data = report.gather(watch, opts.window)
    out = root / (opts.out or f"reports/monitor-{name}.html")
    write_bytes(out, report.render(data).encode(), parents=True)
    echo(f"wrote {_shown(root, out)}")
    if opts.png:
        png = root / opts.png / f"monitor-{name}-features.png"
        write_bytes(png, report.grid_png(data.features), parents=True)
        echo(f"wrote {_shown(root, png)}")


def _shown(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
