"""conveyor package: a registered version (or an environment's) as an image's build context,
linted with hadolint and served the way the image's entrypoint serves it: a real
`conveyor serve` on loopback, configured by the Dockerfile's own ENV lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.deploy.projects import environment, package

BIN = Path(sys.executable).parent
HADOLINT = shutil.which("hadolint") or str(BIN / "hadolint")


@pytest.fixture
def proj(project: Project) -> Project:
    package(project.root, "v1")
    project.ok("models", "register", "clf", "v1")
    project.ok("models", "alias", "clf@production", "1")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment())
    return project


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    """A stand-in for conveyor's wheel (its metadata is all the context reads)."""
    path = tmp_path / "wheels" / "conveyor-0.1.0-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "conveyor-0.1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: conveyor\nVersion: 0.1.0\n"
            'Requires-Dist: pyyaml>=6.0\nRequires-Dist: optuna>=4.0; extra == "train"\n',
        )
    return path


def dockerfile_env(text: str) -> dict[str, str]:
    """The ENV instruction's variables, as the image's processes see them."""
    block = re.search(r"^ENV (.*?)\n(?!    )", text, re.M | re.S)
    assert block is not None
    pairs = re.findall(r'(\w+)=("[^"]*"|\S+)', block.group(1))
    return {k: v.strip('"') for k, v in pairs}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_context_lints_clean_and_its_model_serves_as_the_entrypoint_would(
    proj: Project, tmp_path: Path
) -> None:
    out = proj.ok("package", "models:/clf@production", "--out", "ctx")
    ctx = proj.root / "ctx"
    assert "wrote the build context of models:/clf/1" in out
    assert "docker build -t conveyor-clf:1 ctx" in out
    names = {p.name for p in ctx.iterdir()}
    assert names == {
        "Dockerfile",
        ".dockerignore",
        "README.md",
        "requirements.txt",
        "wheels",
        "model",
    }
    (wheel,) = (ctx / "wheels").iterdir()  # conveyor itself, made from this checkout
    assert wheel.name == "conveyor-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        assert "conveyor/cli/serve_cmds.py" in zf.namelist()
    lines = (ctx / "requirements.txt").read_text().splitlines()
    assert "numpy==" + __import__("numpy").__version__ in lines  # the model's pin
    assert f"conveyor[serve] @ file:///build/wheels/{wheel.name}" in lines
    pinned = [line for line in lines if line and not line.startswith(("#", "conveyor"))]
    assert all("==" in line for line in pinned), pinned
    for training in ("optuna", "matplotlib", "scipy", "pandas", "alembic"):
        assert not [line for line in lines if line.startswith(training)], training
    assert (ctx / "model" / "conveyor-model.yaml").is_file()

    linted = subprocess.run(
        [HADOLINT, "--no-color", "Dockerfile"], cwd=ctx, capture_output=True, text=True
    )
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout + linted.stderr

    # The entrypoint `conveyor serve` with the image's ENV; the paths the image copies to
    # (/srv/model, /srv/predictions) are this context's, and the host is loopback.
    dockerfile = (ctx / "Dockerfile").read_text()
    image_env = dockerfile_env(dockerfile)
    assert image_env["CONVEYOR_MODEL"] == "/srv/model" and image_env["CONVEYOR_HOST"] == "0.0.0.0"
    port = free_port()
    env = {
        **os.environ,
        **image_env,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "CONVEYOR_MODEL": str(ctx / "model"),
        "CONVEYOR_HOST": "127.0.0.1",
        "CONVEYOR_PORT": str(port),
        "CONVEYOR_LOG_DIR": str(tmp_path / "predictions"),
    }
    entrypoint = json.loads(dockerfile.splitlines()[-1].removeprefix("ENTRYPOINT "))
    assert entrypoint == ["conveyor", "serve"]
    outside = tmp_path / "srv"  # no project above: as in the image
    outside.mkdir()
    server = subprocess.Popen(
        [str(BIN / "conveyor"), *entrypoint[1:]], cwd=outside, env=env, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(url + "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.05)
        body = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP64",
                            "data": [0.5, 1.0, -1.0, -0.5, 0.0, 2.0]}]}  # fmt: skip
        req = urllib.request.Request(
            url + "/v2/models/clf/infer", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert answer["outputs"][0]["data"] == [1, 0]
        # the image's HEALTHCHECK, run as the builder would run it
        (health,) = [line for line in dockerfile.splitlines() if line.startswith("  CMD ")]
        check = json.loads(health.removeprefix("  CMD "))
        assert check[0] == "python"
        done = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
    assert list((tmp_path / "predictions").rglob("*.jsonl")), "no prediction log"
    done = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True)
    assert done.returncode != 0  # and unhealthy once the server is gone


def test_an_environment_packages_its_stable_version(proj: Project, wheel: Path) -> None:
    proj.ok("models", "alias", "clf@production", "--delete")  # nothing serves production
    result = proj.run(
        "package", "--env", "production", "--out", "ctx", "--conveyor-wheel", str(wheel)
    )
    assert result.code == 1 and "clf@production points at no version yet" in result.err
    assert "conveyor deploy clf/N --env production" in result.err and "Traceback" not in result.err
    proj.ok("deploy", "clf/1", "--env", "production")
    out = proj.ok("package", "--env", "production", "--out", "ctx", "--conveyor-wheel", str(wheel))
    assert "models:/clf/1" in out
    text = (proj.root / "ctx" / "requirements.txt").read_text()
    assert "pyyaml==" in text and "optuna" not in text  # conveyor[serve]'s, not the training stack
    assert "conveyor-clf:1" in (proj.root / "ctx" / "Dockerfile").read_text()


def test_a_package_folder_is_version_local(proj: Project, wheel: Path) -> None:
    out = proj.ok("package", "v1", "--out", "ctx", "--conveyor-wheel", str(wheel))
    assert "docker build -t conveyor-clf:local ctx" in out
    assert (proj.root / "ctx" / "model" / "conveyor-model.yaml").is_file()


def test_the_image_is_named_after_the_registered_model(proj: Project, wheel: Path) -> None:
    proj.ok("models", "register", "Fraud.Detector", "v1")  # the package's manifest says clf
    out = proj.ok(
        "package", "models:/Fraud.Detector/1", "--out", "ctx", "--conveyor-wheel", str(wheel)
    )
    assert "docker build -t conveyor-fraud.detector:1 ctx" in out
    result = proj.run("package", "v1", "--out", "ctx2", "--conveyor-wheel", str(proj.root / "v1"))
    assert result.code == 2 and "no such file" in result.err
    named = proj.root / "mine.whl"
    named.write_bytes(wheel.read_bytes())
    result = proj.run("package", "v1", "--out", "ctx2", "--conveyor-wheel", str(named))
    assert result.code == 1 and "is not a wheel of conveyor" in result.err


def test_build_says_when_no_builder_is_on_path(
    proj: Project, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = proj.run(
        "package", "models:/clf/1", "--out", "ctx", "--build", "--conveyor-wheel", str(wheel)
    )
    assert result.code == 1, result.err
    assert "cannot build conveyor-clf:1: none of docker, podman, buildah is on PATH" in result.err
    assert "docker build -t conveyor-clf:1 ctx" in result.err  # the context is there to build
    assert "Traceback" not in result.err and (proj.root / "ctx" / "Dockerfile").is_file()


def test_build_runs_the_builder_on_path(
    proj: Project, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    called = tmp_path / "called"
    podman = tools / "podman"
    podman.write_text(f'#!/bin/sh\necho "$@" > {called}\n')
    podman.chmod(podman.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tools))  # podman alone (this machine has a docker client)
    out = proj.ok(
        "package", "models:/clf/1", "--out", "ctx", "--build", "--tag", "reg.example/clf:1",
        "--conveyor-wheel", str(wheel),
    )  # fmt: skip
    assert "built reg.example/clf:1 with podman" in out
    assert called.read_text().split() == ["build", "-t", "reg.example/clf:1", "ctx"]
    podman.write_text("#!/bin/sh\nexit 3\n")
    result = proj.run(
        "package", "models:/clf/1", "--out", "ctx", "--force", "--build",
        "--conveyor-wheel", str(wheel),
    )  # fmt: skip
    assert result.code == 1 and "podman build -t conveyor-clf:1 ctx failed (exit 3)" in result.err


def test_a_taken_folder_is_refused_and_force_replaces_only_a_context(
    proj: Project, wheel: Path
) -> None:
    args = ("package", "models:/clf/1", "--out", "ctx", "--conveyor-wheel", str(wheel))
    proj.ok(*args)
    result = proj.run(*args)
    assert result.code == 1 and "ctx exists and is not an empty folder" in result.err
    (proj.root / "ctx" / "stale").write_text("")
    proj.ok(*args, "--force")
    assert not (proj.root / "ctx" / "stale").exists()
    result = proj.run("package", "models:/clf/1", "--out", "v1", "--force",
                      "--conveyor-wheel", str(wheel))  # fmt: skip
    assert result.code == 1 and "v1 is not a build context conveyor wrote" in result.err
    assert (proj.root / "v1" / "conveyor-model.yaml").is_file()  # untouched
    # the Dockerfile copied into a repository: the repository is not a context to replace
    repo = proj.root / "copied"
    (repo / ".git").mkdir(parents=True)
    (repo / "Dockerfile").write_text((proj.root / "ctx" / "Dockerfile").read_text())
    result = proj.run("package", "models:/clf/1", "--out", "copied", "--force",
                      "--conveyor-wheel", str(wheel))  # fmt: skip
    assert result.code == 1 and "copied is not a build context conveyor wrote" in result.err
    assert (repo / ".git").is_dir()
    # a link out of the model package is never copied into the image
    outside = proj.root.parent / "credentials"
    outside.write_text("secret")
    (proj.root / "v1" / "creds").symlink_to(outside)
    result = proj.run("package", str(proj.root / "v1"), "--out", "linked",
                      "--conveyor-wheel", str(wheel))  # fmt: skip
    assert result.code == 1 and "links outside the model package" in result.err
    assert not (proj.root / "linked").exists()


def test_one_model_or_one_environment(proj: Project) -> None:
    for args in ((), ("models:/clf/1", "--env", "production")):
        result = proj.run("package", *args, "--out", "ctx")
        assert result.code == 2 and "name a model (MODEL) or an environment" in result.err
    result = proj.run("package", "models:/clf/9", "--out", "ctx")
    assert result.code == 2 and "Traceback" not in result.err
