"""Remote transfers: push and pull."""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command
from conveyor.cli.output import bar
from conveyor.cli.render import show_pulled, show_runs_pushed, transferred

if TYPE_CHECKING:
    from conveyor.data.pointer import Pointer
    from conveyor.data.transfer import TransferResult
    from conveyor.data.workspace import Workspace

_REMOTE = arg("-r", "--remote", metavar="NAME", help="remote to use (default: core.remote)")
_JOBS = arg("-j", "--jobs", type=int, metavar="N", help="parallel transfers (default: core.jobs)")
_PATHS = arg("paths", nargs="*", metavar="PATH")
_RUN_CACHE = arg(
    "--run-cache",
    action="store_true",
    help="also the run-cache's entries (and their outs), so others restore what was run here",
)


@command("push", _PATHS, _REMOTE, _JOBS, _RUN_CACHE, help="upload what the remote lacks")
def push_cmd(opts: Namespace) -> None:
    """Upload the objects tracked paths name (all pointers, or PATHs) that the remote lacks.
    With --run-cache, also the run-cache's entries the remote lacks, each after its outs'
    objects: an entry whose objects are on neither side is skipped and counted."""
    from conveyor.ci.pull import tracked
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import push
    from conveyor.data.workspace import writing
    from conveyor.pipeline.runshare import RunsPushed, push_runs

    runs: RunsPushed | None = None
    with writing("conveyor push") as ws:
        pointers = tracked(ws, opts.paths) + packages(ws, opts.paths)
        jobs = _jobs(opts) or ws.jobs
        remote = open_remote(ws, opts.remote, jobs=jobs)
        result = push(ws, remote, pointers, jobs=jobs, progress=bar())
        if opts.run_cache:
            runs = push_runs(ws, opts.remote, jobs=jobs, progress=bar())
    transferred("pushed", "to", result)
    if runs is not None:
        show_runs_pushed(runs)
    _fail_on_problems(result)
    if runs is not None and (error := runs.error()) is not None:
        raise error


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
    _RUN_CACHE,
    help="download what the cache lacks, then check it out",
)
def pull_cmd(opts: Namespace) -> None:
    """Download the objects tracked paths name (all pointers, or PATHs), then check them out.
    With no PATHs, also fetch the packages of the model versions an alias points at (every
    registered version with --all-models) and their runs' predictions files the gates compare.
    A version that is nowhere to be found is a warning naming who registered it: the rest of
    the pull goes on. With --run-cache, also the run-cache's entries (checked, each stored
    once its outs' objects are in the cache), so `conveyor run` restores what others ran."""
    from conveyor.ci.pull import pull
    from conveyor.data.workspace import writing

    with writing("conveyor pull") as ws:
        pulled = pull(ws, remote=opts.remote, paths=opts.paths, jobs=_jobs(opts),
                      force=opts.force, every_model=opts.all_models,
                      run_cache=opts.run_cache, progress=bar())  # fmt: skip
    show_pulled(pulled)
    error = pulled.error()
    if error is not None:
        raise error


def packages(ws: Workspace, paths: list[str]) -> list[Pointer]:
    """What this clone holds of the registered versions (with no PATHs): it travels too."""
    from conveyor.ci.pull import compared
    from conveyor.registry.stored import held

    return [] if paths else held(ws, compared=compared(ws))


def _jobs(opts: Namespace) -> int | None:
    from conveyor.cli.app import UsageError

    if opts.jobs is not None and opts.jobs < 1:
        raise UsageError(f"-j {opts.jobs}: give 1 or more parallel transfers")
    return opts.jobs  # type: ignore[no-any-return]


def _fail_on_problems(result: TransferResult) -> None:
    error = result.error()
    if error is not None:
        raise error
