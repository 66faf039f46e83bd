"""The check flow: evaluate the gates of conveyor.yaml on a candidate (the workspace, or a
tracked run), write the reports, and store the verdict with the run. Nothing is printed: the
CLI, a CI job or a deploy controller decides what to show of the :class:`Checked` returned.

    >>> gates = config.load(root)  # doctest: +SKIP
    >>> checked = check(root, gates, run=None, reports=root / "reports")  # doctest: +SKIP
    >>> checked.verdict  # doctest: +SKIP
    'pass'
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import CiError

if TYPE_CHECKING:
    from conveyor.gates.config import Gates
    from conveyor.gates.evaluate import Context, Result
    from conveyor.gates.report import Counts


@dataclass(frozen=True)
class Checked:
    """The gates' results on one candidate, with what the reports say about it (``meta``:
    when, which candidate, which run)."""

    results: list[Result]
    meta: dict[str, Any]

    @property
    def verdict(self) -> str:
        from conveyor.gates.report import verdict

        return verdict(self.results)

    @property
    def run(self) -> str | None:
        return self.meta.get("run")


def check(root: Path, gates: Gates, *, run: str | None, reports: Path) -> Checked:
    """Evaluate, write ``reports``/gates.{json,md,junit.xml}, and tag the run checked (or the
    latest run, for the workspace) with the verdict."""
    from conveyor.gates import report

    checked = evaluate(root, gates, run)
    report.write(reports, checked.results, checked.meta)
    store_verdict(root, checked)
    return checked


def evaluate(root: Path, gates: Gates, run: str | None) -> Checked:
    """The gates' results on the workspace (``run`` None) or on a run; writes nothing."""
    from conveyor.gates.evaluate import evaluate as evaluate_gates

    ctx, meta = context(root, gates, run)
    return Checked(evaluate_gates(gates, ctx), meta)


def context(root: Path, gates: Gates, run: str | None) -> tuple[Context, dict[str, Any]]:
    """What the gates read: the candidate's metrics and predictions, the baselines, the model
    and the project's tests; and the reports' meta."""
    from conveyor.gates.evaluate import Context
    from conveyor.gates.tables import read_table
    from conveyor.registry import baseline

    meta: dict[str, Any] = {"checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if run:
        record = baseline.run_record(root, run)
        metrics, outs = dict(record["metrics"]), dict(record["outs"])
        who = f"run {record['id']}"
        meta.update(run=record["id"], candidate=who)

        def predictions(path: str) -> Any:
            return baseline.out_table(root, outs, path, who)

    else:
        from conveyor.pipeline import revisions

        metrics = revisions.workspace(root)["metrics"]
        meta.update(candidate="the workspace", run=baseline.latest_run(root))

        def predictions(path: str) -> Any:
            return read_table(root / path)

    model = baseline.model_name(root, gates.model)
    folder = baseline.model_folder(root, gates.model)
    return Context(
        root=root,
        metrics=metrics,
        # Several checks read one predictions file and name one baseline: each is read once.
        predictions=functools.cache(predictions),
        baseline=functools.cache(lambda vs: baseline.resolve(root, vs, model=model)),
        model=(lambda: _load_model(folder)) if folder else None,
        model_folder=folder,
        run_tests=lambda cmd, junit: run_tests(root, cmd, junit),
    ), meta


def _load_model(folder: Path) -> Any:
    from conveyor.registry import package

    return package.load(folder)


def run_tests(root: Path, command: str, junit: str | None) -> Counts:
    """Run the project's test command in ``root``; its JUnit report's counts. pytest is asked
    for a report when the command names none."""
    import os
    import shlex
    import subprocess
    import tempfile

    from conveyor.gates.report import junit_counts

    args = shlex.split(command)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(junit) if junit else Path(tmp) / "junit.xml"
        if not junit and any(Path(a).name.startswith("pytest") or a == "pytest" for a in args[:3]):
            args.append(f"--junitxml={report}")
        try:
            proc = subprocess.run(
                args, cwd=root, capture_output=True, text=True, env=dict(os.environ)
            )
        except OSError as exc:
            raise CiError(f"cannot run {command!r}: {exc}") from exc
        file = report if report.is_absolute() else root / report
        if not file.exists():
            raise CiError(
                f"{command!r} wrote no JUnit report (exit {proc.returncode})",
                hint="run pytest, or name the runner's report with junit: PATH",
            )
        return junit_counts(file.read_text(), proc.returncode)


def store_verdict(root: Path, checked: Checked) -> None:
    """Tags on the run checked (or the latest): gates.verdict and the gates that blocked."""
    from conveyor.tracking.db import exists, opened

    run = checked.run
    if not run or not exists(root):
        return
    failed = ",".join(r.name for r in checked.results if r.blocks)
    tags = {"gates.verdict": checked.verdict, "gates.failed": failed or "-"}
    with opened(root) as store:
        record = {"t": "tags", "run": run, "tags": tags, "ts": time.time()}
        store.apply(f"gates-{run}-{time.time_ns()}", [record])
