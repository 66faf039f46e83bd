#!/usr/bin/env python3
"""Ray executor benchmark: what running a stage as a Ray task costs, and what two nodes give.

Figures, medians over repeats, on a two-node local Ray cluster (``ray.cluster_utils.Cluster``,
each node with a working folder of its own, a folder remote between them and the driver), the
driver connected once (Ray's start-up is not counted; it is printed):

- ``overhead_per_stage_local`` / ``overhead_per_stage_ray``: a chain of 8 stages whose command
  is ``echo`` into its out, run with ``--force``, divided by 8; with the local pool and with
  the Ray executor (target for Ray: <= 0.3 s). Ray's includes pushing the inputs, the task,
  the working copy on the worker, pushing the out and fetching it back.
- ``sleepers_8_ray``: 8 independent ``sleep 1`` stages on the two nodes (target <= 3 s). Each
  node offers 4 logical CPUs (a ``sleep`` needs none of the machine's 2 cores), so 8 slots.
- ``sleepers_8_local_j8``: the same with the local pool, ``-j 8``, for reference.

From the repo root (the lead runs it through ``make bench``)::

    PYTHONPATH=src .venv/bin/python bench/ray_executor.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import BenchError, remove

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SRC = REPO_ROOT / "src"
CHAIN = 8
SLEEPERS = 8
MB = 1024 * 1024
TARGETS = {"overhead_per_stage_ray": 0.3, "sleepers_8_ray": 3.0}


def chain_yaml() -> str:
    lines = ["stages:"]
    for i in range(CHAIN):
        lines += [f"  s{i}:", f"    cmd: echo {i} > out{i}.txt", f"    outs: [out{i}.txt]"]
        if i:
            lines.append(f"    deps: [out{i - 1}.txt]")
    return "\n".join(lines) + "\n"


def sleepers_yaml() -> str:
    lines = ["stages:"]
    for i in range(SLEEPERS):
        lines += [f"  z{i}:", f"    cmd: sleep 1 && echo {i} > z{i}.txt", f"    outs: [z{i}.txt]"]
    return "\n".join(lines) + "\n"


class Quiet:
    """A reporter that shows nothing (the figures are about the executor, not the terminal)."""

    def line(self, stage: str, text: str, err: bool) -> None:
        pass

    def event(self, result: Any) -> None:
        pass


def make_project(root: Path, yaml: str, remote: Path) -> None:
    remove(root)
    root.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@invalid"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=env)
    cli = [sys.executable, "-c", "from conveyor.cli.main import run; run()"]
    common.run_checked([*cli, "init"], root, env)
    common.run_checked([*cli, "remote", "add", "-d", "store", str(remote)], root, env)
    (root / "conveyor.yaml").write_text(yaml)


def timed_run(root: Path, executor: str, jobs: int = 0) -> float:
    from conveyor.data.workspace import writing
    from conveyor.pipeline import launch
    from conveyor.pipeline.planner import Options

    old = os.getcwd()
    os.chdir(root)
    try:
        with writing("bench") as ws:
            pipeline = launch.load(ws)
            options = Options(force=True, jobs=jobs, executor=executor)
            start = time.perf_counter()
            done = launch.run(ws, pipeline, options, Quiet())
            took = time.perf_counter() - start
    finally:
        os.chdir(old)
    if done.failed or done.counts().get("ran") != len(pipeline.stages):
        raise BenchError(f"a run in {root} did not run every stage: {done.counts()}")
    return took


def run(args: argparse.Namespace) -> None:
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError as exc:
        raise BenchError(f"Ray is not installed ({exc}): pip install 'conveyor[ray]'") from exc
    work = Path(args.work).absolute()
    remove(work)
    work.mkdir(parents=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")])
    )
    os.environ["CONVEYOR_RAY_WORKDIR"] = str(work / "nodes")
    os.environ.pop("RAY_ADDRESS", None)
    started = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": args.cpus, "object_store_memory": 80 * MB},
    )
    cluster.add_node(num_cpus=args.cpus, object_store_memory=80 * MB)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - started
    print(f"two-node local Ray cluster up in {startup:.1f} s", flush=True)
    samples: dict[str, list[float]] = {
        "overhead_per_stage_local": [],
        "overhead_per_stage_ray": [],
        "sleepers_8_ray": [],
        "sleepers_8_local_j8": [],
    }
    try:
        chain, sleepers = work / "chain", work / "sleepers"
        make_project(chain, chain_yaml(), work / "store")
        make_project(sleepers, sleepers_yaml(), work / "store")
        timed_run(chain, "ray")  # warm: workers started, code pushed once
        timed_run(sleepers, "ray")
        for rep in range(args.repeat):
            samples["overhead_per_stage_local"].append(timed_run(chain, "local") / CHAIN)
            samples["overhead_per_stage_ray"].append(timed_run(chain, "ray") / CHAIN)
            samples["sleepers_8_ray"].append(timed_run(sleepers, "ray"))
            samples["sleepers_8_local_j8"].append(timed_run(sleepers, "local", jobs=8))
            shown = ", ".join(f"{k} {v[-1]:.3f} s" for k, v in samples.items())
            print(f"  [{rep + 1}] {shown}", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"\nmedians of {args.repeat} repeat(s)")
    print(f"{'figure':<28} {'seconds':>9} {'target':>8}  ")
    for key, value in medians.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else ("ok" if value <= target else "MISSED")
        shown = f"<= {target}" if target is not None else "-"
        print(f"{key:<28} {value:9.3f} {shown:>8}  {verdict}")
    result = {
        "repeat": args.repeat,
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "ray": ray.__version__,
        },
        "cluster": {"nodes": 2, "logical_cpus_per_node": args.cpus, "startup_s": startup},
        "medians": medians,
        "samples": samples,
        "targets": TARGETS,
        "all_targets_pass": all(medians[k] <= t for k, t in TARGETS.items()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs per node")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work" / "ray_executor"))
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "ray_executor.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(common.main(run, parse_args, sys.argv[1:]))
