"""Remote transfers: push and pull."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from conveyor.cli.data_cmds import bar, writing
from conveyor.cli.output import echo, human_size

if TYPE_CHECKING:
    from conveyor.data.transfer import TransferResult

_remote_option = click.option(
    "-r", "--remote", "remote_name", metavar="NAME", help="Remote to use (default: core.remote)."
)
_jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Parallel transfers (default: core.jobs, else twice the CPUs).",
)


@click.command("push")
@click.argument("paths", nargs=-1)
@_remote_option
@_jobs_option
def push_cmd(paths: tuple[str, ...], remote_name: str | None, jobs: int | None) -> None:
    """Upload the objects tracked paths name (all pointers, or PATHs) that the remote lacks."""
    from conveyor.data.remote import open_remote
    from conveyor.data.transfer import push

    with writing("conveyor push") as ws:
        pointers = ws.pointers(list(paths))
        jobs = jobs or ws.jobs
        remote = open_remote(ws, remote_name, jobs=jobs)
        result = push(ws, remote, pointers, jobs=jobs, progress=bar())
    _summary("pushed", "to", result)
    _fail_on_problems(result)


@click.command("pull")
@click.argument("paths", nargs=-1)
@_remote_option
@_jobs_option
@click.option("--force", is_flag=True, help="Discard workspace changes not saved in the cache.")
def pull_cmd(
    paths: tuple[str, ...], remote_name: str | None, jobs: int | None, force: bool
) -> None:
    """Download the objects tracked paths name (all pointers, or PATHs), then check them out."""
    from conveyor.data.remote import open_remote
    from conveyor.data.transfer import pull

    with writing("conveyor pull") as ws:
        pointers = ws.pointers(list(paths))
        jobs = jobs or ws.jobs
        remote = open_remote(ws, remote_name, jobs=jobs)
        result = pull(ws, remote, pointers, jobs=jobs, force=force, progress=bar())
    _summary("pulled", "from", result)
    for r in result.checkout:
        if r.changed:
            echo(f"{r.path}: {r.added} added, {r.modified} modified, {r.deleted} deleted")
    _fail_on_problems(result)


def _summary(verb: str, preposition: str, result: TransferResult) -> None:
    noun = "object" if result.transferred == 1 else "objects"
    echo(
        f"{verb} {result.transferred} {noun} ({human_size(result.size)}) "
        f"{preposition} {result.remote}, {result.already} already there"
    )


def _fail_on_problems(result: TransferResult) -> None:
    error = result.error()
    if error is not None:
        raise error


COMMANDS = [push_cmd, pull_cmd]
