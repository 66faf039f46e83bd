"""Data versioning commands: add, status, checkout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from conveyor.cli.output import Bar, echo, human_size

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace


@contextmanager
def writing(command: str) -> Iterator[Workspace]:
    """Open the workspace, hold the project lock and clear temp files of dead writers."""
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws, ws.lock(command):
        ws.odb.clean_tmp()
        yield ws


def bar() -> Bar:
    ctx = click.get_current_context()
    return Bar(enabled=not ctx.find_root().obj.quiet)


@click.command("add")
@click.argument("paths", nargs=-1, required=True)
def add_cmd(paths: tuple[str, ...]) -> None:
    """Track files or folders: store them in the cache and write PATH.cvy pointers."""
    from conveyor.data.add import add

    with writing("conveyor add") as ws:
        pointers = add(ws, list(paths), progress=bar())
        for ptr in pointers:
            what = f"{ptr.nfiles} files, " if ptr.is_tree else ""
            echo(f"added {ws.display(ptr.data_path)} ({what}{human_size(ptr.size)})")
        ignores = dict.fromkeys(ws.display(p.file.parent / ".gitignore") for p in pointers)
        files = " ".join([*(ws.display(p.file) for p in pointers), *ignores])
        echo(f"To track the changes with git, run:\n\n    git add {files}")


@click.command("status")
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def status_cmd(paths: tuple[str, ...], as_json: bool) -> None:
    """Show how tracked data differs from its pointers and what the cache lacks."""
    from conveyor.data.status import status
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        results = status(ws, list(paths), progress=bar())
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    if not results:
        echo("No tracked data. Track some with `conveyor add PATH`.")
        return
    for r in results:
        colour = {"clean": "green", "modified": "yellow", "missing": "red"}[r.state]
        line = click.style(f"{r.state:<9}", fg=colour) + f" {r.path}"
        if r.not_in_cache:
            line += click.style(f"  ({r.not_in_cache} object(s) not in cache)", fg="red")
        click.echo(line)
        for label, files in (
            ("modified", r.changes.modified),
            ("added", r.changes.added),
            ("deleted", r.changes.deleted),
        ):
            for name in files[:10]:
                click.echo(f"    {label}: {r.path}/{name}" if name != r.path else f"    {label}")
            if len(files) > 10:
                click.echo(f"    ... and {len(files) - 10} more {label}")
    if any(r.state == "missing" and not r.not_in_cache for r in results):
        echo("Run `conveyor checkout` to restore missing data.")
    if any(r.not_in_cache for r in results):
        echo("Run `conveyor pull` to fetch objects the cache lacks.")


@click.command("checkout")
@click.argument("paths", nargs=-1)
@click.option("--rev", help="Check out the data as of this git revision.")
@click.option("--link", help="Link types to try, in order (overrides cache.type).")
@click.option("--force", is_flag=True, help="Discard workspace changes not saved in the cache.")
@click.option("--verify", is_flag=True, help="Re-hash every object checked out.")
def checkout_cmd(
    paths: tuple[str, ...], rev: str | None, link: str | None, force: bool, verify: bool
) -> None:
    """Make tracked paths match their pointers (only differing files are touched)."""
    from conveyor.data.checkout import checkout
    from conveyor.data.revision import pointers_at

    with writing("conveyor checkout") as ws:
        pointers = pointers_at(ws, rev, list(paths)) if rev else ws.pointers(list(paths))
        link_types = [t.strip() for t in link.split(",")] if link else None
        results = checkout(
            ws, pointers, link_types=link_types, force=force, verify=verify, progress=bar()
        )
        if rev:
            for ptr in pointers:
                ptr.write()
    for r in results:
        if r.changed:
            how = ",".join(sorted(r.links))
            echo(
                f"{r.path}: {r.added} added, {r.modified} modified, {r.deleted} deleted"
                + (f" ({how})" if how else "")
            )
        else:
            echo(f"{r.path}: up to date")


COMMANDS = [add_cmd, status_cmd, checkout_cmd]
