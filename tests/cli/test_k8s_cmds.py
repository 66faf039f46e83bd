"""conveyor k8s render|apply on a real project, in-process: the files, valid offline
(kubernetes-validate --strict for the core kinds, the vendored CRD schemas for the rest), the
version each command picks, and the errors (no kubectl here) without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Project
from tests.deploy.k8s_schemas import CUSTOM, custom_problems
from tests.deploy.projects import package

ENV = """\
deploy:
  production:
    model: clf
    target: kubernetes
    strategy:
      canary:
        steps: [{weight: 10}, {pause: 30s}, {weight: 50}, {pause: 30s}, {weight: 100}]
    kubernetes:
      namespace: ml
      secret_env: [CONVEYOR_DB]
"""
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.fixture
def proj(project: Project) -> Project:
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(ENV)
    return project


def load(folder: Path) -> dict[str, dict[str, object]]:
    """The rendered files by name, parsed."""
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def test_render_writes_valid_manifests_of_the_deployed_version(proj: Project) -> None:
    result = proj.run("k8s", "render", "production", "--out", "k8s")
    assert result.code == 1 and "points at no version yet" in result.err
    assert "conveyor deploy clf/N --env production" in result.err and "Traceback" not in result.err

    proj.ok("deploy", "clf/1", "--env", "production")
    out = proj.ok("k8s", "render", "production", "--out", "k8s")
    assert "production: clf version 1" in out and "Rollout clf-production" in out
    files = load(proj.root / "k8s")
    assert sorted(files) == [
        "analysistemplate-clf-production-analysis.yaml",
        "configmap-clf-production-config.yaml",
        "horizontalpodautoscaler-clf-production.yaml",
        "poddisruptionbudget-clf-production.yaml",
        "rollout-clf-production.yaml",
        "service-clf-production.yaml",
        "servicemonitor-clf-production.yaml",
    ]
    text = (proj.root / "k8s" / "rollout-clf-production.yaml").read_text()
    assert text.startswith("# Rendered by `conveyor k8s render production`")
    assert "&id" not in text and "*id" not in text  # no YAML aliases: every step spelt out

    # the core kinds, as the docs run it: kubernetes-validate, strict, offline
    core = [
        str(proj.root / "k8s" / name)
        for name, m in files.items()
        if (m["apiVersion"], m["kind"]) not in CUSTOM
    ]
    assert len(core) == 4
    run = subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", *core], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # the custom resources against their projects' CRD schemas
    for name, m in files.items():
        if (m["apiVersion"], m["kind"]) in CUSTOM:
            assert custom_problems(m) == [], name

    rollout = files["rollout-clf-production.yaml"]
    image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "conveyor-clf:1"
    template = files["analysistemplate-clf-production-analysis.yaml"]
    url = template["spec"]["metrics"][0]["provider"]["web"]["url"]  # type: ignore[index]
    assert url == "http://clf-production.ml.svc.cluster.local:8080/deployments/production"


def test_a_rollout_on_renders_its_candidate_and_version_picks_any(proj: Project) -> None:
    proj.ok("deploy", "clf/1", "--env", "production")
    proj.ok("deploy", "clf/2", "--env", "production")
    assert "clf version 2" in proj.ok("k8s", "render", "production", "--out", "k8s")
    out = proj.ok("k8s", "render", "production", "--out", "k8s", "--version", "1",
                  "--image", "reg.example/clf:{version}")  # fmt: skip
    assert "clf version 1" in out
    rollout = load(proj.root / "k8s")["rollout-clf-production.yaml"]
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example/clf:1"  # type: ignore[index]
    result = proj.run("k8s", "render", "production", "--out", "k8s", "--version", "9")
    assert result.code == 2 and "Traceback" not in result.err


def test_a_render_removes_the_files_its_last_render_wrote_and_no_others(proj: Project) -> None:
    proj.ok("deploy", "clf/1", "--env", "production")
    proj.ok("k8s", "render", "production", "--out", "k8s")
    mine = proj.write("k8s/namespace.yaml", "apiVersion: v1\nkind: Namespace\n")
    text = (
        (proj.root / "conveyor.yaml")
        .read_text()
        .replace("      secret_env: [CONVEYOR_DB]\n", "      argo: false\n")
    )
    proj.write("conveyor.yaml", text)
    proj.ok("k8s", "render", "production", "--out", "k8s")
    names = sorted(p.name for p in (proj.root / "k8s").glob("*.yaml"))
    assert "deployment-clf-production.yaml" in names and mine.name in names
    assert not [n for n in names if n.startswith(("rollout-", "analysistemplate-"))]


def test_mistakes_are_errors_not_tracebacks(proj: Project) -> None:
    result = proj.run("k8s", "render", "prodution", "--out", "k8s")
    assert result.code == 2 and "did you mean 'production'" in result.err
    proj.write("afile", "x")
    proj.ok("deploy", "clf/1", "--env", "production")
    result = proj.run("k8s", "render", "production", "--out", "afile")
    assert result.code == 1 and "is a file, not a folder" in result.err
    result = proj.run("k8s", "render", "production")
    assert result.code == 2 and "--out" in result.err


def test_apply_says_kubectl_is_missing_and_writes_nothing(
    proj: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.ok("deploy", "clf/1", "--env", "production")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = proj.run("k8s", "apply", "production")
    assert result.code == 1, result.err
    assert "kubectl is not on PATH: nothing was applied" in result.err
    assert "conveyor k8s render ENV --out DIR" in result.err and "Traceback" not in result.err
    assert not (proj.root / ".conveyor" / "tmp" / "k8s").exists()


def test_apply_runs_kubectl_apply_on_the_rendered_folder(
    proj: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.ok("deploy", "clf/1", "--env", "production")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text('#!/bin/sh\necho "kubectl $*"\n')
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (proj.root / "manifests").mkdir()
    (proj.root / "manifests" / "someone-elses.yaml").write_text("kind: Secret\n")
    out = proj.ok("k8s", "apply", "production", "--dir", "manifests")
    assert "Applied production: clf version 1" in out
    given = out.split("kubectl apply ", 1)[1].splitlines()[0].split()
    rendered = sorted(p.name for p in (proj.root / "manifests").glob("*.yaml"))
    rendered.remove("someone-elses.yaml")
    assert given[::2] == ["-f"] * 7  # the 7 files rendered, each by name
    assert sorted(Path(f).name for f in given[1::2]) == rendered

    kubectl.write_text('#!/bin/sh\necho "error: no matches for kind Rollout" >&2\nexit 1\n')
    result = proj.run("k8s", "apply", "production", "--dir", "manifests")
    assert result.code == 1 and "failed (exit 1): error: no matches for kind Rollout" in result.err
    assert "kubectl apply of the 7 files in" in result.err
    assert "CRDs of Argo Rollouts" in result.err and "Traceback" not in result.err


def test_a_render_keeps_another_environments_files_in_the_same_folder(tmp_path: Path) -> None:
    from conveyor.deploy.k8s_flows import HEADER, write

    def manifest(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}

    staging = write(tmp_path, [manifest("clf-staging")], HEADER.format(env="staging"))
    write(tmp_path, [manifest("clf-production")], HEADER.format(env="production"))
    write(tmp_path, [manifest("clf-production")], HEADER.format(env="production"))
    assert all(path.exists() for path in staging)
    assert len(list(tmp_path.glob("*.yaml"))) == 2
