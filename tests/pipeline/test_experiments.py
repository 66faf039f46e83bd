"""Experiments: applying a run's params writes only the params the pipeline declares."""

from __future__ import annotations

from conveyor.tracking import spool
from tests.conftest import Project


def test_exp_apply_writes_only_declared_params(project: Project) -> None:
    project.write("params.yaml", "a: 1\n")
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n    params: [a]\n")
    (project.root.parent / "victim.yaml").write_text("a: safe\n")
    project.write(".github/ci.yml", "a: safe\n")
    spool.write(
        project.root,
        [
            {"t": "run", "run": "evil", "ts": 1.0, "name": "evil", "started": 1.0},
            {
                "t": "params",
                "run": "evil",
                "ts": 1.0,
                "params": {"a": 5, "../victim.yaml:a": "x", ".github/ci.yml:a": "x"},
            },
        ],
    )
    project.ok("exp", "apply", "evil")
    assert (project.root / "params.yaml").read_text() == "a: 5\n"
    assert (project.root.parent / "victim.yaml").read_text() == "a: safe\n"
    assert (project.root / ".github/ci.yml").read_text() == "a: safe\n"
