"""The pull-request report, gathered and written: the workspace against a base (params and
metrics that differ, the data and code that changed, the gates' verdicts, plots), as
report.md and report.html in one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.ci import report, sides

if TYPE_CHECKING:
    from conveyor.ci.check import Checked
    from conveyor.ci.report import Side
    from conveyor.gates.config import Gates


@dataclass(frozen=True)
class Written:
    path: Path  # report.md; report.html is next to it
    verdict: str  # the gates' ("pass" without gates)


def write(
    root: Path,
    gates: Gates,
    *,
    base: str | None,
    folder: Path,
    with_gates: bool = True,
    checked: Checked | None = None,
) -> Written:
    """Write report.md and report.html into ``folder``. ``base``: what to compare with (see
    :func:`conveyor.ci.sides.default_base` when None); ``checked``: gate results already
    evaluated, else the gates are evaluated here (and their reports written) when
    ``with_gates``."""
    from conveyor.tracking.compare import compare, delta_cells

    old = sides.side(root, gates, base or sides.default_base(root, gates))
    new = sides.workspace(root)
    rows = [
        delta_cells(r)
        for r in compare(
            [
                {"params": old.params, "metrics": old.metrics},
                {"params": new.params, "metrics": new.metrics},
            ]
        )
        if r["values"][0] != r["values"][1]
    ]
    gates_md, verdict = None, "pass"
    if gates.checks and (with_gates or checked):
        from conveyor.gates import report as gates_report

        if checked is None:
            from conveyor.ci.check import evaluate

            checked = evaluate(root, gates, None)
            gates_report.write(folder, checked.results, checked.meta)
        gates_md = gates_report.to_markdown(checked.results, checked.meta)
        verdict = checked.verdict
    images = _plots(root, gates, old, new, folder)
    text = report.markdown(
        old, new, rows=rows, deps=report.changed_deps(old, new), code=_code(root, old.commit),
        gates_md=gates_md, images=images,
    )  # fmt: skip
    report.write(folder, "report", text, f"conveyor report: {new.label} vs {old.label}")
    return Written(folder / "report.md", verdict)


def _code(root: Path, commit: str | None) -> str:
    """``git diff --stat`` from the base's commit, data pointers and the lock left out."""
    from conveyor.foundation import git
    from conveyor.foundation.errors import GitError

    if not commit:
        return ""
    try:
        out = git.run(root, "diff", "--stat", commit, "--", ".", ":(exclude)*.cvy",
                      ":(exclude)conveyor.lock", ":(exclude)reports")  # fmt: skip
    except GitError:
        return ""
    return out.decode(errors="replace")


def _plots(root: Path, gates: Gates, old: Side, new: Side, folder: Path) -> list[tuple[str, str]]:
    """Every plots file of the pipeline, both sides overlaid, and the confusion matrices."""
    from conveyor.pipeline import definition
    from conveyor.tracking import plots

    out = folder / "report-plots"
    readers = {s.label: s.read for s in (old, new)}
    figures, pictures = plots.spec_figures(definition.load(root).plots, readers)
    images = []
    if figures or pictures:
        written = plots.render(figures, out, "plots", pictures)
        titles = [fig.title for fig in figures] + [f"{p.title} ({p.label})" for p in pictures]
        for title, shown in zip(titles, written, strict=False):
            images.append((title, shown.relative_to(folder).as_posix()))
    if gates.predictions:
        from conveyor.gates.tables import read_bytes

        matrices = {}
        for s in (old, new):
            data = s.read(gates.predictions)
            if data:
                found = report.confusion(read_bytes(data, gates.predictions))
                if found:
                    matrices[s.label] = found
        if matrices:
            png = report.draw_confusions(matrices, out)
            images.append(("confusion matrix", png.relative_to(folder).as_posix()))
    return images
