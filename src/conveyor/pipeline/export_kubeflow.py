"""The pipeline as a Kubeflow Pipelines (KFP v2) pipeline: source text, nothing imported here.

Each stage is a container component of the project's image running the task's commands; the
tasks wait for their upstream ones with ``.after()``: they pass no artifacts, the remote is the
exchange. KFP's own cache is off for them: conveyor's run-cache decides what runs.
"""

from __future__ import annotations

from conveyor.pipeline.export import Export, describe

_TEXT = '''\
"""conveyor pipeline {name!r} for Kubeflow Pipelines, by `conveyor export kubeflow`{version}.

Each task runs one stage in IMAGE (the project is in WORKDIR): it pulls what the stage needs
from the remote, runs the stage alone (`conveyor run --single --restore-upstream STAGE`: the
stages it needs were run by their own tasks and are restored from the run-cache they pushed),
then pushes its outs and its run-cache entry. The remote is all the tasks share: give the pods
its credentials as your KFP installation does (for example kfp-kubernetes' use_secret_as_env
with the Secret {secret_note}). Export again after changing the stages in conveyor.yaml.

    python {file}          # compiles to {yaml} beside this file, to upload to KFP
"""

import shlex
from pathlib import Path

from kfp import compiler, dsl

NAME = {name!r}
IMAGE = {image!r}
WORKDIR = {workdir!r}

# stage -> (component name, the stages it needs, what the task runs)
TASKS = {{
{tasks}}}


def _component(stage):
    name, _, command = TASKS[stage]

    def component():
        script = f"cd {{shlex.quote(WORKDIR)}} && {{command}}"
        return dsl.ContainerSpec(image=IMAGE, command=["sh", "-c"], args=[script])

    component.__name__ = name
    return dsl.container_component(component)


COMPONENTS = {{stage: _component(stage) for stage in TASKS}}


@dsl.pipeline(name=NAME, description={description!r})
def pipeline():
    tasks = {{}}
    for stage, (_, upstream, _) in TASKS.items():
        task = COMPONENTS[stage]()
        task.set_display_name(stage)
        task.set_caching_options(False)  # conveyor's run-cache decides what runs
        for needed in upstream:
            task.after(tasks[needed])
        tasks[stage] = task


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, str(Path(__file__).with_suffix(".yaml")))
'''


def render(export: Export, file: str = "pipeline.py") -> str:
    """The pipeline file's text (``file``: its name, for the compile instructions)."""
    rows = "".join(
        f"    {t.stage!r}: (\n        {t.task_id!r},\n        {list(t.upstream)!r},\n"
        f"        {t.command!r},\n    ),\n"
        for t in export.tasks
    )
    version = f" (conveyor {export.version})" if export.version else ""
    return _TEXT.format(
        name=export.name,
        version=version,
        secret_note=repr(export.secret) if export.secret else "holding them",
        file=file,
        yaml=file.removesuffix(".py") + ".yaml",
        image=export.image,
        workdir=export.workdir,
        description=describe(export),
        tasks=rows,
    )
