"""Experiments: run with overrides now or queue them; run the queue in parallel; apply a run."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table
from conveyor.cli.running import RUN_ARGS, defaults, run_pipeline

if TYPE_CHECKING:
    import subprocess

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
    waiting = experiments.queued(root)
    if not waiting:
        echo("The queue is empty.")
        return 0
    running: list[tuple[experiments.Queued, Path, subprocess.Popen[bytes]]] = []
    failed = 0
    env = dict(os.environ)
    while waiting or running:
        while waiting and len(running) < opts.jobs:
            item = waiting.pop(0)
            copy, proc = experiments.start(root, item, env)
            echo(f"▶ experiment {item.id} ({' '.join(item.overrides) or 'no overrides'})")
            running.append((item, copy, proc))
        item, copy, proc = running.pop(0)
        output, _ = proc.communicate()
        code = proc.returncode
        for line in output.decode(errors="replace").rstrip().splitlines():
            print(f"{item.id} | {line}")
        experiments.dequeue(root, item)
        experiments.remove_copy(copy)
        if code == 0:
            echo(style("✓", "green") + f" experiment {item.id} finished")
        else:
            failed += 1
            echo(style("✗", "red") + f" experiment {item.id} failed (exit code {code})")
        sys.stdout.flush()
    echo("Compare them with `conveyor runs list`.")
    return 1 if failed else 0


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
