"""Pulling a project whole: the tracked data and the cached pipeline outs, then the packages of
the registered model versions (the aliased ones, or every one) and the predictions files the
gates compare with them. What the CI job (and ``conveyor pull``) start from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.data.pointer import Pointer
    from conveyor.data.transfer import TransferResult
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import DataError
    from conveyor.foundation.progress import Progress
    from conveyor.pipeline.runshare import RunsPulled
    from conveyor.registry.stored import Registered


@dataclass(frozen=True)
class Pulled:
    result: TransferResult  # its error() says what could not be fetched
    unavailable: list[Registered] = field(default_factory=list)  # versions found nowhere
    runs: RunsPulled | None = None  # the run-cache's entries, when they were asked for

    def error(self) -> DataError | None:
        """What could not be fetched (the data first, then the run-cache), or None."""
        error = self.result.error()
        if error is None and self.runs is not None:
            error = self.runs.error()
        return error


def pull(
    ws: Workspace,
    *,
    remote: str | None = None,
    paths: list[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    every_model: bool = False,
    run_cache: bool = False,
    progress: Progress | None = None,
) -> Pulled:
    """Download what the cache lacks from ``remote`` (default: core.remote) and check it out.
    With no ``paths``, the registered versions' packages are fetched too (not checked out: a
    server or a load does that when it needs one). With ``run_cache``, the run-cache's entries
    and their outs too (:func:`conveyor.pipeline.runshare.pull_runs`)."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import pull as pull_objects
    from conveyor.registry import stored

    jobs = jobs or ws.jobs
    source = open_remote(ws, remote, jobs=jobs)
    result = pull_objects(ws, source, tracked(ws, paths or []), jobs=jobs, force=force,
                          progress=progress)  # fmt: skip
    versions = [] if paths else stored.registered(ws, every=every_model, compared=compared(ws))
    unavailable: list[Registered] = []
    if versions:
        fetched, unavailable = stored.fetch_packages(
            ws, source, versions, jobs=jobs, progress=progress
        )
        result.transferred += fetched.transferred
        result.size += fetched.size
        result.already += fetched.already
        result.corrupt.update(fetched.corrupt)
    runs = None
    if run_cache:
        from conveyor.pipeline.runshare import pull_runs

        runs = pull_runs(ws, remote, jobs=jobs, progress=progress)
    return Pulled(result, unavailable, runs)


def tracked(ws: Workspace, paths: list[str]) -> list[Pointer]:
    """What push and pull move: the pointers (all, or PATHs), and with no PATHs the cached
    outs that conveyor.lock records."""
    from conveyor.pipeline.tracked import out_pointers

    if paths:
        return ws.pointers(paths)
    return [*ws.pointers(), *out_pointers(ws)]


def compared(ws: Workspace) -> tuple[str, ...]:
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
