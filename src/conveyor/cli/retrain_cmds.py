"""`conveyor retrain ENV`: the retrain a monitoring alert starts, by hand and in the foreground.

The flow is :func:`conveyor.ci.retrain.retrain`; this module prints each step as it happens
(the pull, the run and the gates as `conveyor ci` prints them) and the outcome in one line.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo, style
from conveyor.cli.render import JobPrinter

if TYPE_CHECKING:
    pass

_OUTCOMES = {"rollout_started": "green", "unchanged": None, "gates_failed": "red", "failed": "red"}


@command(
    "retrain",
    arg("env", metavar="ENV", help="the environment (deploy: in conveyor.yaml)"),
    arg("--reason", default="by hand", help="why, as the events record it (default: by hand)"),
    help="pull, run, check the gates, register and start the environment's rollout",
)
def retrain_cmd(opts: Namespace) -> int:
    """Retrain the environment's model, as a monitoring alert does: pull the latest data, run
    the pipeline, check the gates, register the model if its package changed, and start the
    environment's rollout of the new version. Every step is recorded: `conveyor rollout history
    ENV` shows them. Exit 0 when a rollout started or nothing changed, 1 when the gates failed,
    the error's code when a step could not be done; 3 while another retrain is in flight."""
    from conveyor.ci.retrain import retrain
    from conveyor.ci.retrainer import exclusive
    from conveyor.foundation.paths import find_root

    root = find_root()
    with exclusive(root, opts.env):
        done = retrain(root, opts.env, reason=opts.reason, watcher=_Printer(root))
    echo(style(f"\n{done.message}", _OUTCOMES[done.outcome], True))
    if done.outcome in ("rollout_started", "unchanged"):
        if done.rollout is not None and done.rollout.active:
            echo(f"Follow it with `conveyor rollout watch {done.env}`.")
        return 0
    if done.error is not None:
        return done.error.exit_code
    return 1


class _Printer(JobPrinter):
    """The retrain's steps as they happen (as `conveyor ci` prints them), each one's result
    when it is recorded."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, all_models=False)

    def step(self, name: str) -> None:
        echo(style(f"\n== {name}", bold=True))

    def recorded(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "retrain.started":
            echo(style(f"conveyor retrain: {data['model']}, {data['reason']}", bold=True))
        elif kind == "retrain.step":
            echo(f"{data['step']}: {data['result']} ({data['seconds']:.1f} s)")
