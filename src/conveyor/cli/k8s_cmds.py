"""``conveyor k8s render|apply``: an environment of ``deploy:`` as Kubernetes manifests (with
Argo Rollouts or KServe), written to a folder or applied with kubectl.

Each command parses, calls one flow of :mod:`conveyor.deploy.k8s_flows` and prints.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import echo

if TYPE_CHECKING:
    from conveyor.deploy.k8s_flows import Rendered

group("k8s", help="render an environment as Kubernetes manifests, or apply them")

_VERSION = arg(
    "--version",
    type=int,
    metavar="N",
    help="the model version (default: the rollout's candidate, else the alias MODEL@ENV's)",
)
_IMAGE = arg("--image", help="the image (default: kubernetes.image, else conveyor-MODEL:N)")


def _root() -> Path:
    from conveyor.foundation.paths import find_root

    return find_root()


@command(
    "k8s render",
    arg("env", metavar="ENV", help="the environment (deploy: in conveyor.yaml)"),
    arg("--out", required=True, metavar="DIR", help="the folder the manifests are written to"),
    _VERSION,
    _IMAGE,
    help="write an environment's Kubernetes manifests (Rollout, AnalysisTemplate, ...)",
)
def render_cmd(opts: Namespace) -> None:
    from conveyor.deploy import k8s_flows

    rendered = k8s_flows.render_to(
        _root(), opts.env, Path(opts.out), version=opts.version, image=opts.image
    )
    _print(rendered, "Wrote")
    echo(f"Apply them with `kubectl apply -f {opts.out}` (or `conveyor k8s apply {opts.env}`).")


@command(
    "k8s apply",
    arg("env", metavar="ENV", help="the environment (deploy: in conveyor.yaml)"),
    arg(
        "--dir",
        metavar="DIR",
        help="where the manifests are rendered first (default: .conveyor/tmp/k8s/ENV)",
    ),
    _VERSION,
    _IMAGE,
    help="render an environment's manifests and `kubectl apply` them",
)
def apply_cmd(opts: Namespace) -> None:
    from conveyor.deploy import k8s_flows
    from conveyor.foundation.paths import CONTROL_DIR

    root = _root()
    out = Path(opts.dir) if opts.dir else root / CONTROL_DIR / "tmp" / "k8s" / opts.env
    rendered, said = k8s_flows.apply_to(root, opts.env, out, version=opts.version, image=opts.image)
    _print(rendered, "Applied")
    if said.strip():
        echo(said.rstrip())


def _print(rendered: Rendered, verb: str) -> None:
    kinds = ", ".join(f"{m['kind']} {m['metadata']['name']}" for m in rendered.manifests)
    echo(f"{verb} {rendered.env}: {rendered.model} version {rendered.version}: {kinds}")
    for path in rendered.files:
        echo(f"  {path}")
