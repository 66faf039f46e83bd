"""``conveyor init`` and ``.conveyor/.gitignore``: conveyor's local state never reaches git through
an ordinary ``git add -A``, in new projects and in projects an older conveyor made."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation import gitignore
from tests.conftest import Project

# What conveyor <= 0.x wrote: no models/, no predictions/.
OLD_GITIGNORE = """\
# conveyor's local state: never commit these.
/cache/
/tmp/
/state.db*
/lock
/config.local
/logs/
/spool/
/conveyor.db*
/exps/
/queue/
"""


def _fill_local_state(root: Path) -> None:
    """Put something in each folder that holds one clone's own state, as conveyor does."""
    from conveyor.serve.predlog import PredictionLog
    from conveyor.serve.server import default_log_dir

    model = root / ".conveyor" / "models" / ("ab" * 32)
    model.mkdir(parents=True)
    (model / "MLmodel").write_text("flavor: sklearn\n")
    (model / "model.skops").write_bytes(b"\0binary")
    folder = default_log_dir(root)
    assert folder is not None
    log = PredictionLog(Path(folder), interval=0.01)  # the server's own writer
    log.record("r1", "clf", "1", "infer", {"age": [41]}, [1])
    log.close()
    assert any(Path(folder).rglob("*.jsonl"))
    (root / ".conveyor" / "config.local").write_text("db:\n  url: sqlite:///x.db\n")


def _committed_under_control(project: Project) -> list[str]:
    project.git("add", "-A")
    status = project.git("status", "--porcelain", "--untracked-files=all")
    return sorted(line[3:] for line in status.splitlines() if ".conveyor/" in line)


def test_a_new_project_keeps_models_and_predictions_out_of_git(project: Project) -> None:
    _fill_local_state(project.root)
    assert _committed_under_control(project) == [".conveyor/.gitignore", ".conveyor/config"]


def test_the_next_command_completes_an_older_projects_gitignore(project: Project) -> None:
    ignore = project.root / ".conveyor" / ".gitignore"
    ignore.write_text(OLD_GITIGNORE + "my-notes/\n")  # a user's line, kept
    _fill_local_state(project.root)
    project.ok("status")
    text = ignore.read_text()
    assert text.startswith(OLD_GITIGNORE + "my-notes/\n")
    assert "/models/\n" in text and "/predictions/\n" in text
    assert _committed_under_control(project) == [".conveyor/.gitignore", ".conveyor/config"]
    project.ok("status")
    assert ignore.read_text() == text  # nothing added twice


def test_init_again_completes_the_gitignore_and_keeps_the_users_lines(project: Project) -> None:
    ignore = project.root / ".conveyor" / ".gitignore"
    ignore.write_text("predictions\n/cache/\nscratch/")  # no final newline
    again = project.run("init")
    assert again.code == 1 and "already exists" in again.err
    assert "/models/" in again.err  # it says what it added
    lines = ignore.read_text().splitlines()
    assert lines[:3] == ["predictions", "/cache/", "scratch/"]
    assert "/models/" in lines and "/predictions/" not in lines  # `predictions` already counts
    ignore.write_text("scratch/\n")
    forced = project.run("init", "--force")
    assert forced.code == 0 and "added /cache/" in forced.err
    assert ignore.read_text().splitlines()[0] == "scratch/"
    assert gitignore.missing(ignore.read_text()) == []


def test_missing_is_pure_and_tolerant_of_slashes() -> None:
    assert gitignore.missing(gitignore.text()) == []
    assert gitignore.missing("models/\n/predictions\nfeedback\nmonitor\n" + OLD_GITIGNORE) == []
    assert gitignore.missing(OLD_GITIGNORE) == [
        "/models/",
        "/predictions/",
        "/feedback/",
        "/monitor/",
    ]


def test_a_gitignore_linking_elsewhere_is_neither_read_nor_copied(
    project: Project, tmp_path: Path
) -> None:
    """A repository may commit .conveyor/.gitignore as a link to a secret: its text must not
    land in a file the note tells the user to commit."""
    secret = tmp_path / "environ"
    secret.write_text("AWS_SECRET_ACCESS_KEY=wJalr-not-for-git\n")
    ignore = project.root / ".conveyor" / ".gitignore"
    ignore.unlink()
    ignore.symlink_to(secret)
    result = project.run("status")
    assert result.code == 2 and ".conveyor/.gitignore is a symbolic link" in result.err
    assert ignore.is_symlink() and secret.read_text() == "AWS_SECRET_ACCESS_KEY=wJalr-not-for-git\n"
    assert "wJalr" not in result.out + result.err


def test_init_twice_is_refused_with_its_own_error(project: Project) -> None:
    from conveyor.data.init import AlreadyAProject, init

    with pytest.raises(AlreadyAProject, match="already exists: this is a conveyor project"):
        init(project.root)
    assert init(project.root, force=True).reinitialised
