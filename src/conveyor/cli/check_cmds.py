"""conveyor check: evaluate the gates of conveyor.yaml on the candidate (the workspace, or a
run), print the verdicts, write reports/gates.{json,md,junit.xml}, store the verdict with the
run, and exit 1 when a blocking gate failed (2 on a config error)."""

from __future__ import annotations

import time
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo, style, table

if TYPE_CHECKING:
    from conveyor.gates.config import Gates
    from conveyor.gates.evaluate import Baseline, Context, Result


@command(
    "check",
    arg("--run", metavar="RUN", help="check this run's metrics and outs (default: the workspace)"),
    arg(
        "--reports",
        default="reports",
        metavar="DIR",
        help="where the reports go (default: reports)",
    ),
    arg("--json", action="store_true", help="print the verdicts as JSON"),
    help="evaluate the quality gates (exit 1 if a blocking gate fails)",
)
def check_cmd(opts: Namespace) -> int:
    """Evaluate the gates declared under `gates:` in conveyor.yaml: thresholds, comparisons with
    a baseline (with significance), slices, data, drift, behaviour, budgets and tests."""
    from conveyor.foundation.paths import find_root
    from conveyor.gates import config

    root = find_root()
    gates = config.load(root)
    if not gates.checks:
        echo("No gates: add a gates: section to conveyor.yaml (see docs/gates.md).")
        return 0
    results, meta = run_checks(root, gates, opts.run)
    return show(root, results, meta, reports=opts.reports, as_json=opts.json)


def run_checks(root: Path, gates: Gates, run: str | None) -> tuple[list[Result], dict[str, Any]]:
    from conveyor.gates.evaluate import evaluate

    ctx, meta = context(root, gates, run)
    return evaluate(gates, ctx), meta


def show(
    root: Path, results: list[Result], meta: dict[str, Any], *, reports: str, as_json: bool
) -> int:
    from conveyor.gates import report

    folder = root / reports
    report.write(folder, results, meta)
    overall = report.verdict(results)
    _store_verdict(root, meta.get("run"), results, overall)
    if as_json:
        print(report.to_json(results, meta), end="")
    else:
        rows = [
            [r.name, report.cell(r.value), report.cell(r.baseline), report.interval(r),
             "" if r.n is None else str(r.n), _verdict(r)]
            for r in results
        ]  # fmt: skip
        table(["gate", "value", "baseline", "interval", "n", "verdict"], rows)
        for r in results:
            if r.verdict != "pass" and r.detail:
                echo(f"  {r.name}: {r.detail}")
            for note in r.notes:
                if note.startswith("no baseline"):
                    echo(f"  {r.name}: {note}")
        _annotate(results)
        shown = folder.relative_to(root) if folder.is_relative_to(root) else folder
        echo(f"Reports: {shown}/gates.md, gates.json, gates.junit.xml")
        word = style("passed", "green", True) if overall == "pass" else style("FAILED", "red", True)
        echo(f"Gates {word}" + ("" if overall == "pass" else ": a blocking gate did not pass"))
    return 0 if overall == "pass" else 1


def _verdict(r: Result) -> str:
    colour = {"pass": "green", "fail": "red", "error": "red", "inconclusive": "yellow"}
    text = r.shown
    return style(text, colour.get(r.verdict) if r.severity == "block" else "yellow")


def _annotate(results: list[Result]) -> None:
    from conveyor.ci.env import annotation, current

    provider = current().provider
    for r in results:
        if r.verdict in ("fail", "inconclusive", "error"):
            message = f"gate {r.name}: {r.shown}: {r.detail}"
            line = annotation(provider, "error" if r.blocks else "warning", message)
            if line:
                print(line)


# -- the context: candidate, baselines, model --------------------------------------------------


def context(root: Path, gates: Gates, run: str | None) -> tuple[Context, dict[str, Any]]:
    from conveyor.gates.evaluate import Context
    from conveyor.gates.tables import read_table

    meta: dict[str, Any] = {"checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if run:
        record = _run_record(root, run)
        metrics, outs = dict(record["metrics"]), dict(record["outs"])
        meta.update(run=record["id"], candidate=f"run {record['id']}")

        def predictions(path: str) -> Any:
            return _object_table(root, outs, path, f"run {record['id']}")

    else:
        from conveyor.pipeline import revisions

        metrics = revisions.workspace(root)["metrics"]
        meta.update(candidate="the workspace", run=_latest_run(root))

        def predictions(path: str) -> Any:
            return read_table(root / path)

    import functools

    folder = _model_folder(root, gates)
    return Context(
        root=root,
        metrics=metrics,
        # Several checks read one predictions file and name one baseline: each is read once.
        predictions=functools.cache(predictions),
        baseline=functools.cache(lambda vs: baseline(root, gates, vs)),
        model=(lambda: _load_model(folder)) if folder else None,
        model_folder=folder,
        run_tests=lambda cmd, junit: _run_tests(root, cmd, junit),
    ), meta


def baseline(root: Path, gates: Gates, vs: str) -> Baseline:
    """What ``vs:`` names: ``alias:NAME``, ``rev:GIT_REV``, ``run:ID``, or without a prefix the
    first that exists of: an alias of the gates' model, a git revision, a run. Nothing: no
    baseline yet."""
    from conveyor.foundation.errors import ConveyorError, GitError
    from conveyor.gates.evaluate import NoBaseline

    kind, _, name = vs.partition(":") if vs.partition(":")[0] in ("alias", "rev", "run") else (
        "", "", vs
    )  # fmt: skip
    if kind in ("", "alias"):
        found = _alias_baseline(root, gates, name, required=kind == "alias")
        if found is not None:
            return found
    if kind in ("", "rev"):
        try:
            return _rev_baseline(root, name)
        except GitError:
            if kind == "rev":
                raise
    if kind in ("", "run"):
        try:
            record = _run_record(root, name)
        except ConveyorError:
            if kind == "run":
                raise
        else:
            return _run_baseline(root, record, f"run {record['id']}")
    model = _model_name(root, gates)
    raise NoBaseline(f"{model} has no alias {name!r}" if model else f"no {name!r}")


def _alias_baseline(root: Path, gates: Gates, alias: str, *, required: bool) -> Baseline | None:
    from conveyor.foundation.errors import ConveyorError
    from conveyor.gates.evaluate import NoBaseline

    model = _model_name(root, gates)
    version = alias_version(root, model, alias)
    if version is None:
        if required:
            raise NoBaseline(f"{model or 'no registered model'} has no alias {alias!r} yet")
        return None
    label = f"{alias} = {model} version {version['version']}"
    lineage = version["lineage"]
    if "metrics" not in lineage:
        raise ConveyorError(
            f"{label} was registered without its run: its metrics are unknown",
            hint="register versions with --run RUN (or `conveyor run --register`)",
        )
    outs = dict(lineage.get("outs") or {})
    return _make_baseline(root, label, dict(lineage["metrics"]), outs)


def alias_version(root: Path, model: str | None, alias: str) -> dict[str, Any] | None:
    """The registered version ``model@alias`` points at, or None (no model, store or alias)."""
    from conveyor.foundation.errors import ConveyorError
    from conveyor.registry.stored import resolve
    from conveyor.tracking.db import exists

    if model is None or not exists(root):
        return None
    try:
        return resolve(root, f"models:/{model}@{alias}").as_dict()
    except ConveyorError:
        return None


def _run_baseline(root: Path, record: dict[str, Any], label: str) -> Baseline:
    return _make_baseline(root, label, dict(record["metrics"]), dict(record["outs"]))


def _make_baseline(
    root: Path, label: str, metrics: dict[str, Any], outs: dict[str, str]
) -> Baseline:
    import functools

    from conveyor.gates.evaluate import Baseline

    return Baseline(
        label, metrics, functools.cache(lambda path: _object_table(root, outs, path, label))
    )


def _rev_baseline(root: Path, rev: str) -> Baseline:
    from conveyor.foundation import git
    from conveyor.pipeline import revisions

    commit = git.resolve(root, rev)
    state = revisions.at(root, rev)
    _deps, outs = lock_at(root, commit, rev)
    return _make_baseline(root, f"{rev} ({commit[:12]})", dict(state["metrics"]), outs)


def lock_at(root: Path, commit: str, rev: str) -> tuple[dict[str, str], dict[str, str]]:
    """The dep and out hashes (path -> hash) of conveyor.lock at a commit; empty without one."""
    from conveyor.foundation import git
    from conveyor.foundation.errors import GitError
    from conveyor.pipeline import lock as lock_mod

    deps: dict[str, str] = {}
    outs: dict[str, str] = {}
    try:
        text = git.run(root, "show", f"{commit}:{_in_repo(root, lock_mod.FILE)}").decode()
    except GitError:
        return deps, outs  # no lock at that revision: metrics only
    for entry in lock_mod.parse(text, f"{lock_mod.FILE} at {rev}").values():
        deps.update({path: meta.hash for path, meta in entry.deps.items()})
        outs.update({path: meta.hash for path, meta in entry.outs.items()})
    return deps, outs


def _in_repo(root: Path, rel: str) -> str:
    import os

    from conveyor.foundation import git

    prefix = os.path.relpath(root, git.toplevel(root))
    return rel if prefix == "." else f"{prefix}/{rel}"


def _object_table(root: Path, outs: dict[str, str], path: str, who: str) -> Any:
    """A predictions table that ``who`` recorded as an out, read from the object cache."""
    from conveyor.foundation.errors import ConveyorError
    from conveyor.gates.tables import read_bytes

    data = out_bytes(root, outs, path)
    if data is None:
        ref = outs.get(path)
        if ref is None:
            raise ConveyorError(
                f"{who} recorded no {path}",
                hint="the stage that writes it must declare it in outs:",
            )
        if ref.endswith(".tree"):
            raise ConveyorError(f"{path} of {who} is a folder; a predictions file is a file")
        raise ConveyorError(
            f"{path} of {who} ({ref[:12]}) is not in the cache",
            hint="fetch it with `conveyor pull` (or push it from where it was made)",
        )
    return read_bytes(data, path)


def out_bytes(root: Path, outs: dict[str, str], path: str) -> bytes | None:
    """The bytes of an out file (or of a file inside an out folder) from the object cache."""
    from conveyor.data import recorded
    from conveyor.data.workspace import Workspace

    with Workspace(root) as ws:
        return recorded.read(ws.odb, outs, path)


def _run_record(root: Path, ref: str) -> dict[str, Any]:
    from conveyor.tracking.db import opened

    with opened(root, write=False) as store:
        return store.run(ref)


def _latest_run(root: Path) -> str | None:
    from conveyor.tracking.db import exists, opened

    if not exists(root):
        return None
    with opened(root, write=False) as store:
        runs = store.runs()
    return str(runs[-1]["id"]) if runs else None  # oldest first


def _model_name(root: Path, gates: Gates) -> str | None:
    from conveyor.registry.stored import declared

    if gates.model:
        return gates.model
    models = declared(root)
    return next(iter(models)) if len(models) == 1 else None


def _model_folder(root: Path, gates: Gates) -> Path | None:
    from conveyor.registry.stored import declared

    name = _model_name(root, gates)
    path = declared(root).get(name or "")
    return root / path if path else None


def _load_model(folder: Path) -> Any:
    from conveyor.registry import package

    return package.load(folder)


def _run_tests(root: Path, command: str, junit: str | None) -> Any:
    import os
    import shlex
    import subprocess
    import tempfile

    from conveyor.foundation.errors import ConveyorError
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
            raise ConveyorError(f"cannot run {command!r}: {exc}") from exc
        file = report if report.is_absolute() else root / report
        if not file.exists():
            raise ConveyorError(
                f"{command!r} wrote no JUnit report (exit {proc.returncode})",
                hint="run pytest, or name the runner's report with junit: PATH",
            )
        return junit_counts(file.read_text(), proc.returncode)


def _store_verdict(root: Path, run: str | None, results: list[Result], overall: str) -> None:
    """Tags on the run checked (or the latest): gates.verdict and the gates that blocked."""
    from conveyor.tracking.db import exists, opened

    if not run or not exists(root):
        return
    failed = ",".join(r.name for r in results if r.blocks)
    tags = {"gates.verdict": overall, "gates.failed": failed or "-"}
    with opened(root) as store:
        record = {"t": "tags", "run": run, "tags": tags, "ts": time.time()}
        store.apply(f"gates-{run}-{time.time_ns()}", [record])
