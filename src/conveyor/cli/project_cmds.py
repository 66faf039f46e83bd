"""Project-wide commands: init, config, remote."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import echo


@click.command("init")
@click.option("--force", is_flag=True, help="Re-create .conveyor/ in an existing project.")
def init_cmd(force: bool) -> None:
    """Make the current folder a conveyor project."""
    from conveyor.data.init import init

    result = init(Path.cwd(), force=force)
    verb = "Re-initialised" if result.reinitialised else "Initialised"
    echo(f"{verb} a conveyor project in {result.root}")
    if not result.in_git:
        echo(
            "note: this folder is not in a git repository; pointers and the lock still work, "
            "but `checkout --rev` and `gc --all-commits` need git (`git init`).",
            fg="yellow",
        )
    else:
        echo("Commit .conveyor/config, .conveyor/.gitignore and conveyor.yaml to git.")


@click.command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove KEY.")
@click.option("--local", is_flag=True, help="Use .conveyor/config.local (not committed).")
@click.option("--list", "list_all", is_flag=True, help="Print every setting.")
def config_cmd(
    key: str | None, value: str | None, unset: bool, local: bool, list_all: bool
) -> None:
    """Read or change a setting: `conveyor config cache.type hardlink,copy`."""
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.config import KEYS

    ws = Workspace.find()
    level = "local" if local else "project"
    if list_all or key is None:
        for dotted, val in sorted(ws.config.items().items()):
            echo(f"{dotted}={val}")
        return
    if unset:
        ws.config.unset(key, level=level)
    elif value is None:
        val = ws.config.get(key)
        if val is None and key in KEYS:
            raise click.ClickException(f"{key} is not set")
        echo(str(val))
    else:
        ws.config.set(key, value, level=level)


@click.group("remote")
def remote_group() -> None:
    """Places objects are pushed to and pulled from."""


@remote_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "default", is_flag=True, help="Make it the default remote.")
@click.option("--force", is_flag=True, help="Replace a remote of the same name.")
@click.option("--local", is_flag=True, help="Keep it in .conveyor/config.local.")
def remote_add(name: str, url: str, default: bool, force: bool, local: bool) -> None:
    """Add a remote: a folder, s3://, gs://, az://, ssh://, http(s):// URL."""
    import os
    import re

    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import ConfigError

    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"remote name {name!r} may only hold letters, digits, - and _")
    ws = Workspace.find()
    if name in ws.config.remotes() and not force:
        raise ConfigError(f"remote {name!r} already exists", hint="pass --force to replace it")
    if "://" not in url and not os.path.isabs(url):
        url = os.path.relpath(os.path.abspath(url), ws.root)  # stays valid in every clone
    level = "local" if local else "project"
    if name in ws.config.remotes():  # --force: start afresh, no stale options
        ws.config.unset(f"remote.{name}", level=ws.config.level_of_remote(name))
    ws.config.set(f"remote.{name}.url", url, level=level)
    if default:
        ws.config.set("core.remote", name, level=level)
    echo(f"remote {name} -> {url}" + (" (default)" if default else ""))


@remote_group.command("list")
def remote_list() -> None:
    """List remotes."""
    from conveyor.data.workspace import Workspace

    ws = Workspace.find()
    default = ws.config.get("core.remote")
    for name, options in sorted(ws.config.remotes().items()):
        mark = " (default)" if name == default else ""
        echo(f"{name}\t{options.get('url')}{mark}")


@remote_group.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Remove a remote (its objects stay where they are)."""
    from conveyor.data.workspace import Workspace

    ws = Workspace.find()
    level = ws.config.level_of_remote(name)
    ws.config.unset(f"remote.{name}", level=level)
    if ws.config.get("core.remote") == name:
        ws.config.unset("core.remote", level=level)


@remote_group.command("default")
@click.argument("name")
def remote_default(name: str) -> None:
    """Make NAME the default remote."""
    from conveyor.data.workspace import Workspace

    ws = Workspace.find()
    ws.config.remote(name)
    ws.config.set("core.remote", name)


COMMANDS = [init_cmd, config_cmd, remote_group]
