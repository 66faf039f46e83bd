"""Project-wide commands: init, config, remote."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import echo


@command(
    "init",
    arg("--force", action="store_true", help="re-create .conveyor/ in an existing project"),
    help="make the current folder a conveyor project",
)
def init_cmd(opts: Namespace) -> None:
    """Make the current folder a conveyor project: .conveyor/, .gitignore entries, conveyor.yaml."""
    from conveyor.data.init import init

    result = init(Path.cwd(), force=opts.force)
    _compile_pipeline(result.root)
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


def _compile_pipeline(root: Path) -> None:
    """Compile conveyor.yaml now, so that the first ``status`` reads its compiled form like the
    others do; a broken conveyor.yaml is the business of the command that needs it."""
    import contextlib

    from conveyor.foundation.errors import ConveyorError
    from conveyor.pipeline import definition

    with contextlib.suppress(ConveyorError):
        definition.load(root)


@command(
    "config",
    arg("key", nargs="?"),
    arg("value", nargs="?"),
    arg("--unset", action="store_true", help="remove KEY"),
    arg("--local", action="store_true", help="use .conveyor/config.local (not committed)"),
    arg("--list", dest="list_all", action="store_true", help="print every setting"),
    help="read or change a setting",
)
def config_cmd(opts: Namespace) -> None:
    """Read or change a setting: `conveyor config cache.type hardlink,copy`. Secrets (a URL's
    password, *secret*, *password*, *token* keys, a remote's credentials) go in with --local
    only, and are printed masked."""
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import ConfigError
    from conveyor.foundation.redact import shown

    ws = Workspace.find()
    level = "local" if opts.local else "project"
    for key in ws.config.committed_secrets():
        echo(
            f"warning: {ws.config.files['project']} holds a secret in {key}, and is committed: "
            f"move it with `conveyor config --unset {key}` and `conveyor config --local {key} ...`"
            " (if it was committed, git's history keeps it: change it too)",
            fg="yellow",
            err=True,
        )
    if opts.list_all or opts.key is None:
        for dotted, val in sorted(ws.config.items().items()):
            echo(f"{dotted}={shown(dotted, val)}")
        return
    if opts.unset:
        ws.config.unset(opts.key, level=level)
    elif opts.value is None:
        val = ws.config.get(opts.key)
        if val is None:
            raise ConfigError(f"{opts.key} is not set")
        if isinstance(val, dict):  # a whole remote: one option a line, like --list
            for option, v in sorted(val.items()):
                echo(f"{option}={shown(f'{opts.key}.{option}', v)}")
        else:
            echo(shown(opts.key, val))
    else:
        ws.config.set(opts.key, opts.value, level=level)


group("remote", help="places objects are pushed to and pulled from")


@command(
    "remote add",
    arg("name"),
    arg("url"),
    arg("-d", "--default", action="store_true", help="make it the default remote"),
    arg("--force", action="store_true", help="replace a remote of the same name"),
    arg("--local", action="store_true", help="keep it in .conveyor/config.local"),
    help="add a remote: a folder, s3://, gs://, az://, ssh://, http(s):// URL",
)
def remote_add(opts: Namespace) -> None:
    """Add a remote: a folder, s3://, gs://, az://, ssh://, http(s):// URL."""
    import os
    import re

    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import ConfigError
    from conveyor.foundation.redact import mask_urls

    name, url = opts.name, opts.url
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"remote name {name!r} may only hold letters, digits, - and _")
    ws = Workspace.find()
    if name in ws.config.remotes() and not opts.force:
        raise ConfigError(f"remote {name!r} already exists", hint="pass --force to replace it")
    if "://" not in url and not os.path.isabs(url):
        url = os.path.relpath(os.path.abspath(url), ws.root)  # stays valid in every clone
    level = "local" if opts.local else "project"
    ws.config.check_committable(f"remote.{name}.url", url, level=level)  # before --force removes
    if name in ws.config.remotes():  # --force: start afresh, no stale options
        ws.config.unset(f"remote.{name}", level=ws.config.level_of_remote(name))
    ws.config.set(f"remote.{name}.url", url, level=level)
    if opts.default:
        ws.config.set("core.remote", name, level=level)
    echo(f"remote {name} -> {mask_urls(url)}" + (" (default)" if opts.default else ""))


@command("remote list", help="list remotes")
def remote_list(opts: Namespace) -> None:
    """List remotes; the default one is marked."""
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.redact import mask_urls

    ws = Workspace.find()
    default = ws.config.get("core.remote")
    for name, options in sorted(ws.config.remotes().items()):
        mark = " (default)" if name == default else ""
        echo(f"{name}\t{mask_urls(str(options.get('url')))}{mark}")


@command("remote remove", arg("name"), help="remove a remote (its objects stay)")
def remote_remove(opts: Namespace) -> None:
    """Remove a remote from the config; the objects on it stay where they are."""
    from conveyor.data.workspace import Workspace

    ws = Workspace.find()
    level = ws.config.level_of_remote(opts.name)
    ws.config.unset(f"remote.{opts.name}", level=level)
    if ws.config.get("core.remote") == opts.name:
        ws.config.unset("core.remote", level=level)


@command("remote default", arg("name"), help="make NAME the default remote")
def remote_default(opts: Namespace) -> None:
    """Make NAME the remote that push, pull and gc --remote use by default."""
    from conveyor.data.workspace import Workspace

    ws = Workspace.find()
    ws.config.remote(opts.name)
    ws.config.set("core.remote", opts.name)
