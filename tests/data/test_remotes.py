"""Opening a configured remote: the backend a URL gets, the remote a name (or default) picks."""

from __future__ import annotations

import grimp

from conveyor.data.remote_fsspec import FsspecRemote
from conveyor.data.remote_local import LocalRemote
from conveyor.data.remotes import open_remote
from conveyor.data.workspace import Workspace
from tests.conftest import Project


def test_a_folder_gets_the_local_remote_and_anything_else_fsspec(project: Project) -> None:
    project.ok("remote", "add", "store", "../store")
    project.ok("remote", "add", "url", f"file://{project.root.parent / 'other'}")
    project.ok("remote", "add", "memory", "memory://bucket/store")
    project.ok("config", "remote.store.auto_mkdir", "true")  # an fsspec option: ignored
    ws = Workspace.find(project.root)
    assert isinstance(open_remote(ws, "store"), LocalRemote)
    url = open_remote(ws, "url")
    assert isinstance(url, LocalRemote) and url.url == str(project.root.parent / "other")
    assert isinstance(open_remote(ws, "memory"), FsspecRemote)


# -- a configured remote that is not there, through the CLI ----------------------------------
def test_unknown_remote(project: Project) -> None:
    project.ok("remote", "add", "store", "../store")
    result = project.run("push", "-r", "stroe")
    assert result.code == 2
    assert "unknown remote 'stroe'; known: store" in result.err
    assert "did you mean 'store'?" in result.err
    assert "Traceback" not in result.err


def test_no_default_remote(project: Project) -> None:
    result = project.run("pull")
    assert result.code == 2
    assert "no remote given and no default remote set" in result.err
    assert "conveyor remote add --default NAME URL" in result.err
    project.ok("remote", "add", "store", "../store")
    result = project.run("push")
    assert result.code == 2
    assert "pass -r NAME, or set a default with `conveyor remote default NAME`" in result.err


def test_default_remote_that_was_removed(project: Project) -> None:
    project.ok("remote", "add", "store", "../store")
    project.ok("config", "core.remote", "gone")
    result = project.run("push")
    assert result.code == 2
    assert "unknown remote 'gone' (the default, core.remote)" in result.err


def test_the_interface_imports_no_backend_and_only_the_factory_picks_one() -> None:
    graph = grimp.build_graph("conveyor")
    backends = {"conveyor.data.remote_local", "conveyor.data.remote_fsspec"}
    assert not backends & graph.find_modules_directly_imported_by("conveyor.data.remote")
    pickers = set().union(*(graph.find_modules_that_directly_import(b) for b in backends))
    assert pickers <= {"conveyor.data.remotes"}
