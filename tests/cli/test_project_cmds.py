"""Secrets and the project's settings: refused in the committed config, kept in the git-ignored
local one or the environment, and never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project

URL = "postgresql://ci:S3cr3t-pw@db.example.invalid:5432/runs"
MASKED = "postgresql://ci:***@db.example.invalid:5432/runs"


def test_a_password_in_db_url_is_refused_in_the_committed_config(project: Project) -> None:
    config = project.root / ".conveyor" / "config"
    before = config.read_text()
    refused = project.run("config", "db.url", URL)
    assert refused.code == 2
    assert refused.err.count("\n") == 2  # one line, one hint; no traceback
    assert "db.url" in refused.err and ".conveyor/config" in refused.err
    assert "--local" in refused.err and "CONVEYOR_DB" in refused.err
    assert "S3cr3t" not in refused.err + refused.out
    assert config.read_text() == before
    project.ok("config", "db.url", "postgresql://ci@db.example.invalid/runs")  # no password


@pytest.mark.parametrize(
    "key", ["remote.s3.secret", "remote.s3.key", "remote.s3.session_token", "remote.s3.password"]
)
def test_secret_keys_are_refused_in_the_committed_config(project: Project, key: str) -> None:
    project.ok("remote", "add", "s3", "s3://bucket/path")
    refused = project.run("config", key, "AKIA-not-for-git")
    assert refused.code == 2 and "--local" in refused.err
    assert "AKIA" not in (project.root / ".conveyor" / "config").read_text()


def test_secrets_go_local_are_git_ignored_and_printed_masked(project: Project) -> None:
    project.ok("config", "--local", "db.url", URL)
    project.ok("remote", "add", "s3", "s3://bucket/path", "--default")
    project.ok("config", "--local", "remote.s3.secret", "wJalr-top-secret")
    local = project.root / ".conveyor" / "config.local"
    assert "S3cr3t-pw" in local.read_text() and local.stat().st_mode & 0o077 == 0
    assert project.git("check-ignore", ".conveyor/config.local").strip()
    project.git("add", "-A")
    staged = project.git("diff", "--cached", "--name-only")
    assert "config.local" not in staged and "S3cr3t" not in project.git("diff", "--cached")
    listed = project.ok("config", "--list")
    assert f"db.url={MASKED}" in listed and "remote.s3.secret=***" in listed
    assert "S3cr3t" not in listed and "wJalr" not in listed
    assert project.ok("config", "db.url").strip() == MASKED
    assert project.ok("config", "remote.s3.secret").strip() == "***"
    whole = project.ok("config", "remote.s3")
    assert "secret=***" in whole and "url=s3://bucket/path" in whole


def test_a_remote_url_with_a_password(project: Project) -> None:
    url = "https://user:hunter2@files.example.invalid/store"
    refused = project.run("remote", "add", "web", url)
    assert refused.code == 2 and "--local" in refused.err and "hunter2" not in refused.err
    assert "web" not in project.ok("remote", "list")
    project.ok("remote", "add", "web", "https://files.example.invalid/store")
    refused = project.run("remote", "add", "web", url, "--force")
    assert refused.code == 2  # and the remote it would have replaced is still there
    assert "web\thttps://files.example.invalid/store" in project.ok("remote", "list")
    project.ok("remote", "remove", "web")
    added = project.ok("remote", "add", "web", url, "--local")
    assert "hunter2" not in added and "user:***@files" in added
    assert "web\thttps://user:***@files.example.invalid/store" in project.ok("remote", "list")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("s3://AKIAEXAMPLE:wJal/K7MDENG+bPx@bucket/path", "K7MDENG"),  # '/' in the secret
        ("postgresql+psycopg://u:hunter2@db.example.invalid/runs", "hunter2"),
        ("https://files.example.invalid/store?user=u&password=hunter2", "hunter2"),
        ("https://acct.example.invalid/c?sv=2020-01&sig=c2VjcmV0%2Fsig", "c2VjcmV0"),
    ],
)
def test_every_form_of_a_password_in_a_remote_url(project: Project, url: str, secret: str) -> None:
    refused = project.run("remote", "add", "web", url)
    assert refused.code == 2 and "--local" in refused.err
    assert secret not in refused.err + refused.out
    assert secret not in (project.root / ".conveyor" / "config").read_text()
    added = project.ok("remote", "add", "web", url, "--local")
    listed = project.ok("remote", "list")
    assert secret not in added + listed and "***" in listed


def test_a_database_url_in_an_error_is_masked(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_DB", "mysql://svc:pa55word@db.example.invalid/runs")
    failed = project.run("runs", "list")
    assert failed.code == 2 and "mysql://svc:***@db.example.invalid/runs" in failed.err
    assert "pa55word" not in failed.err + failed.out


def test_an_unreachable_database_is_named_without_its_password(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A closed port on loopback: the connection is refused at once, no server needed.
    monkeypatch.setenv("CONVEYOR_DB", "postgresql://svc:pa55word@127.0.0.1:1/runs")
    failed = project.run("runs", "list")
    assert failed.code != 0 and "Traceback" not in failed.err
    assert "svc:***@127.0.0.1" in failed.err and "pa55word" not in failed.err + failed.out


def test_a_secret_already_in_the_committed_config_is_warned_about(project: Project) -> None:
    config = project.root / ".conveyor" / "config"
    config.write_text(f"db:\n  url: {URL}\n")  # by hand, or by an older conveyor
    listed = project.run("config", "--list")
    assert listed.code == 0 and f"db.url={MASKED}" in listed.out
    assert "warning:" in listed.err and "db.url" in listed.err and "--local" in listed.err
    assert "S3cr3t" not in listed.out + listed.err
    project.ok("config", "--unset", "db.url")
    project.ok("config", "--local", "db.url", URL)
    assert "warning" not in project.run("config", "--list").err
