"""Exporting the pipeline for an orchestrator: one task per stage, the remote as the exchange.

The pure plan is tested with plain values; the tasks' own commands are run for real in two
clones, as two pods would run them, sharing nothing but a folder remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import definition
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.export import Task, identifier, plan, task_ids
from conveyor.pipeline.stage import Out, Stage
from tests.conftest import Project
from tests.pipeline.orchestrators import clean_env, conveyor_on_path
from tests.pipeline.test_runshare import PIPELINE


def pipeline_of(*stages: Stage, upstream: dict[str, tuple[str, ...]] | None = None) -> Pipeline:
    return Pipeline(
        {s.name: s for s in stages},
        upstream or {s.name: () for s in stages},
        [s.name for s in stages],
        {},
        (),
    )


def test_each_stage_is_a_task_that_pulls_runs_alone_and_pushes() -> None:
    prep = Stage("prep", ("python prep.py",), outs=(Out("data"),))
    train = Stage("train@lr-0.1", ("python train.py",), deps=("data",), outs=(Out("m"),))
    got = plan(
        pipeline_of(prep, train, upstream={"prep": (), "train@lr-0.1": ("prep",)}),
        name="my-project",
        image="reg/proj:1",
        project="/src/proj",
        remote="store",
    )
    assert got.name == "my_project"
    assert [(t.stage, t.task_id, t.upstream) for t in got.tasks] == [
        ("prep", "prep", ()),
        ("train@lr-0.1", "train_lr_0_1", ("prep",)),
    ]
    assert got.tasks[1].command == (
        "conveyor pull --run-cache -r store && "
        "conveyor run --single --restore-upstream train@lr-0.1 && "
        "conveyor push --run-cache -r store"
    )
    assert " -r " not in plan(pipeline_of(prep), name="p", image="i", project="/p").tasks[0].command


def test_task_ids_are_distinct_identifiers() -> None:
    assert task_ids(["a-b", "a_b", "a.b", "1st"]) == {
        "a-b": "a_b",
        "a_b": "a_b_2",
        "a.b": "a_b_3",
        "1st": "s_1st",
    }
    assert identifier("héllo wörld") == "h_llo_w_rld"
    assert identifier("---") == "pipeline"


@pytest.mark.parametrize(
    ("upstream", "why"),
    [
        (Stage("u", ("x",), outs=(Out("o"),), always_changed=True, line=3), "always_changed"),
        (Stage("u", ("x",), outs=(Out("o", persist=True),), line=3), "a persist: true out"),
    ],
)
def test_a_stage_the_run_cache_never_restores_cannot_feed_another_task(
    upstream: Stage, why: str
) -> None:
    down = Stage("d", ("y",), deps=("o",), outs=(Out("p"),))
    stages = pipeline_of(upstream, down, upstream={"u": (), "d": ("u",)})
    with pytest.raises(ConfigError, match=f"conveyor.yaml:3: stage 'u' has {why}"):
        plan(stages, name="p", image="i", project="/p")
    alone = pipeline_of(upstream)  # nothing needs it: it may run in its task
    assert plan(alone, name="p", image="i", project="/p").tasks[0].stage == "u"


def test_no_stages_nothing_to_export() -> None:
    with pytest.raises(ConfigError, match="no stages to export"):
        plan(pipeline_of(), name="p", image="i", project="/p")


# -- the tasks' commands, as two pods run them -------------------------------------------------


def clone_of(tmp_path: Path, name: str, store: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    root = tmp_path / name
    root.mkdir()
    clone = Project(root, capsys)
    clone.git("init", "-q", "-b", "main")
    clone.ok("init")
    clone.write("conveyor.yaml", PIPELINE)
    clone.write("params.yaml", "p: 1\n")
    clone.ok("remote", "add", "-d", "store", str(store))
    return clone


def task(clone: Project, command: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=clone.root,
        env=clean_env(PATH=path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_task_runs_its_stage_once_in_a_clone_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    first, second = (clone_of(tmp_path, n, store, capsys) for n in ("pod-prep", "pod-train"))
    path = conveyor_on_path(tmp_path / "bin")
    tasks = {t.stage: t for t in _planned(first)}

    early = task(second, tasks["train"].command, path)  # prep's task has not run yet
    assert early.returncode == 1
    assert "stage 'prep' is needed but not run here (--restore-upstream)" in early.stdout
    assert not (second.root / "ran.log").exists()

    done = task(first, tasks["prep"].command, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (first.root / "ran.log").read_text() == "prep\n"
    done = task(second, tasks["train"].command, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prep restored from run-cache" in done.stdout
    assert (second.root / "ran.log").read_text() == "train\n"  # prep did not run again here
    assert (second.root / "model.txt").read_text() == "a\n1\n"

    third = clone_of(tmp_path, "laptop", store, capsys)  # a teammate afterwards: nothing runs
    third.ok("pull", "--run-cache")
    out = third.ok("run")
    assert "prep restored" in out and "train restored" in out
    assert not (third.root / "ran.log").exists()


def _planned(clone: Project) -> tuple[Task, ...]:
    pipeline = definition.load(clone.root)
    return plan(pipeline, name="p", image="i", project=str(clone.root)).tasks


# -- the command -------------------------------------------------------------------------------


def test_export_writes_the_file_and_refuses_to_replace_it(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "p: 1\n")
    missing = project.run("export", "airflow")
    assert missing.code == 2 and "no remote given and no default remote set" in missing.err
    project.ok("remote", "add", "-d", "store", "../store")
    out = project.ok("export", "airflow", "--image", "reg/proj:7")
    name = project.root.name
    assert f"wrote export/{name}_dag.py: 2 tasks, exchanging through remote 'store'" in out
    text = (project.root / "export" / f"{name}_dag.py").read_text()
    assert "'reg/proj:7'" in text and "conveyor run --single --restore-upstream train" in text
    compile(text, "dag.py", "exec")
    again = project.run("export", "airflow")
    assert again.code == 2 and "exists; not replaced" in again.err
    project.ok("export", "airflow", "--force")
    kfp = project.ok("export", "kubeflow", "--stdout", "--workdir", "/srv/app")
    assert "WORKDIR = '/srv/app'" in kfp
    compile(kfp, "kfp.py", "exec")
