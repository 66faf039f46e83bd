"""The pipeline as an Airflow DAG (Airflow 2.4+ and 3): source text, nothing imported here.

The DAG runs each task as a pod of the project's image (``KubernetesPodOperator``), or, with
``CONVEYOR_EXECUTION=local``, as a ``BashOperator`` on the worker in the project's folder (for
``dag.test()`` and trials). Which one is read when the file is parsed, so one file serves both.
"""

from __future__ import annotations

from conveyor.pipeline.export import Export, describe

_HEADER = '''\
"""conveyor pipeline {name!r} as an Airflow DAG, written by `conveyor export airflow`{version}.

Each task runs one stage: it pulls what the stage needs from the remote, runs the stage alone
(`conveyor run --single --restore-upstream STAGE`: the stages it needs were run by their own
tasks and are restored from the run-cache they pushed, never run again), then pushes its outs
and its run-cache entry. The remote is all the tasks share. Export again after changing the
stages in conveyor.yaml.

CONVEYOR_EXECUTION, in the environment of the scheduler and the workers, picks where tasks run:
  kubernetes  (the default) a pod of IMAGE each, through KubernetesPodOperator
              (pip install apache-airflow-providers-cncf-kubernetes); the project is in
              WORKDIR of the image, and SECRET's keys (the remote's credentials) are the pod's
              environment
  local       the commands on the worker, in CONVEYOR_PROJECT (default: PROJECT below), with
              `conveyor` on the PATH: for `dag.test()` and trials on one machine
CONVEYOR_IMAGE replaces IMAGE.
"""
'''

_BODY = """
from __future__ import annotations

import os
import shlex
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

DAG_ID = {name!r}
IMAGE = os.environ.get("CONVEYOR_IMAGE", {image!r})
WORKDIR = {workdir!r}
SECRET = {secret!r}
PROJECT = os.environ.get("CONVEYOR_PROJECT", {project!r})
EXECUTION = os.environ.get("CONVEYOR_EXECUTION", "kubernetes")

# stage -> (task id, the stages it needs, what the task runs)
TASKS = {{
{tasks}}}


def _task(stage):
    task_id, _, command = TASKS[stage]
    if EXECUTION == "local":
        try:
            from airflow.providers.standard.operators.bash import BashOperator
        except ImportError:  # Airflow 2 without the standard provider
            from airflow.operators.bash import BashOperator
        return BashOperator(task_id=task_id, bash_command=command, cwd=PROJECT)
    if EXECUTION != "kubernetes":
        raise ValueError(f"CONVEYOR_EXECUTION={{EXECUTION!r}}: expected 'kubernetes' or 'local'")
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    secret = k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=SECRET))
    return KubernetesPodOperator(
        task_id=task_id,
        image=IMAGE,
        cmds=["sh", "-c"],
        arguments=[f"cd {{shlex.quote(WORKDIR)}} && {{command}}"],
        env_from=[secret] if SECRET else None,
        get_logs=True,
    )


with DAG(
    dag_id=DAG_ID,
    description={description!r},
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["conveyor"],
) as dag:
    tasks = {{stage: _task(stage) for stage in TASKS}}
    for stage, (_, upstream, _) in TASKS.items():
        for needed in upstream:
            tasks[needed] >> tasks[stage]
"""


def render(export: Export) -> str:
    """The DAG file's text."""
    rows = "".join(
        f"    {t.stage!r}: (\n        {t.task_id!r},\n        {list(t.upstream)!r},\n"
        f"        {t.command!r},\n    ),\n"
        for t in export.tasks
    )
    version = f" (conveyor {export.version})" if export.version else ""
    return _HEADER.format(name=export.name, version=version) + _BODY.format(
        name=export.name,
        image=export.image,
        workdir=export.workdir,
        secret=export.secret,
        project=export.project,
        description=describe(export),
        tasks=rows,
    )
