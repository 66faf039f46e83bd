"""A small command framework on argparse: commands declare their arguments with a decorator.

argparse rather than a richer framework because every command pays for the CLI's imports at
start-up, and ``conveyor status`` on a large workspace must stay near a tenth of a second.

    @command("add", arg("paths", nargs="+"), help="Track files or folders.")
    def add_cmd(opts: Namespace) -> None: ...

Groups (``conveyor remote add``) are commands named ``"remote add"`` with a :func:`group`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple, cast

Handler = Callable[[argparse.Namespace], int | None]


class Arg(NamedTuple):
    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """One argument, as ``argparse.ArgumentParser.add_argument`` takes it."""
    return Arg(flags, options)


class Command(NamedTuple):
    name: str
    handler: Handler
    args: tuple[Arg, ...]
    help: str
    description: str
    hidden: bool = False


class Group:
    def __init__(self, name: str, help: str, hidden: bool = False) -> None:
        self.name = name
        self.help = help
        self.hidden = hidden
        self.commands: dict[str, Command] = {}
        self.default: Command | None = None  # what the group does with no subcommand


COMMANDS: dict[str, Command | Group] = {}


def group(name: str, *, help: str, hidden: bool = False) -> None:
    COMMANDS.setdefault(name, Group(name, help, hidden))


def command(name: str, *args: Arg, help: str, hidden: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler as ``conveyor NAME`` (``"group sub"`` for a group's command)."""

    def register(handler: Handler) -> Handler:
        description = (handler.__doc__ or help).strip()
        cmd = Command(name.split()[-1], handler, args, help, description, hidden)
        if " " in name:
            parent = COMMANDS[name.split()[0]]
            assert isinstance(parent, Group), f"{name}: register its group first"
            parent.commands[cmd.name] = cmd
        elif isinstance(COMMANDS.get(name), Group):  # `conveyor ci` as well as `conveyor ci init`
            cast(Group, COMMANDS[name]).default = cmd
        else:
            COMMANDS[name] = cmd
        return handler

    return register


class UsageError(Exception):
    """A command line that parses but makes no sense (exit code 2, like argparse's own)."""


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal's width: left to find it, argparse imports
    shutil (and with it bz2 and lzma) for every argument a parser is given."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2)


def _columns() -> int:
    import os

    try:
        columns = int(os.environ["COLUMNS"])
        if columns > 0:
            return columns
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(2).columns or 80
    except OSError:
        return 80


def build_parser(prog: str, version: str, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the named command's sub-parser is built (building all
    of them costs every command ~20 ms of start-up)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=_Formatter,
        description="conveyor: versioned data, pipelines, tracking, gates, registry and "
        "delivery for machine learning.",
    )
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command_in(argv) if argv is not None else None
    for name in sorted(COMMANDS) if wanted is None else [wanted]:
        entry = COMMANDS[name]
        if isinstance(entry, Group):
            _add_group(subs, entry)
        else:
            _add_command(subs, entry)
    return parser


def _add_command(subs: Any, cmd: Command) -> None:
    extra = {} if cmd.hidden else {"help": cmd.help}
    sub = subs.add_parser(
        cmd.name, description=cmd.description, formatter_class=_Formatter, **extra
    )
    for a in cmd.args:
        sub.add_argument(*a.flags, **a.options)
    sub.set_defaults(handler=cmd.handler)


def _add_group(subs: Any, grp: Group) -> None:
    extra = {} if grp.hidden else {"help": grp.help}
    default = grp.default
    description = default.description if default else grp.help
    parser = subs.add_parser(grp.name, description=description, formatter_class=_Formatter, **extra)
    if default is not None:
        for a in default.args:
            parser.add_argument(*a.flags, **a.options)
        parser.set_defaults(handler=default.handler)
    inner = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=default is None)
    for name in sorted(grp.commands):
        _add_command(inner, grp.commands[name])


def _command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names, if it names a known one (global options skipped)."""
    args = iter(argv)
    for token in args:
        if token == "-C":
            next(args, None)
        elif not token.startswith("-"):
            return token if token in COMMANDS else None
    return None
