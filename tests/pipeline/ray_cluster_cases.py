"""The Ray executor on a real two-node local cluster (``ray.cluster_utils.Cluster``), run in a
pytest of its own by test_ray_executor.py (a Ray driver's threads outlive it in its process).

One cluster for the module (starting one costs seconds): two nodes of one CPU each and an 80 MB
object store, each node with a working folder of its own (``node-ID`` under
$CONVEYOR_RAY_WORKDIR), and nothing shared but the project's remote, a folder. The runs in this
process reuse the module's connection; the ones a test kills run as ``conveyor`` processes that
find the cluster through $RAY_ADDRESS.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray  # a dev dependency: missing, it fails the collection (tests never skip)

import conveyor
from conveyor.pipeline import lock as lock_mod
from conveyor.pipeline.ray_task import WORKDIR_ENV
from tests.conftest import Project, conveyor_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    # Ray's own modules import deprecated things of other packages (pkg_resources, google.rpc).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MB = 1024 * 1024
# Node deaths noticed in about a second instead of Ray's default of 15 (tests kill a node).
FAST_HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
}

FAN_OUT = """\
stages:
  prepare:
    cmd: tr a-z A-Z < data.txt > prepared.txt
    deps: [data.txt]
    outs: [prepared.txt]
  left:
    cmd: sleep 1 && echo "on $CONVEYOR_ROOT" && (cat prepared.txt; echo left) > left.txt
    deps: [prepared.txt]
    outs: [left.txt]
  right:
    cmd: >-
      sleep 1 && echo "on $CONVEYOR_ROOT" && mkdir -p right &&
      (cat prepared.txt; echo right) > right/out.txt
    deps: [prepared.txt]
    outs: [right]
    resources: {cpus: 1, memory: 10MiB}
  join:
    cmd: >-
      cat left.txt right/out.txt > joined.txt && echo '{"lines": 4}' > metrics.json
    deps: [left.txt, right]
    outs: [joined.txt]
    metrics: [metrics.json]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    nodes = tmp_path_factory.mktemp("ray-nodes")
    src = str(Path(conveyor.__file__).parents[1])
    with pytest.MonkeyPatch.context() as env:
        # The raylets and their workers inherit these: this checkout's conveyor, and the folder
        # under which each node keeps its own working copies and cache.
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
        env.setenv(WORKDIR_ENV, str(nodes))
        env.delenv("RAY_ADDRESS", raising=False)
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "object_store_memory": 80 * MB,
                "_system_config": FAST_HEALTH,
            },
        )
        cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        cluster.nodes_base = nodes
        try:
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.fixture
def pipe(project: Project, cluster: Any, tmp_path: Path) -> Project:
    project.ok("remote", "add", "-d", "store", str(tmp_path / "store"))
    project.write("data.txt", "hello\n")
    project.write("conveyor.yaml", FAN_OUT)
    return project


def both_cpus_free() -> None:
    """Both branches of the fan-out can start at once, one on each node (a cancelled run's
    workers may hold their CPU a moment longer; a node's first worker takes a moment)."""
    _wait_for(lambda: ray.available_resources().get("CPU") == 2, 30, "both nodes' CPUs free")


def copies(cluster: Any) -> list[Path]:
    """Working copies that exist now, on every node."""
    return [p for p in cluster.nodes_base.glob("node-*/work/*") if p.is_dir()]


def test_fan_out_runs_on_both_nodes_and_the_driver_writes_the_lock(
    pipe: Project, cluster: Any
) -> None:
    both_cpus_free()
    started = time.monotonic()
    out = pipe.ok("run", "--executor", "ray")
    took = time.monotonic() - started
    assert "4 ran" in out, out
    assert (pipe.root / "joined.txt").read_text() == "HELLO\nleft\nHELLO\nright\n"
    # Each branch ran in a copy of its own, on a node of the cluster: most often one on each
    # node at once (one CPU each), but Ray may queue the second behind the first on a node
    # whose state it has not heard of yet (seen once in CI), so where is Ray's to say.
    copies_used = re.findall(r"(node-[0-9a-f]+/work/[^\s/]+)", out)
    assert len(set(copies_used)) == 2, out
    assert {c.split("/")[0] for c in copies_used} <= {
        p.name for p in cluster.nodes_base.glob("node-*")
    }
    assert took < 1.9 + 8, f"the fan-out took {took:.1f} s"
    # Output came back with the stage's name in front, and into the run's logs.
    assert re.search(r"^left +\| on ", out, re.M), out
    logs = list((pipe.root / ".conveyor" / "logs").glob("*/left.log"))
    assert logs and "on " in logs[0].read_text()
    # The lock is the driver's, as a local run writes it.
    entries = lock_mod.load(pipe.root)
    assert set(entries) == {"prepare", "left", "right", "join"}
    assert entries["right"].outs["right"].nfiles == 1
    assert set(entries["join"].outs) == {"joined.txt", "metrics.json"}
    assert "/joined.txt" in (pipe.root / ".gitignore").read_text().splitlines()
    # Nothing left on the nodes but their caches; a second run has nothing to do.
    assert copies(cluster) == []
    again = pipe.ok("run", "--executor", "ray")
    assert "4 up to date" in again
    assert "No stale stages." in pipe.ok("status")


def test_a_failing_stage_is_reported_as_the_local_executor_does(
    pipe: Project, cluster: Any
) -> None:
    pipe.write(
        "conveyor.yaml",
        FAN_OUT.replace(
            "cmd: tr a-z A-Z < data.txt > prepared.txt",
            "cmd: echo 'bad input' >&2 && exit 3",
        ),
    )
    result = pipe.run("run", "--executor", "ray")
    assert result.code == 1
    assert "prepare failed (exit code 3)" in result.out
    assert "bad input" in result.out  # the end of its stderr, under the failure
    assert "left skipped" in result.out or "left not run" in result.out
    assert "prepare" not in lock_mod.load(pipe.root)
    assert copies(cluster) == []


def _ray_env(cluster: Any) -> dict[str, str]:
    src = str(Path(conveyor.__file__).parents[1])
    return {
        **os.environ,
        "RAY_ADDRESS": cluster.address,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }


def _wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_cancelled_run_kills_the_stage_processes_on_the_workers(
    pipe: Project, cluster: Any, tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM (or Ctrl-C): the run cancels its tasks. SIGKILL (how CI cancels a job): Ray
    stops the dead driver's workers. Either way the supervisor kills the stage."""
    marks = tmp_path / "marks"
    marks.mkdir()
    # The stage and a child of it in the background beat into files outside every copy.
    pipe.write(
        "conveyor.yaml",
        "stages:\n"
        "  forever:\n"
        f"    cmd: (while true; do date +%s%N > {marks}/child; sleep 0.05; done) &"
        f" echo $$ > {marks}/pid; while true; do date +%s%N > {marks}/beat; sleep 0.05; done\n"
        "    outs: [never.txt]\n",
    )
    proc = conveyor_process(
        "run",
        "--executor",
        "ray",
        cwd=pipe.root,
        env=_ray_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: (marks / "beat").exists(), 30, "the stage to start on a worker")
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    expected = 130 if signum == signal.SIGTERM else -signal.SIGKILL
    assert proc.returncode == expected, output.decode()
    pid = int((marks / "pid").read_text())
    _wait_for(lambda: not _alive(pid), 20, f"the stage's shell ({pid}) to be killed")
    for beat in ("beat", "child"):
        before = (marks / beat).read_text()
        time.sleep(0.5)
        assert (marks / beat).read_text() == before, f"{beat} still beats after the cancel"
    assert "forever" not in lock_mod.load(pipe.root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet by its dead parent's reaper) no longer runs.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_a_lost_node_runs_the_stage_again_elsewhere_and_the_lock_is_right(
    pipe: Project, cluster: Any
) -> None:
    _head, worker = cluster.list_all_nodes()[:2]
    worker_copies = cluster.nodes_base / f"node-{worker.node_id[:16]}" / "work"
    pipe.write(
        "conveyor.yaml",
        FAN_OUT.replace("sleep 1 &&", "sleep 3 &&"),
    )
    both_cpus_free()
    proc = conveyor_process(
        "run",
        "--executor",
        "ray",
        cwd=pipe.root,
        env=_ray_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Both branches start, one on each node; the worker node dies under its branch.
        _wait_for(
            lambda: worker_copies.is_dir() and any(p.is_dir() for p in worker_copies.iterdir()),
            30,
            "a stage to start on the second node",
        )
        cluster.remove_node(worker, allow_graceful=False)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        cluster.add_node(num_cpus=1, object_store_memory=80 * MB)  # for the tests after this
    text = output.decode()
    assert proc.returncode == 0, text
    assert "running it again on node" in text
    assert "4 ran" in text
    assert (pipe.root / "joined.txt").read_text() == "HELLO\nleft\nHELLO\nright\n"
    entries = lock_mod.load(pipe.root)
    assert set(entries) == {"prepare", "left", "right", "join"}
    assert "No stale stages." in pipe.ok("status")


TUNED = """\
stages:
  score:
    cmd: >-
      echo "{\\"score\\": ${train.x}}" > score.json && echo "x=${train.x}" > model.txt
    deps: [data.txt]
    params: [train.x]
    outs: [model.txt]
    metrics: [score.json]
tune:
  objective: {metric: score.score, direction: minimize}
  space:
    train.x: {type: int, low: 1, high: 9}
  trials: 2
  jobs: 2
  sampler: random
"""


# Optuna's importance evaluator warns when two trials are too few to tell params apart; `tune
# show` passes the warning on (the same with local trials).
@pytest.mark.filterwarnings("ignore:Target and region quantiles:UserWarning")
def test_tuning_trials_run_as_ray_tasks_and_come_back_as_runs(pipe: Project) -> None:
    pipe.write("params.yaml", "train:\n  x: 10\n")  # no trial has it: each runs
    pipe.write("conveyor.yaml", TUNED)
    pipe.ok("add", "data.txt")  # tracked data: a trial's copy checks it out by its pointer
    pipe.ok("run")
    pipe.git("add", "-A")
    pipe.git("commit", "-qm", "base")
    out = pipe.ok("tune", "--executor", "ray")
    assert "on Ray" in out and "2 of 2 trial(s) complete" in out, out
    assert pipe.git("status", "--porcelain") == ""  # trials ran on the workers
    # Each trial's run record came back to this project's store, with its own params.
    runs = json.loads(pipe.ok("runs", "list", "--json", "--filter", "tags.study = proj"))
    assert len(runs) == 2 and {r["kind"] for r in runs} == {"trial"}
    for r in runs:
        assert r["metrics"]["score.score"] == r["params"]["train.x"]
    # So did their run-cache entries and outs: the best trial is restored, not run again.
    pipe.ok("tune", "show", "--apply")
    again = pipe.ok("run")
    assert "score restored from run-cache" in again, again
    best = min(r["params"]["train.x"] for r in runs)
    assert (pipe.root / "model.txt").read_text() == f"x={best}\n"
