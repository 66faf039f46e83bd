"""A model version as an OCI image's build context: what ``conveyor package`` writes.

    context/
      Dockerfile          two stages: a builder installs requirements.txt into a venv, the
                          runtime copies the venv and the model and serves it as a non-root user
      requirements.txt    the model package's requirements as it recorded them, conveyor[serve]
                          from the wheel below, and what conveyor needs at the versions it runs
                          with here
      wheels/             a wheel of this conveyor (see :mod:`conveyor.deploy.wheel`)
      model/              the model package
      .dockerignore, README.md

The texts are pure functions of a :class:`Context` (tested with plain values); :func:`write`
puts them and the files in a folder, :func:`build` hands the folder to docker, podman or
buildah.

    >>> ctx = Context(model="clf", version="3", uri="models:/clf/3", python="3.11.7",
    ...               package="ab12.tree", wheel="conveyor-0.1.0-py3-none-any.whl")
    >>> dockerfile(ctx).splitlines()[-1]
    'ENTRYPOINT ["conveyor", "serve"]'
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.deploy.errors import ContainerError, DeployError
from conveyor.deploy.image import image_reference

VENV = "/opt/conveyor"
MODEL_DIR = "/srv/model"
LOG_DIR = "/srv/predictions"
UID = 10001  # numeric, so that Kubernetes' runAsNonRoot can check it
PORT = 8080
BUILDERS = ("docker", "podman", "buildah")
# What `conveyor serve` reads from the environment (flags win): the image's configuration.
SERVE_ENV = {
    "CONVEYOR_MODEL": MODEL_DIR,
    "CONVEYOR_HOST": "0.0.0.0",  # inside the container: reached through its network only
    "CONVEYOR_PORT": str(PORT),
    "CONVEYOR_WORKERS": "1",
    "CONVEYOR_LOG_DIR": LOG_DIR,
}
HEALTH_PATH = "/v2/health/ready"
_PYTHON = re.compile(r"3\.\d{1,2}(\.\d{1,2})?")
_WHEEL = re.compile(r"conveyor-[A-Za-z0-9_.+]+-py3-none-any\.whl")


@dataclass(frozen=True)
class Context:
    """What a build context is written for: the model version, the Python its package was
    saved with (the base image's version), and the wheel of conveyor in ``wheels/``."""

    model: str
    version: str  # the registry's number, or "local" for a package folder
    uri: str
    python: str
    package: str  # the package's tree hash, or "" for a folder
    wheel: str
    conveyor_version: str = ""

    @property
    def image(self) -> str:
        return image_reference(self.model, self.version)

    @property
    def base(self) -> str:
        """The base image, pinned by Python version and Debian release (a digest cannot be
        resolved without a registry; see the Dockerfile's comment)."""
        return f"python:{self.python}-slim-bookworm"


def dockerfile(ctx: Context) -> str:
    health = (
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + "
        f"os.environ.get('CONVEYOR_PORT', '{PORT}') + '{HEALTH_PATH}', timeout=2)"
    )
    env = " \\\n    ".join(
        [f'PATH="{VENV}/bin:$PATH"', "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
        + [f"{k}={v}" for k, v in SERVE_ENV.items()]
    )
    labels = {
        "org.opencontainers.image.title": ctx.image.partition(":")[0],
        "org.opencontainers.image.version": ctx.version,
        "org.opencontainers.image.description": f"{ctx.uri} served by conveyor",
        "io.conveyor.model": ctx.model,
        "io.conveyor.version": ctx.version,
        "io.conveyor.package": ctx.package,
    }
    label = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    return f"""\
# syntax=docker/dockerfile:1
# Written by `conveyor package` {ctx.conveyor_version}: {ctx.uri} as image {ctx.image}.
#   docker build -t {ctx.image} .      (or podman build, buildah bud)
#
# The base image is pinned by version: Python {ctx.python}, as the model package records it,
# on Debian bookworm. conveyor wrote this offline and pins no digest; to pin one, resolve it
#   docker buildx imagetools inspect {ctx.base}
# and write {ctx.base}@sha256:<digest> in both FROM lines.

# Builder: the pinned requirements, and conveyor from its wheel, installed into a venv.
FROM {ctx.base} AS builder
WORKDIR /build
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN python -m venv {VENV} \\
    && {VENV}/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

# Runtime: the venv and the model package, served by a user without privileges.
FROM {ctx.base}
LABEL {label}
ENV {env}
RUN groupadd --gid {UID} conveyor \\
    && useradd --no-log-init --uid {UID} --gid {UID} --create-home conveyor \\
    && mkdir -p {LOG_DIR} \\
    && chown {UID}:{UID} {LOG_DIR}
COPY --from=builder {VENV} {VENV}
COPY model/ {MODEL_DIR}/
WORKDIR /srv
USER {UID}:{UID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT ["conveyor", "serve"]
"""


def requirements_txt(ctx: Context, model: Sequence[str], conveyor: Sequence[str]) -> str:
    """The model's requirements as its package recorded them (lines with ``--hash`` kept as
    written), then conveyor[serve] from the wheel and its own pins, leaving out a package the
    model already names: the model's line wins, its files were written by that version."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    def name(line: str) -> str | None:
        try:
            return canonicalize_name(Requirement(line.split(" --hash", 1)[0]).name)
        except InvalidRequirement:
            return None

    named = {name(line) for line in model} - {None}
    ours = [line for line in conveyor if name(line) not in named]
    lines = [
        f"# Written by `conveyor package` for {ctx.uri}: what the image installs.",
        "# The model package's requirements, as conveyor-model.yaml records them:",
        *model,
        "# conveyor for serving, from the wheel in this folder:",
        f"conveyor[serve] @ file:///build/wheels/{ctx.wheel}",
        "# and what it needs, at the versions the conveyor that wrote this runs with:",
        *ours,
    ]
    return "\n".join(lines) + "\n"


DOCKERIGNORE = """\
# The context holds only what the Dockerfile copies.
*
!Dockerfile
!requirements.txt
!wheels/
!model/
**/__pycache__
**/*.pyc
"""


def readme(ctx: Context) -> str:
    variables = "\n".join(f"| `{k}` | `{v}` |" for k, v in SERVE_ENV.items())
    return f"""\
# {ctx.image}

The build context of {ctx.uri} ({ctx.package or "a package folder"}), written by
`conveyor package`. Build it with any OCI builder:

    docker build -t {ctx.image} .
    podman build -t {ctx.image} .
    buildah bud -t {ctx.image} .

and run it:

    docker run --rm -p {PORT}:{PORT} {ctx.image}
    curl localhost:{PORT}{HEALTH_PATH}

The image serves the model with `conveyor serve` (Open Inference Protocol v2 and MLflow's
scoring protocol, `/metrics` for Prometheus), as user {UID}, configured by environment
variables (`docker run -e CONVEYOR_WORKERS=4 ...`; arguments after the image name are
`conveyor serve`'s flags and win over them):

| variable | in this image |
|---|---|
{variables}

`HEALTHCHECK` asks `{HEALTH_PATH}`, which answers 200 once the model is loaded. Predictions
are logged under `{LOG_DIR}` (mount a volume there to keep them; `--log-sample 0` turns the
log off).

- `Dockerfile`: a builder stage installs `requirements.txt` into a venv ({VENV}); the runtime
  stage copies the venv and `model/`. The base image is pinned by version (Python
  {ctx.python}, the package's); pin its digest as the Dockerfile's comment says.
- `requirements.txt`: the model's pinned requirements, conveyor (`conveyor[serve]`, the
  serving install: no training stack) from `wheels/`, and its dependencies pinned.
- `model/`: the model package (`conveyor-model.yaml`).
"""


def package(
    start: Path,
    out: Path,
    *,
    uri: str | None = None,
    env: str | None = None,
    wheel: Path | None = None,
    force: bool = False,
) -> Context:
    """Write the build context of ``uri`` (a registered version or a package folder) or of
    environment ``env``'s stable version into ``out``; ``start`` is where the project is
    looked for. ``wheel``: conveyor's, else one is made of the running conveyor."""
    import platform
    import tempfile

    from conveyor import __version__
    from conveyor.deploy import wheel as wheels
    from conveyor.registry.package import read_manifest

    folder, model, version, where, tree = _source(start, uri, env)
    manifest = read_manifest(folder)
    source = folder / "conveyor-model.yaml"
    python = python_version(manifest.get("python") or platform.python_version(), source)
    needs = model_requirements(manifest.get("requirements") or [], source)
    if force:
        _clear(out)
    else:
        _free(out)
    if wheel is not None and not _WHEEL.fullmatch(wheel.name):
        raise ContainerError(
            f"{wheel} is not a wheel of conveyor (conveyor-VERSION-py3-none-any.whl)",
            hint="build one with `pip wheel --no-deps .` in conveyor's source tree",
        )
    with tempfile.TemporaryDirectory(prefix="conveyor-wheel-") as scratch:
        made = wheel or wheels.build(Path(scratch))
        ctx = Context(
            model=model or str(manifest.get("name") or folder.name),
            version=version,
            uri=where,
            python=python,
            package=tree,
            wheel=made.name,
            conveyor_version=__version__,
        )
        pins = wheels.pinned_closure(wheels.requirements(made), extras=("serve",))
        write(
            out, ctx, package=folder, wheel=made, model_requirements=needs,
            conveyor_requirements=pins,
        )  # fmt: skip
    return ctx


def python_version(value: object, where: Path) -> str:
    """The manifest's Python version, as the base image's tag takes it (``3.11.7``)."""
    text = str(value)
    if not _PYTHON.fullmatch(text):
        raise ContainerError(
            f"{where}: python {text!r} is not a Python version such as 3.11.7",
            hint="the image's base is python:<version>-slim-bookworm; fix the manifest's python:",
        )
    return text


def model_requirements(lines: Sequence[object], where: Path) -> list[str]:
    """The manifest's requirement lines, each one requirement (a ``--hash`` option may follow):
    a line that is a pip option of its own (``--index-url``, ``-r``) or spans lines would
    change what, and from where, every package of the image is installed."""
    kept = []
    for line in lines:
        text = str(line).strip()
        if not text or "\n" in text or "\r" in text or text.startswith("-"):
            raise ContainerError(
                f"{where}: requirement {text!r} is not one requirement (pip options and "
                "several lines are not taken into an image's requirements.txt)",
                hint="write each package the model needs as one line (name==version)",
            )
        kept.append(text)
    return kept


def _source(start: Path, uri: str | None, env: str | None) -> tuple[Path, str, str, str, str]:
    """The package folder, the registered model's name ("" for a folder: its manifest names
    it), its version ("local" for a folder), its URI and tree hash."""
    if uri is not None and not uri.startswith("models:/"):
        if "\n" in uri or "\r" in uri:  # it goes into the Dockerfile's comments
            raise ContainerError(f"{uri!r}: a package folder's path must be one line")
        return Path(uri), "", "local", uri, ""
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.paths import find_root
    from conveyor.registry.stored import materialize, resolve

    root = find_root(start)
    if env is not None:
        uri = _stable_of(root, env)
    assert uri is not None
    found = resolve(root, uri)
    with Workspace(root) as ws:
        folder = materialize(ws, found)
    return folder, found.name, str(found.version), found.uri, found.package


def _stable_of(root: Path, env: str) -> str:
    """The version ``--env`` packages: the one ``conveyor k8s render`` runs (a rollout's
    candidate while one is on, else the alias ``MODEL@ENV``)."""
    from conveyor.deploy.config import environment
    from conveyor.deploy.image import version_of

    model = environment(root, env).model
    try:
        return f"models:/{model}/{version_of(root, env, model)}"
    except DeployError as exc:
        raise ContainerError(exc.message, hint=exc.hint) from exc


# What a build context never holds: a folder with one of them is never removed by --force.
NEVER_A_CONTEXT = {".git", ".conveyor", "conveyor.yaml", "conveyor.lock"}


def _free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ContainerError(
            f"{out} exists and is not an empty folder",
            hint="name a new folder with --out, or add --force to replace it",
        )


def _clear(out: Path) -> None:
    """Remove a context written before; refuse any other folder (--force is no rm -rf)."""
    if not out.exists():
        return
    ours = not out.is_symlink() and out.is_dir() and (out / "Dockerfile").is_file()
    if ours:
        ours = (out / "Dockerfile").read_text(errors="replace").find("`conveyor package`") != -1
        # a Dockerfile copied into a project (or a repository) does not make it a context
        ours = ours and not ({p.name for p in out.iterdir()} & NEVER_A_CONTEXT)
    if not ours and not (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        raise ContainerError(
            f"{out} is not a build context conveyor wrote: not replaced",
            hint="name a new folder with --out",
        )
    shutil.rmtree(out)


def write(
    out: Path,
    ctx: Context,
    *,
    package: Path,
    wheel: Path,
    model_requirements: Sequence[str],
    conveyor_requirements: Sequence[str],
) -> None:
    """Write the context into ``out`` (a new or empty folder)."""
    _no_links_out(package)  # before anything is written
    _free(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "Dockerfile").write_text(dockerfile(ctx))
    (out / ".dockerignore").write_text(DOCKERIGNORE)
    (out / "README.md").write_text(readme(ctx))
    text = requirements_txt(ctx, model_requirements, conveyor_requirements)
    (out / "requirements.txt").write_text(text)
    (out / "wheels").mkdir()
    shutil.copy(wheel, out / "wheels" / ctx.wheel)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(package, out / "model", copy_function=shutil.copy, ignore=ignore)


def _no_links_out(package: Path) -> None:
    """Refuse a package with a link to anything outside it: copied, its target's bytes (a
    credentials file, say) would go into the image."""
    top = package.resolve()
    for path in package.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(top):
            raise ContainerError(
                f"{path} links outside the model package ({path.resolve()}): not copied into "
                "the image",
                hint="replace the link by the file itself, inside the package",
            )


def builder(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The first of docker, podman and buildah on PATH, or None."""
    return next((tool for tool in BUILDERS if which(tool)), None)


def build_command(tool: str, image: str, folder: Path) -> list[str]:
    verb = ["bud"] if Path(tool).name == "buildah" else ["build"]
    return [tool, *verb, "-t", image, str(folder)]


def build(folder: Path, image: str, *, which: Callable[[str], str | None] = shutil.which) -> str:
    """Build the context in ``folder`` as ``image`` with the first builder on PATH (its output
    goes to this process's); the builder's name. ContainerError without one, or on failure."""
    tool = builder(which)
    if tool is None:
        raise ContainerError(
            f"cannot build {image}: none of {', '.join(BUILDERS)} is on PATH",
            hint=f"the build context is written; build it where one is: "
            f"docker build -t {image} {folder}",
        )
    cmd = build_command(tool, image, folder)
    try:
        done = subprocess.run(cmd, check=False)
    except OSError as exc:
        raise ContainerError(f"cannot run {tool}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise ContainerError(
            f"{' '.join(cmd)} failed (exit {done.returncode})",
            hint="its output above says why; the build context is left as written",
        )
    return tool
