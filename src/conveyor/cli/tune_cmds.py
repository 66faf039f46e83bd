"""``conveyor tune``: an Optuna search whose trials are pipeline runs; ``tune show``."""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import UsageError, arg, command
from conveyor.cli.output import cell, echo, style, table

if TYPE_CHECKING:
    from conveyor.tune.study import Result


@command(
    "tune",
    arg("action", nargs="?", choices=["show"], help="show: the trials, the best, the plots"),
    arg("--trials", type=int, metavar="N", help="trials to run now (default: tune.trials)"),
    arg("-j", "--jobs", type=int, metavar="N", help="trials at once (default: tune.jobs)"),
    arg("--resume", action="store_true", help="continue the study instead of starting it"),
    arg(
        "--executor",
        default="",
        metavar="KIND",
        help="where trials run: local, ray, or ray://HOST:PORT (default: conveyor.yaml's "
        "executor:, else local)",
    ),
    arg("--apply", action="store_true", help="with show: write the best params to their files"),
    arg("--out", metavar="DIR", help="with show: where plots go (default: reports/tune-STUDY)"),
    help="search the params space with Optuna; each trial is a tracked run",
)
def tune_cmd(opts: Namespace) -> int:
    """Run the `tune:` section's search, or `tune show` its results."""
    from conveyor.foundation.paths import find_root
    from conveyor.tune import study as study_mod

    root = find_root()
    spec = study_mod.load_spec(root)
    with study_mod.storage(root) as store:
        if opts.action == "show":
            return _show(root, spec, study_mod.state_of(store, spec), opts)
        return _search(root, spec, store, opts)


def _search(root: Any, spec: Any, store: Any, opts: Namespace) -> int:
    from conveyor.tune import study as study_mod

    trials = opts.trials or spec.trials
    jobs = opts.jobs or spec.jobs
    if trials < 1 or jobs < 1:
        raise UsageError("--trials and --jobs must be 1 or more")
    from conveyor.pipeline.executors import resolve

    executor = resolve(root, getattr(opts, "executor", ""))
    study = study_mod.open_study(store, spec, resume=opts.resume)
    goal = f"{spec.direction} {spec.metric}"
    where = " on Ray" if executor.type == "ray" else ""
    echo(
        f"study {spec.study}: {trials} trial(s), {jobs} at a time{where}, to {goal} "
        f"({spec.sampler})"
    )
    best: list[float] = []

    def report(result: Result) -> None:
        params = ", ".join(f"{k}={cell(v)}" for k, v in result.params.items())
        if result.state == "pruned":
            echo(style("✂", "yellow") + f" trial {result.number} ({params}) pruned {result.note}")
            return
        if result.state != "complete" or result.value is None:
            echo(style("✗", "red") + f" trial {result.number} ({params}) failed: {result.note}")
            return
        better = not best or (
            result.value > best[0] if spec.direction == "maximize" else result.value < best[0]
        )
        if better:
            best[:] = [result.value]
        mark = style("  best so far", "green") if better else ""
        echo(f"✓ trial {result.number} ({params}): {spec.metric} = {cell(result.value)}{mark}")
        sys.stdout.flush()

    if executor.type == "ray":
        from conveyor.tune import ray_search

        results = ray_search.run(
            root, spec, study, executor, trials=trials, jobs=jobs, on_result=report
        )
    else:
        results = study_mod.run(root, spec, study, trials=trials, jobs=jobs, on_result=report)
    done = [r for r in results if r.state == "complete"]
    echo(f"{len(done)} of {len(results)} trial(s) complete. See them with `conveyor tune show`.")
    return 0 if done else 1


def _show(root: Any, spec: Any, study: Any, opts: Namespace) -> int:
    from pathlib import Path

    from conveyor.tune import report as report_mod

    summary = report_mod.summarise(study)
    names = [d.name for d in spec.space]
    rows = [
        [
            str(t["number"]),
            t["state"],
            cell(t["value"]),
            *(cell(t["params"].get(n)) for n in names),
            t["run"] or "-",
        ]
        for t in summary["trials"]
    ]
    table(["trial", "state", spec.metric, *names, "run"], rows)
    best = summary["best"]
    if best is None:
        echo("No complete trial yet.")
        return 1
    echo(style(f"best: trial {best['number']}, {spec.metric} = {cell(best['value'])}", bold=True))
    for name, value in best["params"].items():
        print(f"  {name} = {cell(value)}")
    if summary["importances"]:
        echo(style("param importances", bold=True))
        for name, share in summary["importances"].items():
            print(f"  {name:<24} {share:6.1%}")
    out = Path(opts.out) if opts.out else root / "reports" / f"tune-{spec.study}"
    files = report_mod.write_plots(study, spec, out, summary)
    echo(
        "plots: "
        + ", ".join(str(f.relative_to(root) if f.is_relative_to(root) else f) for f in files)
    )
    if opts.apply:
        from conveyor.pipeline.experiments import write_params

        for name, old, new in write_params(root, best["params"]):
            echo(f"{name}: {old} -> {new}")
        echo("Run `conveyor run` to bring the outs in line with the applied params.")
    return 0
