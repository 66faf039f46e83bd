"""``conveyor``: the entry point. Maps errors to exit codes; no traceback for user mistakes.

Command modules register themselves with :mod:`conveyor.cli.app` when imported; each keeps its
heavy imports inside its functions, so ``conveyor --help`` loads nothing of weight.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from conveyor import __version__
from conveyor.cli import app
from conveyor.cli.output import SETTINGS, echo, style
from conveyor.foundation.errors import ConveyorError

_COMMAND_MODULES = (
    "conveyor.cli.project_cmds",
    "conveyor.cli.data_cmds",
    "conveyor.cli.object_cmds",
    "conveyor.cli.remote_cmds",
    "conveyor.cli.maintenance_cmds",
    "conveyor.cli.pipeline_cmds",
    "conveyor.cli.export_cmds",
    "conveyor.cli.runs_cmds",
    "conveyor.cli.diff_cmds",
    "conveyor.cli.exp_cmds",
    "conveyor.cli.tune_cmds",
    "conveyor.cli.plots_cmds",
    "conveyor.cli.models_cmds",
    "conveyor.cli.serve_cmds",
    "conveyor.cli.package_cmds",
    "conveyor.cli.deploy_cmds",
    "conveyor.cli.k8s_cmds",
    "conveyor.cli.feedback_cmds",
    "conveyor.cli.monitor_cmds",
    "conveyor.cli.monitor_export_cmds",  # adds export to the monitor group
    "conveyor.cli.check_cmds",
    "conveyor.cli.report_cmds",
    "conveyor.cli.schema_cmds",
    "conveyor.cli.ci_cmds",
    "conveyor.cli.retrain_cmds",
)


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit code (tests call this in-process)."""
    for name in _COMMAND_MODULES:
        importlib.import_module(name)
    args = _join_dash_values(sys.argv[1:] if argv is None else argv)
    parser = app.build_parser("conveyor", __version__, args)
    try:
        opts = parser.parse_args(args)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else 0
    SETTINGS.quiet = opts.quiet
    SETTINGS.debug = opts.debug or bool(os.environ.get("CONVEYOR_DEBUG"))
    try:
        if opts.directory:
            try:
                os.chdir(opts.directory)
            except OSError as exc:
                raise app.UsageError(f"-C {opts.directory}: {exc.strerror}") from None
        _guard_local_state()
        code = opts.handler(opts)
    except app.UsageError as exc:
        from conveyor.foundation.redact import mask_urls  # on the error path only

        echo(f"conveyor: error: {mask_urls(str(exc))}", err=True)
        return 2
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        return 130
    except ConveyorError as exc:
        from conveyor.foundation.redact import mask_urls

        if SETTINGS.debug:
            _print_traceback()
        # A URL in a message (a remote's, the store's) never shows its password.
        echo(style("error: ", "red", True, stream=sys.stderr) + mask_urls(exc.message), err=True)
        if exc.hint:
            echo(f"  hint: {mask_urls(exc.hint)}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:  # a serving install running a training command
        from conveyor.foundation.extras import missing

        # Feedback from a file is read by pandas (conveyor[tables]); anything else missing is
        # the training stack's (the monitor needs neither: its report's plots are training's).
        extra = "tables" if opts.command == "feedback" else None
        said = missing(exc, purpose=_named(opts), extra=extra)
        if said is None:
            return _crashed()
        if SETTINGS.debug:
            _print_traceback()
        echo(style("error: ", "red", True, stream=sys.stderr) + said.message, err=True)
        echo(f"  hint: {said.hint}", err=True)
        return said.exit_code
    except Exception:  # a bug in conveyor, not a user mistake: show everything
        return _crashed()
    return code if isinstance(code, int) else 0


def _crashed() -> int:
    _print_traceback()
    echo("error: conveyor failed unexpectedly; please report this with the above", err=True)
    return 70


# Options whose value may start with "-" (a descending sort key): argparse would take
# `--sort -metrics.auc` for two options, so the pair is joined as `--sort=-metrics.auc`.
_DASH_VALUES = ("--sort",)


def _join_dash_values(args: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in _DASH_VALUES and i + 1 < len(args) and args[i + 1].startswith("-"):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def _named(opts: argparse.Namespace) -> str:
    """``conveyor tune show``: the command line's command, as an error names it."""
    words = [w for w in (opts.command, getattr(opts, "subcommand", None)) if w]
    return f"`conveyor {' '.join(words)}`"


def _guard_local_state() -> None:
    """Give a project made by an older conveyor the .gitignore lines it lacks (models/,
    predictions/...) before this command can put anything in those folders."""
    from conveyor.foundation import gitignore
    from conveyor.foundation.paths import CONTROL_DIR, find_root

    try:
        root = find_root()
    except ConveyorError:
        return  # not in a project (yet): `conveyor init` writes the whole file
    added = gitignore.ensure(root / CONTROL_DIR)
    if added:
        echo(
            f"note: added {', '.join(added)} to {CONTROL_DIR}/.gitignore (local state that "
            "must not be committed); commit that file",
            fg="yellow",
            err=True,
        )


def _print_traceback() -> None:
    import traceback  # only on the error path: it costs start-up time

    traceback.print_exc()


def run() -> None:
    sys.exit(main())
