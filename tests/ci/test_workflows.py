"""`conveyor ci init`: the workflow files for GitHub Actions, GitLab CI and Jenkins.

The GitHub and GitLab files are validated against those systems' JSON schemas with
check-jsonschema's built-in (vendored, offline) copies; actionlint cannot be installed here (its
package downloads a binary). Jenkins has no offline validator: its file is checked as text.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from conveyor.ci.workflows import install_commands, render
from tests.conftest import Project


def validate(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def steps_running(job: dict[str, Any], command: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("run", "").strip() == command]


def test_github_workflow_is_valid_and_runs_ci_on_pull_requests_release_on_main(
    project: Project,
) -> None:
    project.write("requirements.txt", "scikit-learn\n")
    out = project.ok("ci", "init", "github")
    path = project.root / ".github/workflows/conveyor.yml"
    assert "wrote .github/workflows/conveyor.yml" in out and "Next steps" in out
    checked = validate(path, "vendor.github-workflows")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    text = path.read_text()
    assert not re.search(r"@[a-z_]+@", text)  # every placeholder filled
    doc = yaml.safe_load(text)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}
    (job,) = doc["jobs"].values()
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert uses["actions/checkout"]["with"]["fetch-depth"] == 0
    assert uses["actions/setup-python"]["with"] == {"python-version": "3.11", "cache": "pip"}
    restore, save = uses["actions/cache/restore"], uses["actions/cache/save"]
    assert restore["with"]["path"] == save["with"]["path"] == ".conveyor/cache"
    assert "hashFiles('conveyor.lock', '**/*.cvy')" in restore["with"]["key"]
    assert "always()" in save["if"]
    assert uses["actions/upload-artifact"]["with"]["path"] == "reports/"

    (ci,) = steps_running(job, "conveyor ci")
    (release,) = steps_running(job, "conveyor ci --release")
    assert ci["if"] == "github.event_name == 'pull_request'"
    assert release["if"] == "github.event_name == 'push'"  # push only runs for main
    steps = job["steps"]
    assert steps.index(restore) < steps.index(ci) < steps.index(save)
    (install,) = [s for s in steps if s.get("name") == "Install"]
    assert install["run"].splitlines() == [
        "python -m pip install --upgrade pip",
        "pip install -r requirements.txt",
        'pip install "conveyor[all]==0.1.0"',
    ]
    (comment,) = [s for s in steps if "conveyor ci comment" in s.get("run", "")]
    assert comment["run"] == "conveyor ci comment --provider github --file reports/report.md"
    assert "pull_request" in comment["if"] and "always()" in comment["if"]
    assert comment["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    summary = [s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and "reports/gates.md" in summary[0]["run"]


def test_gitlab_ci_is_valid_and_runs_ci_on_merge_requests_release_on_default_branch(
    project: Project,
) -> None:
    project.ok("ci", "init", "gitlab", "--python", "3.12")
    path = project.root / ".gitlab-ci.yml"
    checked = validate(path, "vendor.gitlab-ci")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    doc = yaml.safe_load(path.read_text())
    mr_rule = {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}
    main_rule = {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}
    assert doc["workflow"]["rules"] == [mr_rule, main_rule]
    assert doc["default"]["image"] == "python:3.12"
    assert doc["variables"]["GIT_DEPTH"] == "0"
    base = doc[".conveyor"]
    (store,) = [c for c in base["cache"] if ".conveyor/cache/" in c["paths"]]
    assert store["when"] == "always" and store["fallback_keys"] == ["conveyor-$CI_DEFAULT_BRANCH"]
    assert base["artifacts"]["reports"]["junit"] == "reports/gates.junit.xml"
    assert base["artifacts"]["when"] == "always"
    assert base["before_script"][-1] == 'pip install "conveyor[all]==0.1.0"'  # no requirements.txt

    jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
    assert jobs["conveyor"]["rules"] == [mr_rule] and jobs["conveyor"]["script"] == ["conveyor ci"]
    assert jobs["release"]["rules"] == [main_rule]
    assert jobs["release"]["script"] == ["conveyor ci --release"]
    assert all(job["extends"] == ".conveyor" for job in jobs.values())
    assert "conveyor ci comment --provider gitlab" in jobs["conveyor"]["after_script"][0]


def test_jenkinsfile_structure(project: Project) -> None:
    project.write("pyproject.toml", '[project]\nname = "churn"\ndependencies = ["conveyor>=0.1"]\n')
    project.ok("ci", "init", "jenkins", "--branch", "trunk")
    text = (project.root / "Jenkinsfile").read_text()
    assert not re.search(r"@[a-z_]+@", text)
    assert text.count("{") == text.count("}")
    assert re.search(
        r"pipeline \{\n\s+// .*\n\s+agent \{\n\s+docker \{ image 'python:3.11' \}", text
    )
    stages = re.findall(r"stage\('([^']+)'\) \{\n\s+(.*)\n", text)
    assert stages == [
        ("Install", "steps {"),
        ("conveyor ci", "when { changeRequest() }"),
        ("conveyor ci --release", "when { branch 'trunk' }"),
    ]
    assert "sh '.venv/bin/conveyor ci'\n" in text
    assert "sh '.venv/bin/conveyor ci --release'\n" in text
    assert "pip install -e ." in text and "conveyor==" not in text  # the project names it
    post = text[text.index("post {") :]
    assert "junit allowEmptyResults: true, testResults: 'reports/gates.junit.xml'" in post
    assert "archiveArtifacts artifacts: 'reports/**'" in post
    assert "if (env.CHANGE_ID && fileExists('reports/report.md'))" in post
    assert "credentialsId: 'github-token', variable: 'GITHUB_TOKEN'" in post
    assert "conveyor ci comment --provider github" in post


def test_an_existing_file_is_replaced_only_with_force(project: Project) -> None:
    project.write(".gitlab-ci.yml", "test:\n  script: [pytest]\n")
    result = project.run("ci", "init", "gitlab")
    assert result.code == 2
    assert ".gitlab-ci.yml already exists" in result.err and "--force" in result.err
    assert (project.root / ".gitlab-ci.yml").read_text() == "test:\n  script: [pytest]\n"

    printed = project.ok("ci", "init", "gitlab", "--stdout")
    assert "conveyor ci --release" in printed
    assert (project.root / ".gitlab-ci.yml").read_text() == "test:\n  script: [pytest]\n"

    project.ok("ci", "init", "gitlab", "--force")
    assert "conveyor ci --release" in (project.root / ".gitlab-ci.yml").read_text()


def test_bad_python_version_and_default_branch(project: Project) -> None:
    result = project.run("ci", "init", "github", "--python", "latest")
    assert result.code == 1 and "--python latest: expected a version such as 3.11" in result.err
    project.git("commit", "-q", "--allow-empty", "-m", "first")
    project.git("branch", "-m", "main", "master")
    text = project.ok("ci", "init", "github", "--stdout")
    assert "    branches: [master]\n" in text


def test_install_commands_follow_the_projects_files() -> None:
    pin = 'pip install "conveyor[all]==0.1.0"'
    upgrade = "python -m pip install --upgrade pip"
    assert install_commands(None, None) == [upgrade, pin]
    assert install_commands("numpy\nconveyor[s3]>=0.1\n", "x") == [
        upgrade,
        "pip install -r requirements.txt",
    ]
    assert install_commands("numpy\nconveyor-extras\n", None)[-1] == pin  # another package
    assert install_commands(None, 'dependencies = ["conveyor"]') == [upgrade, "pip install -e ."]
    text = render("github", python="3.13", branch="dev", install=["make install"])
    assert '          python-version: "3.13"\n' in text and "cache:" not in text.split("Install")[0]
    assert "        run: |\n          make install\n" in text


@pytest.mark.parametrize("system", ["github", "gitlab"])
def test_the_schemas_catch_a_broken_file(
    tmp_path: Path, system: Literal["github", "gitlab"]
) -> None:
    """The validator really checks: a misspelt key fails it (no silent pass)."""
    text = render(system, python="3.11", branch="main", install=["pip install ."])
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("runs-on:", "runs_on:").replace("  script:", "  scripts:"))
    schema = "vendor.github-workflows" if system == "github" else "vendor.gitlab-ci"
    assert validate(broken, schema).returncode == 1
