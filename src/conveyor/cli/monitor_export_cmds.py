"""conveyor monitor export: the monitor's alerts as Prometheus rules, and a Grafana dashboard.

    conveyor monitor export prometheus ENV --out DIR   DIR/conveyor-rules.yml (+ .test.yml)
    conveyor monitor export grafana ENV --out DIR      DIR/conveyor-dashboard.json

:func:`register` adds ``export`` to the ``monitor`` group (making the group if no other module
has yet); importing this module calls it.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import echo

HELP = "watch what deployed models see in production: drift, quality, alerts"


def register() -> None:
    """``conveyor monitor export``, under the ``monitor`` group."""
    group("monitor", help=HELP)
    command(
        "monitor export",
        arg("kind", choices=("prometheus", "grafana"), help="what to write"),
        arg("env", metavar="ENV", help="the environment (monitor: in conveyor.yaml)"),
        arg("--out", metavar="DIR", default=".", help="the folder to write to (default: here)"),
        help="write Prometheus alerting rules or a Grafana dashboard for an environment",
    )(export_cmd)


def export_cmd(opts: Namespace) -> None:
    """Write the environment's monitor as Prometheus rules (its alerts, recording rules for
    the server's error rate, latency and traffic, and promtool unit tests of every alert) or
    as a Grafana dashboard. Both read the series of a server started with
    `conveyor serve --env ENV`, which exports the monitor's gauges."""
    from conveyor.deploy import config as deploy_config
    from conveyor.foundation.paths import find_root
    from conveyor.monitor import config, export

    root = find_root()
    out = Path(opts.out)
    environments = deploy_config.environments(root)
    model = environments[opts.env].model if opts.env in environments else None
    if opts.kind == "prometheus":
        monitor = config.monitor(root, opts.env)
        made = export.write_prometheus(out, {opts.env: monitor}, {opts.env: model} if model else {})
        echo(f"wrote {len(monitor.alerts)} alerts of {opts.env} to {_shown(made[0])}")
        tests = _shown(made[1])
        echo(f"wrote their unit tests to {tests}: `promtool test rules {tests}`")
        return
    known = config.monitors(root)
    if opts.env not in known and opts.env not in environments:
        config.monitor(root, opts.env)  # the error names the environments there are
    path = export.write_grafana(out, known.get(opts.env), opts.env)
    echo(f"wrote the dashboard of {opts.env} to {_shown(path)}: import it in Grafana")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


register()
