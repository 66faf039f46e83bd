"""Remote transfers: push and pull."""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command
from conveyor.cli.output import bar, echo, human_size

if TYPE_CHECKING:
    from conveyor.data.pointer import Pointer
    from conveyor.data.transfer import TransferResult
    from conveyor.data.workspace import Workspace

_REMOTE = arg("-r", "--remote", metavar="NAME", help="remote to use (default: core.remote)")
_JOBS = arg("-j", "--jobs", type=int, metavar="N", help="parallel transfers (default: core.jobs)")
_PATHS = arg("paths", nargs="*", metavar="PATH")


@command("push", _PATHS, _REMOTE, _JOBS, help="upload what the remote lacks")
def push_cmd(opts: Namespace) -> None:
    """Upload the objects tracked paths name (all pointers, or PATHs) that the remote lacks."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import push
    from conveyor.data.workspace import writing

    with writing("conveyor push") as ws:
        pointers = tracked(ws, opts.paths) + packages(ws, opts.paths)
        jobs = _jobs(opts) or ws.jobs
        remote = open_remote(ws, opts.remote, jobs=jobs)
        result = push(ws, remote, pointers, jobs=jobs, progress=bar())
    _summary("pushed", "to", result)
    _fail_on_problems(result)


@command(
    "pull",
    _PATHS,
    _REMOTE,
    _JOBS,
    arg("--force", action="store_true", help="discard workspace changes not saved in the cache"),
    arg(
        "--all-models",
        action="store_true",
        help="fetch every registered model version (default: the aliased ones)",
    ),
    help="download what the cache lacks, then check it out",
)
def pull_cmd(opts: Namespace) -> None:
    """Download the objects tracked paths name (all pointers, or PATHs), then check them out.
    With no PATHs, also fetch the packages of the model versions an alias points at (every
    registered version with --all-models) and their runs' predictions files the gates compare.
    A version that is nowhere to be found is a warning naming who registered it: the rest of
    the pull goes on."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import pull
    from conveyor.data.workspace import writing
    from conveyor.registry import stored

    with writing("conveyor pull") as ws:
        pointers = tracked(ws, opts.paths)
        jobs = _jobs(opts) or ws.jobs
        remote = open_remote(ws, opts.remote, jobs=jobs)
        result = pull(ws, remote, pointers, jobs=jobs, force=opts.force, progress=bar())
        versions = (
            []
            if opts.paths
            else stored.registered(ws, every=opts.all_models, compared=_compared(ws))
        )
        unavailable: list[stored.Registered] = []
        if versions:  # fetched only: a package is checked out when a server or load needs it
            fetched, unavailable = stored.fetch_packages(
                ws, remote, versions, jobs=jobs, progress=bar()
            )
            result.transferred += fetched.transferred
            result.size += fetched.size
            result.already += fetched.already
            result.corrupt.update(fetched.corrupt)
    _summary("pulled", "from", result)
    for r in result.checkout:
        if r.changed:
            echo(f"{r.path}: {r.added} added, {r.modified} modified, {r.deleted} deleted")
    for version in unavailable:
        echo(
            f"warning: {version} is neither in the cache nor on remote {result.remote!r}: "
            f"not pulled; {version.by} should run `conveyor push` in the clone that "
            "registered it",
            fg="yellow",
            err=True,
        )
    _fail_on_problems(result)


def tracked(ws: Workspace, paths: list[str]) -> list[Pointer]:
    """What push and pull move: the pointers (all, or PATHs), and with no PATHs the cached
    outs that conveyor.lock records."""
    from conveyor.pipeline.tracked import out_pointers

    if paths:
        return ws.pointers(paths)
    return [*ws.pointers(), *out_pointers(ws)]


def packages(ws: Workspace, paths: list[str]) -> list[Pointer]:
    """What this clone holds of the registered versions (with no PATHs): it travels too."""
    from conveyor.registry.stored import held

    return [] if paths else held(ws, compared=_compared(ws))


def _compared(ws: Workspace) -> tuple[str, ...]:
    """The predictions files the gates compare with a baseline: an aliased version's copy is
    what `conveyor check` reads from the cache. A broken gates section is `check`'s to report."""
    from conveyor.foundation.errors import ConveyorError
    from conveyor.gates import config

    try:
        gates = config.load(ws.root)
    except ConveyorError:
        return ()
    paths = {gates.predictions, *(c.spec.get("predictions") for c in gates.checks)}
    return tuple(sorted(p for p in paths if isinstance(p, str)))


def _jobs(opts: Namespace) -> int | None:
    from conveyor.cli.app import UsageError

    if opts.jobs is not None and opts.jobs < 1:
        raise UsageError(f"-j {opts.jobs}: give 1 or more parallel transfers")
    return opts.jobs  # type: ignore[no-any-return]


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
