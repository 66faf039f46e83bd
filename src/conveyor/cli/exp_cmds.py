"""Experiments: run with overrides now or queue them; run the queue in parallel; apply a run."""

from __future__ import annotations

import os
import sys
from argparse import Namespace

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table
from conveyor.cli.running import RUN_ARGS, defaults, run_pipeline

group("exp", help="experiments: runs with param overrides, queued or now")


@command(
    "exp run",
    *RUN_ARGS,
    arg("--queue", action="store_true", help="queue it for `conveyor exp start`"),
    help="run (or queue) the pipeline with param overrides",
)
def exp_run_cmd(opts: Namespace) -> int:
    """Run the pipeline with -S overrides as an experiment; params.yaml is left as it was."""
    from conveyor.foundation.paths import find_root
    from conveyor.pipeline import experiments

    if opts.queue:
        if opts.dry or opts.force or opts.single or opts.downstream:
            raise UsageError("--queue takes stages, -S and --name only")
        item = experiments.enqueue(find_root(), opts.overrides, opts.stages, opts.name)
        echo(f"queued experiment {item.id} ({' '.join(opts.overrides) or 'no overrides'})")
        echo("Run the queue with `conveyor exp start`.")
        return 0
    from conveyor.pipeline.record import KIND_ENV

    os.environ[KIND_ENV] = "experiment"
    try:
        return run_pipeline(opts)
    finally:
        os.environ.pop(KIND_ENV, None)


@command("exp queue", help="list queued experiments")
def exp_queue_cmd(opts: Namespace) -> None:
    from conveyor.foundation.paths import find_root
    from conveyor.pipeline import experiments

    items = experiments.queued(find_root())
    if not items:
        echo("The queue is empty: add with `conveyor exp run --queue -S KEY=VALUE`.")
        return
    table(
        ["id", "name", "overrides"],
        [[i.id, i.name or "-", " ".join(i.overrides) or "-"] for i in items],
    )


@command(
    "exp start",
    arg("-j", "--jobs", type=int, default=1, metavar="N", help="experiments at once (default 1)"),
    help="run the queued experiments, each in its own workspace copy",
)
def exp_start_cmd(opts: Namespace) -> int:
    """Run every queued experiment in an isolated copy of the workspace (sharing the cache);
    each is a tracked run. The workspace itself is not touched."""
    from conveyor.foundation.paths import find_root
    from conveyor.pipeline import experiments

    if opts.jobs < 1:
        raise UsageError("-j must be 1 or more")
    root = find_root()
    if not experiments.queued(root):
        echo("The queue is empty.")
        return 0

    def started(item: experiments.Queued) -> None:
        echo(f"▶ experiment {item.id} ({' '.join(item.overrides) or 'no overrides'})")

    def finished(done: experiments.Finished) -> None:
        for line in done.output.rstrip().splitlines():
            print(f"{done.item.id} | {line}")
        if done.code == 0:
            echo(style("✓", "green") + f" experiment {done.item.id} finished")
        else:
            echo(style("✗", "red") + f" experiment {done.item.id} failed (exit code {done.code})")
        sys.stdout.flush()

    ran = experiments.run_queue(
        root, jobs=opts.jobs, env=dict(os.environ), started=started, finished=finished
    )
    echo("Compare them with `conveyor runs list`.")
    return 1 if any(done.code for done in ran) else 0


@command(
    "exp apply", arg("run", metavar="RUN"), help="bring a run's params and outs to the workspace"
)
def exp_apply_cmd(opts: Namespace) -> int:
    """Write RUN's params into the params files, then bring its outs back (from the run-cache:
    nothing re-runs unless the cache lost them)."""
    from conveyor.foundation.paths import find_root
    from conveyor.pipeline.experiments import write_params
    from conveyor.tracking.db import opened

    root = find_root()
    with opened(root, write=False) as store:
        run = store.run(opts.run)
    changed = write_params(root, run["params"])
    for name, old, new in changed:
        echo(f"{name}: {old} -> {new}")
    if not changed:
        echo("The params already match the run.")
    return run_pipeline(defaults())
