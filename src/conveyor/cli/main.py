"""``conveyor``: the entry point. Maps errors to exit codes; no traceback for user mistakes.

Command modules are imported here, but each keeps its heavy imports inside its functions, so
``conveyor --help`` loads click and nothing else of weight.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from conveyor import __version__
from conveyor.foundation.errors import ConveyorError

# Each module exposes COMMANDS: a list of click commands or groups.
_COMMAND_MODULES = (
    "conveyor.cli.project_cmds",
    "conveyor.cli.data_cmds",
    "conveyor.cli.object_cmds",
    "conveyor.cli.remote_cmds",
    "conveyor.cli.maintenance_cmds",
)


class Context:
    def __init__(self, debug: bool, quiet: bool) -> None:
        self.debug = debug
        self.quiet = quiet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conveyor")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, exists=True),
    help="Run as if started in DIRECTORY.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool, directory: str | None) -> None:
    """conveyor: versioned data, pipelines, tracking, gates, registry and delivery for ML."""
    if directory:
        os.chdir(directory)
    ctx.obj = Context(debug=debug or bool(os.environ.get("CONVEYOR_DEBUG")), quiet=quiet)


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("CONVEYOR_DEBUG")
    )
    try:
        code = cli.main(args=argv, prog_name="conveyor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except ConveyorError as exc:
        if debug:
            _print_traceback()
        click.echo(click.style("error: ", fg="red", bold=True) + exc.message, err=True)
        if exc.hint:
            click.echo(f"  hint: {exc.hint}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception:  # a bug in conveyor, not a user mistake: show everything
        _print_traceback()
        click.echo(
            "error: conveyor failed unexpectedly; please report this with the above", err=True
        )
        return 70
    return code if isinstance(code, int) else 0  # ctx.exit(n) returns n here


def _print_traceback() -> None:
    import traceback  # only on the error path: it costs start-up time

    traceback.print_exc()


def run() -> None:
    sys.exit(main())
