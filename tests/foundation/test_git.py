"""The git queries conveyor makes: parsing status output, and a real repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation import git
from conveyor.foundation.errors import GitError
from tests.conftest import Project


def test_status_names_commit_branch_and_whether_tracked_files_changed() -> None:
    clean = "# branch.oid 0123abcd\n# branch.head main\n"
    assert git.parse_status(clean) == git.WorkState("0123abcd", "main", False)
    changed = clean + "1 .M N... 100644 100644 100644 a b data.csv\n"
    assert git.parse_status(changed).dirty
    fresh = "# branch.oid (initial)\n# branch.head (detached)\n"
    assert git.parse_status(fresh) == git.WorkState(None, None, False)
    assert git.parse_status("# branch.head feature/with space\n").branch == "feature/with space"


def test_work_state_and_diff_of_a_real_repository(project: Project) -> None:
    assert git.work_state(project.root) == git.WorkState(None, "main", False)
    project.write("data.csv", "a,b\n")
    project.git("add", "data.csv")
    project.git("commit", "-q", "-m", "data")
    head = project.git("rev-parse", "HEAD").strip()
    assert git.work_state(project.root) == git.WorkState(head, "main", False)
    assert git.diff_head(project.root) == b""
    project.write("data.csv", "a,b\n1,2\n")
    assert git.work_state(project.root, timeout=30) == git.WorkState(head, "main", True)
    assert b"+1,2" in git.diff_head(project.root)


def test_outside_a_repository_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="git status"):
        git.work_state(tmp_path)
