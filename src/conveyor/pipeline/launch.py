"""Running the pipeline with param overrides: the one entry point behind ``conveyor run``,
``conveyor exp run``, a queued experiment's own process (``python -m conveyor.pipeline``) and
the CI job. The caller holds the project (:func:`conveyor.data.workspace.writing`) and says
how stage output and events are shown (a :class:`~conveyor.pipeline.runner.Reporter`).

    >>> with writing("my job") as ws:  # doctest: +SKIP
    ...     pipeline = load(ws, ["train.lr=0.1"])
    ...     launched = run(ws, pipeline, Options(), reporter, overrides=["train.lr=0.1"])
    >>> launched.failed  # doctest: +SKIP
    0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.foundation.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.planner import Options
    from conveyor.pipeline.runner import Reporter, StageResult


@dataclass(frozen=True)
class Launched:
    """What one run did: each stage's result, and the id of the tracked run."""

    results: list[StageResult]
    run_id: str

    def counts(self) -> dict[str, int]:
        """Stages per status (``ran``, ``restored``, ``failed``...), in the order first seen."""
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def failed(self) -> int:
        return self.counts().get("failed", 0)


def load(ws: Workspace, overrides: Sequence[str] = ()) -> Pipeline:
    """conveyor.yaml's pipeline with ``-S KEY=VALUE`` overrides applied to its params."""
    from conveyor.pipeline import definition
    from conveyor.pipeline.params import parse_override

    return definition.load(ws.root, [parse_override(o) for o in overrides])


def run(
    ws: Workspace,
    pipeline: Pipeline,
    options: Options,
    reporter: Reporter,
    *,
    overrides: Sequence[str] = (),
    name: str = "",
) -> Launched:
    """Run what is stale (or what ``options`` ask for), recorded as one tracked run; the
    overrides are in the params files while the stages run, and taken out after."""
    from conveyor.pipeline.params import applied, parse_override
    from conveyor.pipeline.runner import Run

    job = Run(ws, pipeline, options, reporter, name=name)
    with applied(ws.root, [parse_override(o) for o in overrides]):
        results = job.execute()
    return Launched(results, job.run_id)


def publish(root: Path) -> ConveyorError | None:
    """With a shared (server) store, hand the run over now, so the team sees it without anyone
    here reading first; an embedded store is fed by its next reader instead. The error, when
    the store does not answer: the run waits in the spool, and the caller says so."""
    from conveyor.tracking.db import opened, url_for

    if url_for(root).startswith("sqlite"):
        return None
    try:
        with opened(root):
            pass
    except ConveyorError as exc:
        return exc
    return None
