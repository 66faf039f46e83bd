"""`conveyor export airflow|kubeflow`: the pipeline as a workflow of an orchestrator a team
already runs, one task per stage, the remote as the exchange (see docs/orchestrators.md)."""

from __future__ import annotations

from argparse import Namespace

from conveyor.cli.app import Arg, arg, command, group
from conveyor.cli.output import echo, style

group("export", help="the pipeline as an Airflow DAG or a Kubeflow pipeline")

_NEXT = {
    "airflow": [
        "copy {file} into the DAGs folder of your Airflow deployment",
        "build the project's image ({image}): the project in {workdir}, conveyor installed",
        "in the cluster: pip install apache-airflow-providers-cncf-kubernetes, and a Secret "
        "with the remote's credentials (--secret); on one machine: CONVEYOR_EXECUTION=local",
    ],
    "kubeflow": [
        "pip install kfp, then `python {file}` compiles it to a pipeline YAML to upload",
        "build the project's image ({image}): the project in {workdir}, conveyor installed",
        "give the pods the remote's credentials (a Secret, as your KFP installation does)",
    ],
}


def _export_args() -> tuple[Arg, ...]:
    return (
        arg("--out", default="export", metavar="DIR", help="where to write it (default: export)"),
        arg("--image", metavar="IMAGE", help="the project's image (default: NAME:latest)"),
        arg(
            "--workdir",
            default="/project",
            metavar="PATH",
            help="the project's folder in the image (default: /project)",
        ),
        arg("-r", "--remote", metavar="NAME", help="the remote tasks exchange through"),
        arg("--name", metavar="NAME", help="the DAG id / pipeline name (default: the folder's)"),
        arg("--secret", metavar="NAME", help="a Kubernetes Secret with the remote's credentials"),
        arg("--force", action="store_true", help="replace an existing file"),
        arg("--stdout", action="store_true", help="print the file instead of writing it"),
    )


def _export(kind: str, opts: Namespace) -> None:
    from conveyor import __version__
    from conveyor.data.remotes import resolve
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline import definition, export
    from conveyor.pipeline.export import file_name

    with Workspace.find() as ws:
        pipeline = definition.load(ws.root)
        spec = resolve(ws.config, ws.root, opts.remote)  # the exchange must exist
        root = ws.root
    name = opts.name or root.name
    planned = export.plan(
        pipeline,
        name=name,
        image=opts.image or f"{export.identifier(name).lower()}:latest",
        project=str(root),
        remote=opts.remote,
        workdir=opts.workdir,
        secret=opts.secret,
        version=__version__,
    )
    if kind == "airflow":
        from conveyor.pipeline.export_airflow import render

        text = render(planned)
    else:
        from conveyor.pipeline.export_kubeflow import render as render_kfp

        text = render_kfp(planned, file_name(kind, name))
    if opts.stdout:
        print(text, end="")
        return
    path = export.write(root / opts.out / file_name(kind, name), text, force=opts.force)
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    n = len(planned.tasks)
    echo(f"wrote {shown}: {n} task{'s' if n != 1 else ''}, exchanging through remote {spec.name!r}")
    echo(style("Next steps:", bold=True))
    for step in _NEXT[kind]:
        echo("  - " + step.format(file=shown, image=planned.image, workdir=planned.workdir))


@command(
    "export airflow",
    *_export_args(),
    help="write the pipeline as an Airflow DAG",
)
def airflow_cmd(opts: Namespace) -> None:
    """Write the pipeline as an Airflow DAG: one task per stage, each running `conveyor run
    --single --restore-upstream STAGE` between `conveyor pull --run-cache` and `conveyor push
    --run-cache`, as a pod of the project's image (or, with CONVEYOR_EXECUTION=local, on the
    worker)."""
    _export("airflow", opts)


@command(
    "export kubeflow",
    *_export_args(),
    help="write the pipeline as a Kubeflow Pipelines pipeline",
)
def kubeflow_cmd(opts: Namespace) -> None:
    """Write the pipeline as a Kubeflow Pipelines (v2) pipeline: one container component of the
    project's image per stage, each running `conveyor run --single --restore-upstream STAGE`
    between `conveyor pull --run-cache` and `conveyor push --run-cache`."""
    _export("kubeflow", opts)
