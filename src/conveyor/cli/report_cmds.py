"""conveyor report: one Markdown file (and an HTML page) for a pull request: the gates'
verdicts, params and metrics against the base, the data and code that changed, and plots."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo

if TYPE_CHECKING:
    from conveyor.ci.report import Side
    from conveyor.gates.config import Gates


@command(
    "report",
    arg("--base", metavar="REV_OR_ALIAS", help="compare with: a git revision, an alias or a run"),
    arg("--out", default="reports", metavar="DIR", help="where report.md goes (default: reports)"),
    arg("--no-gates", action="store_true", help="leave the gates out (faster)"),
    help="write a pull-request report: changes, metrics, gates, plots",
)
def report_cmd(opts: Namespace) -> int:
    """The workspace against a base: by default the pull request's target branch in CI, else
    the gates model's `production` alias when it is set, else HEAD."""
    from conveyor.foundation.paths import find_root
    from conveyor.gates import config

    root = find_root()
    gates = config.load(root)
    path, _verdict = write_report(
        root, gates, base=opts.base, out=opts.out, with_gates=not opts.no_gates
    )
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    echo(f"wrote {shown} and {shown.with_suffix('.html').name} (plots next to them)")
    return 0  # the gates' verdict is `conveyor check`'s (and `conveyor ci`'s) exit code


def write_report(
    root: Path,
    gates: Gates,
    *,
    base: str | None,
    out: str,
    with_gates: bool = True,
    checked: tuple[list[Any], dict[str, Any]] | None = None,
) -> tuple[Path, str]:
    """Write report.md and report.html; ``checked``: gate results already evaluated."""
    from conveyor.ci import report
    from conveyor.cli.runs_cmds import delta_cells
    from conveyor.tracking.compare import compare

    folder = root / out
    base_ref = base or default_base(root, gates)
    old = side(root, gates, base_ref)
    new = workspace_side(root)
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
        from conveyor.cli.check_cmds import run_checks
        from conveyor.gates import report as gates_report

        if checked is None:
            checked = run_checks(root, gates, None)
            gates_report.write(folder, *checked)
        results, meta = checked
        gates_md, verdict = gates_report.to_markdown(results, meta), gates_report.verdict(results)
    images = _plots(root, gates, old, new, folder)
    text = report.markdown(
        old, new, rows=rows, deps=report.changed_deps(old, new), code=_code(root, old.commit),
        gates_md=gates_md, images=images,
    )  # fmt: skip
    report.write(folder, "report", text, f"conveyor report: {new.label} vs {old.label}")
    return folder / "report.md", verdict


def default_base(root: Path, gates: Gates) -> str:
    from conveyor.ci.env import current
    from conveyor.foundation import git
    from conveyor.foundation.errors import GitError

    target = current().base_branch
    if target:
        for ref in (f"origin/{target}", target):
            try:
                git.resolve(root, ref)
                return ref
            except GitError:
                continue
    if _alias_version(root, gates, "production") is not None:
        return "production"
    return "HEAD"


def workspace_side(root: Path) -> Side:
    from conveyor.ci.report import Side
    from conveyor.pipeline import lock as lock_mod
    from conveyor.pipeline import revisions

    state = revisions.workspace(root)
    deps = {p: m.hash for e in lock_mod.load(root).values() for p, m in e.deps.items()}

    from conveyor.foundation.paths import read_inside

    real = root.resolve()
    return Side(
        "workspace", state["params"], state["metrics"], deps, None, lambda p: read_inside(real, p)
    )


def side(root: Path, gates: Gates, ref: str) -> Side:
    """An alias of the gates' model, else a git revision, else a run."""
    from conveyor.ci.report import Side
    from conveyor.foundation import git
    from conveyor.foundation.errors import ConveyorError, GitError

    version = _alias_version(root, gates, ref)
    if version is not None:
        lineage = version["lineage"]
        label = f"{ref} (v{version['version']})"
        return Side(label, dict(lineage.get("params") or {}), dict(lineage.get("metrics") or {}),
                    dict(lineage.get("deps") or {}), lineage.get("git_commit"),
                    _reader(root, dict(lineage.get("outs") or {})))  # fmt: skip
    try:
        commit = git.resolve(root, ref)
    except GitError:
        commit = None
    if commit is not None:
        from conveyor.cli.check_cmds import lock_at
        from conveyor.pipeline import revisions

        state = revisions.at(root, ref)
        deps, outs = lock_at(root, commit, ref)
        return Side(ref, state["params"], state["metrics"], deps, commit, _reader(root, outs))
    from conveyor.tracking.db import opened

    try:
        with opened(root, write=False) as store:
            run = store.run(ref)
    except ConveyorError:
        raise ConveyorError(
            f"--base {ref}: no alias, git revision or run has that name",
            hint="give a branch or commit, an alias of the gates' model, or a run id",
        ) from None
    return Side(f"run {run['id']}", run["params"], run["metrics"], run["deps"],
                run.get("git.commit"), _reader(root, run["outs"]))  # fmt: skip


def _alias_version(root: Path, gates: Gates, alias: str) -> dict[str, Any] | None:
    from conveyor.cli.check_cmds import _model_name, alias_version

    return alias_version(root, _model_name(root, gates), alias)


def _reader(root: Path, outs: dict[str, str]) -> Any:
    from conveyor.cli.check_cmds import out_bytes

    return lambda path: out_bytes(root, outs, path)


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

    from conveyor.ci import report
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
