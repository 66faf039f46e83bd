"""``conveyor k8s render`` and ``conveyor k8s apply`` as library flows: which version an
environment serves, its manifests written as YAML files, and ``kubectl apply`` on them.

The version is ``--version`` when given; else the candidate of the environment's rollout while
one is on (applying it starts the same rollout on the cluster); else the version its alias
``MODEL@ENV`` points at. Files are written whole or not at all, one object a file, named
``<kind>-<name>.yaml``; a file an earlier render wrote that this one does not (a Deployment
that became a Rollout) is removed, so that ``kubectl apply -f DIR`` never applies a stale one;
``k8s apply`` gives kubectl the files it wrote, each by name.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.deploy.config import environment
from conveyor.deploy.errors import DeployError
from conveyor.deploy.image import version_of
from conveyor.deploy.kubernetes import Manifest, render

HEADER = "# Rendered by `conveyor k8s render {env}` from conveyor.yaml: edit that, not this file.\n"


@dataclass(frozen=True)
class Rendered:
    env: str
    model: str
    version: int
    files: tuple[Path, ...]
    manifests: tuple[Manifest, ...]


def check_version(root: Path, model: str, version: int) -> int:
    from conveyor.registry.stored import resolve

    return resolve(root, f"models:/{model}/{version}").version


def render_to(
    root: Path, env: str, out: Path, *, version: int | None = None, image: str | None = None
) -> Rendered:
    """Write the manifests of environment ``env`` into the folder ``out``."""
    settings = environment(root, env)
    number = (
        check_version(root, settings.model, version)
        if version is not None
        else version_of(root, env, settings.model)
    )
    manifests = render(settings, number, image)
    files = write(out, manifests, HEADER.format(env=env))
    return Rendered(env, settings.model, number, tuple(files), tuple(manifests))


def write(out: Path, manifests: list[Manifest], header: str) -> list[Path]:
    """One YAML file per manifest in ``out`` (made if missing), each written atomically; the
    files an earlier render left that this one does not write are removed."""
    import yaml

    from conveyor.foundation.atomic import write_text

    if out.exists() and not out.is_dir():
        raise DeployError(f"{out} is a file, not a folder", hint="give --out a folder")
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for manifest in manifests:
        name = f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        text = yaml.dump(
            manifest, Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=100
        )
        write_text(out / name, header + text)
        files.append(out / name)
    for old in out.glob("*.yaml"):
        if old not in files and _ours(old, header):
            old.unlink()
    return sorted(files)


def _dumper() -> type:
    """PyYAML's safe dumper writing a value met twice in full, never as ``&id001``/``*id001``
    (valid YAML, but not what a person reviewing a manifest expects)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    return Dumper


def _ours(path: Path, header: str) -> bool:
    """Written by a render of the same environment (its header names it): another
    environment's files rendered into the same folder stay."""
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline() == header.splitlines(keepends=True)[0]
    except (OSError, UnicodeDecodeError):
        return False


def apply_to(
    root: Path,
    env: str,
    out: Path,
    *,
    version: int | None = None,
    image: str | None = None,
    kubectl: str = "kubectl",
) -> tuple[Rendered, str]:
    """Render environment ``env`` into ``out`` and ``kubectl apply`` the files written (not the
    folder: another environment's files, or anything else put there, are not applied);
    kubectl's output. Nothing is written when kubectl is not on PATH."""
    exe = find_kubectl(kubectl)
    rendered = render_to(root, env, out, version=version, image=image)
    return rendered, apply(exe, rendered.files)


def find_kubectl(kubectl: str = "kubectl") -> str:
    exe = shutil.which(kubectl)
    if exe is None:
        raise DeployError(
            f"{kubectl} is not on PATH: nothing was applied",
            hint="install kubectl and point it at your cluster, or apply the files of "
            "`conveyor k8s render ENV --out DIR` where kubectl runs",
        )
    return exe


def apply(exe: str, files: Sequence[Path]) -> str:
    """``kubectl apply -f FILE ...``; its output. A DeployError when the cluster refuses."""
    args = [exe, "apply"]
    for file in files:
        args += ["-f", str(file)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DeployError(f"{exe} could not start: {exc}") from None
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()
        where = files[0].parent if files else Path()
        raise DeployError(
            f"kubectl apply of the {len(files)} files in {where} failed (exit {proc.returncode})"
            + (f": {said[-1]}" if said else ""),
            hint="the cluster needs the CRDs of Argo Rollouts (and KServe, Prometheus "
            "Operator) for their objects; see docs/kubernetes.md",
        )
    return proc.stdout
