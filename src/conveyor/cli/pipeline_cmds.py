"""Pipeline commands: run, dag, metrics show, params show (status lives with the data commands)."""

from __future__ import annotations

import json
from argparse import Namespace

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import cell, echo, style, table
from conveyor.cli.running import RUN_ARGS, load_pipeline, run_pipeline


@command(
    "run",
    *RUN_ARGS,
    arg("--register", action="store_true", help="register the models: section's packages after"),
    help="run the pipeline's stale stages",
)
def run_cmd(opts: Namespace) -> int:
    """Run what is stale, upstream first, independent stages in parallel."""
    return run_pipeline(opts)


@command(
    "dag",
    arg("--dot", action="store_true", help="Graphviz dot"),
    arg("--mermaid", action="store_true", help="a Mermaid flowchart (renders in Markdown)"),
    help="print the pipeline's graph",
)
def dag_cmd(opts: Namespace) -> None:
    """Print the stages and what each depends on."""
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        pipeline = load_pipeline(ws)
    edges = [(u, n) for n in pipeline.order for u in pipeline.upstream[n]]
    if opts.dot:
        print("digraph pipeline {")
        print("  rankdir=LR;")
        for name in pipeline.order:
            print(f"  {json.dumps(name)};")
        for u, n in edges:
            print(f"  {json.dumps(u)} -> {json.dumps(n)};")
        print("}")
        return
    if opts.mermaid:
        ids = {name: f"s{i}" for i, name in enumerate(pipeline.order)}
        print("flowchart LR")
        for name in pipeline.order:
            print(f'  {ids[name]}["{name}"]')
        for u, n in edges:
            print(f"  {ids[u]} --> {ids[n]}")
        return
    if not pipeline.order:
        echo("No stages in conveyor.yaml.")
        return
    width = max(len(n) for n in pipeline.order)
    for name in pipeline.order:
        ups = pipeline.upstream[name]
        stage = pipeline.stages[name]
        after = f"<- {', '.join(ups)}" if ups else style("(source)", "cyan")
        desc = f"  # {stage.desc}" if stage.desc else ""
        print(f"{name:<{width}}  {after}{desc}")


group("metrics", help="show the metrics the pipeline writes")
group("params", help="show the params the pipeline uses")
_JSON = arg("--json", dest="as_json", action="store_true", help="print JSON for machines")


@command("metrics show", _JSON, help="print the declared metrics files' values")
def metrics_show_cmd(opts: Namespace) -> None:
    """Print every metric in the declared metrics files (eval.auc is auc in metrics/eval.json)."""
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline import metrics

    with Workspace.find() as ws:
        pipeline = load_pipeline(ws)
        values = metrics.read(ws.root, metrics.metric_files(pipeline))
    if opts.as_json:
        print(json.dumps(values, indent=2))
    elif not values:
        echo("No metrics yet: declare files under a stage's 'metrics:' and run the pipeline.")
    else:
        table(["metric", "value"], [[k, cell(v)] for k, v in values.items()])


@command("params show", _JSON, help="print the params the stages use, with their values")
def params_show_cmd(opts: Namespace) -> None:
    """Print every param a stage uses (train.lr is lr under train in params.yaml)."""
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline import metrics

    with Workspace.find() as ws:
        values = metrics.used_params(load_pipeline(ws))
    if opts.as_json:
        print(json.dumps(values, indent=2, default=str))
    elif not values:
        echo("No params: list keys of params.yaml under a stage's 'params:'.")
    else:
        table(["param", "value"], [[k, cell(v)] for k, v in values.items()])
