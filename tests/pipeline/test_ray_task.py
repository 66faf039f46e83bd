"""A stage as a remote task, without Ray: what a task is given, what the worker does with it (in
a folder of its own, with nothing but the remote in common), and how its result maps back."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from conveyor.data.remotes import open_remote, resolve
from conveyor.data.workspace import Workspace
from conveyor.pipeline import ray_task
from conveyor.pipeline.executor import CANNOT_START, Job
from conveyor.pipeline.stage import Meta, Out, Stage
from tests.conftest import Project

pytestmark = pytest.mark.timeout(60)

STAGE = Stage(
    "train",
    ("python train.py",),
    wdir="src",
    deps=("data.txt",),
    outs=(Out("src/model.txt"), Out("src/metrics.json", cache=False, kind="metrics")),
    env=(("SEED", "7"),),
    resources=(("cpus", 2.0), ("gpus", 1.0), ("memory", 4e9)),
)
DATA = Meta("ab" * 32, 6, 1)
CODE = ray_task.Code(Meta("cd" * 32 + ".tree", 100, 3), (("data.cvy", b"hash: ..."),))


class ListSink:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()

    def line(self, stage: str, text: str, err: bool) -> None:
        with self._lock:
            self.lines.append((stage, text, err))


def test_a_task_gets_the_stage_its_inputs_by_hash_and_only_the_runs_variables(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": "/driver/bin",
        "HOME": "/home/driver",
        "SEED": "7",
        "CONVEYOR_STAGE": "train",
        "CONVEYOR_RUN_ID": "r1",
        "CONVEYOR_ROOT": "/driver/project",
        "CONVEYOR_RUN_TAGS": "{}",
        ray_task.WORKDIR_ENV: "/driver/tmp",
    }
    job = Job("train", STAGE.cmd, tmp_path, env, tmp_path / "log", STAGE, (("data.txt", DATA),))
    remote = resolve_spec(tmp_path)
    spec = ray_task.task_spec(job, "r1", CODE, remote)
    assert spec.stage == "train" and spec.commands == ("python train.py",)
    assert spec.wdir == "src"
    assert spec.inputs == (("data.txt", DATA),)
    assert spec.outs == STAGE.outs
    assert spec.code == CODE and spec.remote == remote
    # The driver's PATH, HOME and root mean nothing on a worker: only the stage's own
    # variables and the run's CONVEYOR_* ones travel.
    assert dict(spec.env) == {
        "SEED": "7",
        "CONVEYOR_STAGE": "train",
        "CONVEYOR_RUN_ID": "r1",
        "CONVEYOR_RUN_TAGS": "{}",
    }
    worker = ray_task.stage_env({"PATH": "/worker/bin"}, spec, Path("/w/copy"))
    assert worker["PATH"] == "/worker/bin" and worker["CONVEYOR_ROOT"] == "/w/copy"


def resolve_spec(tmp_path: Path) -> ray_task.RemoteSpec:
    return ray_task.RemoteSpec("store", str(tmp_path / "store"))


def test_resources_become_ray_options() -> None:
    assert ray_task.task_options(STAGE.resources, 2) == {
        "num_cpus": 2.0,
        "num_gpus": 1.0,
        "memory": 4_000_000_000,
        "max_retries": 2,
    }
    assert ray_task.task_options((), 0) == {"num_cpus": 1.0, "max_retries": 0}


def test_a_result_maps_back_to_an_outcome_with_its_outs() -> None:
    good = ray_task.TaskResult("train", 0, 1.5, "", (("src/model.txt", DATA),), "n1")
    assert ray_task.outcome(good, STAGE) == ("train", 0, 1.5, "", {"src/model.txt": DATA})
    bad = ray_task.TaskResult("train", 3, 0.2, "boom", None, "n1")
    assert ray_task.outcome(bad, STAGE).outs is None
    assert ray_task.outcome(bad, STAGE)[:4] == ("train", 3, 0.2, "boom")


def test_a_worker_names_no_path_but_the_stage_declared_and_no_endless_tail() -> None:
    """The driver takes of a worker's report only the declared outs: a path out of the
    project, into .git, or merely undeclared is dropped, never fetched or checked out."""
    outs = (
        ("src/model.txt", DATA),
        ("../outside.txt", DATA),
        (".git/hooks/pre-commit", DATA),
        ("src/other.txt", DATA),
    )
    result = ray_task.TaskResult("train", 0, 1.5, "x" * 10_000_000, outs, "n1")
    taken = ray_task.outcome(result, STAGE)
    assert taken.outs == {"src/model.txt": DATA}
    assert len(taken.tail) == ray_task.TAIL_CHARS and taken.tail.endswith("x")


@pytest.fixture
def driver(project: Project, tmp_path: Path) -> Project:
    project.ok("remote", "add", "-d", "store", str(tmp_path / "store"))
    project.write("data.txt", "hello\n")
    project.write("src/train.py", "print('training')\n")
    return project


def spec_for(ws: Workspace, stage: Stage, inputs: dict[str, Meta], run: str = "r1") -> object:
    remote = open_remote(ws)
    known: set[str] = set()
    code = ray_task.snapshot(ws)
    ray_task.ship(ws, remote, {"": code.tree, **inputs}, known)
    env = {"CONVEYOR_STAGE": stage.name, "CONVEYOR_RUN_ID": run}
    job = Job(stage.name, stage.cmd, ws.root, env, ws.root / "log", stage, tuple(inputs.items()))
    return ray_task.task_spec(job, run, code, resolve(ws.config, ws.root))


def test_a_worker_runs_the_stage_in_its_own_copy_and_pushes_its_outs(
    driver: Project, tmp_path: Path
) -> None:
    stage = Stage(
        "shout",
        (
            "test -f ../data.txt.cvy && tr a-z A-Z < ../data.txt > loud.txt && python train.py"
            " && echo $SEED >&2",
        ),
        wdir="src",
        deps=("data.txt", "src/train.py"),
        outs=(Out("src/loud.txt"), Out("src/made", persist=True)),
        env=(("SEED", "7"),),
    )
    driver.write("src/made/old.txt", "from before\n")
    driver.ok("add", "data.txt")  # tracked data: its pointer goes with the code, as bytes
    with Workspace(driver.root) as ws:
        from conveyor.pipeline.outs import Observer

        seen = Observer(ws)
        inputs = {"data.txt": seen.meta("data.txt"), "src/train.py": seen.meta("src/train.py")}
        inputs["src/made"] = seen.meta("src/made")  # a persistent out goes along
        spec = spec_for(ws, stage, inputs)  # type: ignore[arg-type]
    nodes = tmp_path / "nodes"
    sink = ListSink()
    result = ray_task.run_task(spec, nodes, "n1", sink)  # type: ignore[arg-type]
    assert result.code == 0, result.tail
    assert ("shout", "training", False) in sink.lines and ("shout", "7", True) in sink.lines
    outs = dict(result.outs or ())
    assert set(outs) == {"src/loud.txt", "src/made"}
    # The copy is gone; the node keeps its cache. The driver gets the outs by hash alone.
    assert list((nodes / "node-n1" / "work").iterdir()) == []
    with Workspace(driver.root) as ws:
        ray_task.fetch_outs(ws, open_remote(ws), outs)
        from conveyor.pipeline.outs import restore

        restore(ws, outs)
    assert (driver.root / "src" / "loud.txt").read_text() == "HELLO\n"
    assert (driver.root / "src" / "made" / "old.txt").read_text() == "from before\n"


def test_a_failing_command_returns_its_code_and_tail_and_no_outs(
    driver: Project, tmp_path: Path
) -> None:
    stage = Stage("bad", ("echo nope >&2; exit 4",), outs=(Out("x.txt"),))
    with Workspace(driver.root) as ws:
        spec = spec_for(ws, stage, {})
    result = ray_task.run_task(spec, tmp_path / "nodes", "n1", ListSink())  # type: ignore[arg-type]
    assert (result.code, result.tail, result.outs) == (4, "nope", None)


def test_a_stage_that_forgets_an_out_fails_with_the_local_message(
    driver: Project, tmp_path: Path
) -> None:
    stage = Stage("lazy", ("true",), outs=(Out("x.txt"),))
    with Workspace(driver.root) as ws:
        spec = spec_for(ws, stage, {})
    result = ray_task.run_task(spec, tmp_path / "nodes", "n1", ListSink())  # type: ignore[arg-type]
    assert result.code == 1
    assert "the command succeeded but did not write x.txt" in result.tail


def test_an_input_the_remote_lacks_is_named_and_nothing_runs(
    driver: Project, tmp_path: Path
) -> None:
    stage = Stage("s", ("touch ran",), deps=("data.txt",))
    with Workspace(driver.root) as ws:
        spec = spec_for(ws, stage, {})
    missing = Meta("ef" * 32, 3, 1)
    spec = spec.__class__(**{**spec.__dict__, "inputs": (("data.txt", missing),)})
    sink = ListSink()
    result = ray_task.run_task(spec, tmp_path / "nodes", "n1", sink)
    assert result.code == CANNOT_START
    assert "not on remote 'store'" in result.tail and "data.txt" in result.tail
    assert sink.lines and sink.lines[0][2] is True


def test_records_the_stage_spooled_come_back_to_the_driver(driver: Project, tmp_path: Path) -> None:
    stage = Stage(
        "log",
        (
            "mkdir -p $CONVEYOR_ROOT/.conveyor/spool && echo '{}' > "
            "$CONVEYOR_ROOT/.conveyor/spool/0001-1-ab.jsonl",
        ),
    )
    with Workspace(driver.root) as ws:
        spec = spec_for(ws, stage, {})
    result = ray_task.run_task(spec, tmp_path / "nodes", "n1", ListSink())  # type: ignore[arg-type]
    assert result.records == (("0001-1-ab.jsonl", b"{}\n"),)
    with Workspace(driver.root) as ws:
        ray_task.keep_records(ws, [*result.records, ("../escape.jsonl", b"x")])
    assert (driver.root / ".conveyor" / "spool" / "0001-1-ab.jsonl").read_bytes() == b"{}\n"
    assert not (driver.root / ".conveyor" / "escape.jsonl").exists()


def test_copies_of_dead_workers_are_removed_by_the_next_task(
    driver: Project, tmp_path: Path
) -> None:
    work = tmp_path / "nodes" / "node-n1" / "work"
    dead = work / f"{2**22 + 12345}-old-abc"  # no such pid
    dead.mkdir(parents=True)
    mine = work / f"{os.getpid()}-live-abc"
    mine.mkdir()
    with Workspace(driver.root) as ws:
        spec = spec_for(ws, Stage("s", ("true",)), {})
    ray_task.run_task(spec, tmp_path / "nodes", "n1", ListSink())  # type: ignore[arg-type]
    assert not dead.exists() and mine.exists()


def test_a_link_out_of_the_project_is_never_sent_to_the_workers(
    driver: Project, tmp_path: Path
) -> None:
    """A hostile clone: a tracked link to a file outside the project (a credentials file)."""
    from conveyor.foundation.errors import PipelineError

    outside = tmp_path / "credentials"
    outside.write_text("secret\n")
    (driver.root / "src" / "creds").symlink_to(outside)
    (driver.root / "src" / "inside").symlink_to(driver.root / "data.txt")  # inside: fine
    with Workspace(driver.root) as ws, pytest.raises(PipelineError, match="links outside"):
        ray_task.snapshot(ws)
    (driver.root / "src" / "creds").unlink()
    with Workspace(driver.root) as ws:
        assert ray_task.snapshot(ws).tree.nfiles >= 3
