"""The exported Airflow DAG, in Airflow itself: its DagBag imports the file with no errors, and
``dag.test()`` runs the two-stage pipeline (CONVEYOR_EXECUTION=local: the tasks' commands on
this machine; a cluster runs the same commands in pods of the project's image)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.pipeline.orchestrators import clean_env, conveyor_on_path, tool_venv
from tests.pipeline.test_runshare import PIPELINE

# Run by Airflow's Python: import the folder as the scheduler would, then test-run the DAG.
PROBE = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2
bag = DagBag(dag_folder=sys.argv[1])
said = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}
if not said["errors"] and said["dags"]:
    dag = bag.get_dag(said["dags"][0])
    said["tasks"] = sorted(t.task_id for t in dag.tasks)
    said["upstream"] = sorted(dag.get_task("train").upstream_task_ids)
    said["state"] = str(getattr(dag.test(), "state", None))
print("PROBE " + json.dumps(said))
"""


@pytest.mark.slow
def test_airflow_imports_the_dag_and_runs_it(project: Project, tmp_path: Path) -> None:
    python = tool_venv("airflow")
    store = tmp_path / "store"
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "p: 3\n")
    project.ok("remote", "add", "-d", "store", str(store))
    project.ok("export", "airflow", "--out", "dags")
    dags = project.root / "dags"
    env = clean_env(
        PATH=conveyor_on_path(tmp_path / "bin"),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        CONVEYOR_EXECUTION="local",
    )
    airflow = [str(python), "-m", "airflow"]
    migrated = subprocess.run(
        [*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    probe = subprocess.run(
        [str(python), "-c", PROBE, str(dags)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in probe.stdout.splitlines() if x.startswith("PROBE ")]
    assert lines, probe.stdout[-3000:] + probe.stderr[-3000:]
    said = json.loads(lines[-1].removeprefix("PROBE "))
    assert said["errors"] == {}
    assert said["dags"] == [project.root.name]
    assert said["tasks"] == ["prep", "train"]
    assert said["upstream"] == ["prep"]
    assert said["state"] == "success", probe.stdout[-5000:]
    assert (project.root / "ran.log").read_text() == "prep\ntrain\n"  # each stage ran once
    assert (project.root / "model.txt").read_text() == "a\n3\n"
    assert len(list((store / "runs").glob("??/*"))) == 2  # both tasks shared their runs
    assert "No stale stages." in project.ok("status")


# The default execution: each task a pod of the image (the DAG is only parsed here).
PODS = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
said = {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
if not said["errors"]:
    task = bag.dags[sorted(bag.dags)[0]].get_task("train")  # parsed: no database needed
    said.update(
        kind=type(task).__name__,
        image=task.image,
        cmds=task.cmds,
        arguments=task.arguments,
        secret=[e.secret_ref.name for e in task.env_from],
    )
print("PROBE " + json.dumps(said))
"""


@pytest.mark.slow
def test_by_default_each_task_is_a_pod_of_the_image(project: Project, tmp_path: Path) -> None:
    python = tool_venv("airflow")
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "p: 3\n")
    project.ok("remote", "add", "-d", "store", "s3://bucket/store")
    project.ok(
        "export", "airflow", "--out", "dags", "--image", "reg/proj:3", "--secret", "remote-creds"
    )
    env = clean_env(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    probe = subprocess.run(
        [str(python), "-c", PODS, str(project.root / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in probe.stdout.splitlines() if x.startswith("PROBE ")]
    assert lines, probe.stdout[-3000:] + probe.stderr[-3000:]
    assert json.loads(lines[-1].removeprefix("PROBE ")) == {
        "errors": {},
        "kind": "KubernetesPodOperator",
        "image": "reg/proj:3",
        "cmds": ["sh", "-c"],
        "arguments": [
            "cd /project && conveyor pull --run-cache && "
            "conveyor run --single --restore-upstream train && conveyor push --run-cache"
        ],
        "secret": ["remote-creds"],
    }
