"""The run-cache: what a stage may be restored from instead of run again."""

from __future__ import annotations

from tests.conftest import Project


def test_a_persistent_out_is_never_restored_from_the_run_cache(project: Project) -> None:
    project.write("params.yaml", "p: 1\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: echo ${p} >> log.txt\n    params: [p]\n"
        "    outs:\n      - log.txt: {persist: true}\n",
    )
    project.ok("run")
    project.ok("run", "-S", "p=2")
    out = project.ok("run")
    assert "restored" not in out
    assert (project.root / "log.txt").read_text().split() == ["1", "2", "1"]
