"""The exported Kubeflow pipeline, compiled by kfp's own compiler to the YAML KFP runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import Project
from tests.pipeline.orchestrators import clean_env, tool_venv
from tests.pipeline.test_runshare import PIPELINE


@pytest.mark.slow
def test_kfp_compiles_the_pipeline(project: Project, tmp_path: Path) -> None:
    python = tool_venv("kfp")
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "p: 1\n")
    project.ok("remote", "add", "-d", "store", str(tmp_path / "store"))
    project.ok("export", "kubeflow", "--image", "reg/proj:2", "--name", "churn")
    source = project.root / "export" / "churn_kfp.py"
    done = subprocess.run(
        [str(python), str(source)], env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spec = yaml.safe_load(source.with_suffix(".yaml").read_text())
    assert spec["pipelineInfo"]["name"] == "churn"
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["prep", "train"]
    assert tasks["train"]["dependentTasks"] == ["prep"]
    assert "dependentTasks" not in tasks["prep"]
    assert tasks["train"]["taskInfo"]["name"] == "train"
    executor = spec["deploymentSpec"]["executors"][
        tasks["train"]["componentRef"]["name"].replace("comp-", "exec-")
    ]["container"]
    assert executor["image"] == "reg/proj:2"
    assert executor["command"] == ["sh", "-c"]
    assert executor["args"] == [
        "cd /project && conveyor pull --run-cache && "
        "conveyor run --single --restore-upstream train && conveyor push --run-cache"
    ]
