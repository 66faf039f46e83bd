"""conveyor package: a model version as a container image's build context (and the image)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from conveyor.cli.app import UsageError, arg, command
from conveyor.cli.output import echo


@command(
    "package",
    arg(
        "uri",
        nargs="?",
        metavar="MODEL",
        help="models:/name@alias, models:/name/3 or a package folder (or --env ENV)",
    ),
    arg("--env", metavar="ENV", help="package the version environment ENV serves (its stable)"),
    arg("--out", required=True, metavar="DIR", help="the folder to write the context into"),
    arg("--tag", metavar="IMAGE", help="the image reference (default: conveyor-<model>:<version>)"),
    arg("--build", action="store_true", help="build it with docker, podman or buildah (on PATH)"),
    arg(
        "--conveyor-wheel",
        metavar="WHEEL",
        help="the wheel of conveyor to install in the image (default: one made of this conveyor)",
    ),
    arg("--force", action="store_true", help="replace a context written before in DIR"),
    help="write a model version's container image build context (Dockerfile, requirements)",
)
def package_cmd(opts: Namespace) -> int:
    """Write an OCI build context for a model version: a multi-stage Dockerfile on a slim
    Python base pinned by version, the model package's pinned requirements with conveyor's
    serving install, the package itself, a HEALTHCHECK on /v2/health/ready and `conveyor serve`
    as the entrypoint, configured by CONVEYOR_* variables; a .dockerignore and a README with
    the build command. --build builds it with the first of docker, podman, buildah on PATH."""
    from conveyor.deploy import container

    if bool(opts.uri) == bool(opts.env):
        raise UsageError("name a model (MODEL) or an environment (--env ENV), one of them")
    wheel = Path(opts.conveyor_wheel) if opts.conveyor_wheel else None
    if wheel is not None and not wheel.is_file():
        raise UsageError(f"--conveyor-wheel {wheel}: no such file")
    out = Path(opts.out)
    ctx = container.package(
        Path.cwd(), out, uri=opts.uri, env=opts.env, wheel=wheel, force=opts.force
    )
    image = opts.tag or ctx.image
    echo(f"wrote the build context of {ctx.uri} to {out}")
    if not opts.build:
        echo(f"Build it with `docker build -t {image} {out}` (or podman, buildah).")
        return 0
    tool = container.build(out, image)
    echo(f"built {image} with {tool}")
    return 0
