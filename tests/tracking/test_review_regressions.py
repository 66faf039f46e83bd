"""Regressions found in review: each test failed before its fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import conveyor
from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.tracking import api, spool
from conveyor.tracking.db import opened
from tests.conftest import Project


@pytest.fixture
def here(in_project: Project) -> Project:
    return in_project


def test_a_nan_metric_does_not_block_the_store(here: Project) -> None:
    here.write(
        "ev.py", 'import json\njson.dump({"auc": float("nan"), "n": 3}, open("m.json", "w"))\n'
    )
    here.write(
        "conveyor.yaml", f"stages:\n  ev:\n    cmd: {sys.executable} ev.py\n    metrics: [m.json]\n"
    )
    here.ok("run")
    rows = json.loads(here.ok("runs", "list", "--json"))
    assert rows[0]["metrics"] == {"m.n": 3.0}


def test_a_spool_file_the_store_refuses_is_set_aside(here: Project) -> None:
    with conveyor.start_run(name="good") as run:
        conveyor.log_metric("x", 1.0)
    spool.write(here.root, [{"t": "mystery", "run": "r-bad", "ts": 1.0}])
    with pytest.warns(RuntimeWarning, match="moved to spool/rejected"), opened(here.root) as store:
        assert [r["id"] for r in store.runs()] == [run.id]
    assert spool.pending(here.root) == []
    assert len(list((here.root / ".conveyor" / "spool" / "rejected").iterdir())) == 1


def test_an_artifact_survives_gc_while_its_run_is_open(here: Project) -> None:
    here.write("model.bin", b"x" * 1000)
    with conveyor.start_run():
        ref = conveyor.log_artifact("model.bin")
        here.ok("gc")
        obj = here.root / ".conveyor" / "cache" / "objects" / ref[:2] / ref[2:]
        assert obj.exists()


def test_numpy_steps_are_numbers(here: Project) -> None:
    with conveyor.start_run() as run:
        for step in np.arange(12):
            conveyor.log_metric("loss", 1.0 / (int(step) + 1), step=step)
        with pytest.raises(ConveyorError, match="step must be a whole number"):
            conveyor.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
    with opened(here.root) as store:
        assert store.run(run.id)["metrics"]["loss"] == pytest.approx(1 / 12)


def test_start_run_after_a_bare_log_call(here: Project) -> None:
    conveyor.log_params({"a": 1})
    implicit = api._current
    with conveyor.start_run(name="explicit") as run:
        conveyor.log_metric("m", 2.0)
    assert implicit is not None and implicit.id != run.id
    with opened(here.root) as store:
        assert store.run(implicit.id)["status"] == "finished"
        assert store.run(run.id)["metrics"] == {"m": 2.0}


def test_exp_apply_writes_only_declared_params(here: Project) -> None:
    here.write("params.yaml", "a: 1\n")
    here.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n    params: [a]\n")
    (here.root.parent / "victim.yaml").write_text("a: safe\n")
    here.write(".github/ci.yml", "a: safe\n")
    spool.write(
        here.root,
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
    here.ok("exp", "apply", "evil")
    assert (here.root / "params.yaml").read_text() == "a: 5\n"
    assert (here.root.parent / "victim.yaml").read_text() == "a: safe\n"
    assert (here.root / ".github/ci.yml").read_text() == "a: safe\n"


def test_a_persistent_out_is_never_restored_from_the_run_cache(here: Project) -> None:
    here.write("params.yaml", "p: 1\n")
    here.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: echo ${p} >> log.txt\n    params: [p]\n"
        "    outs:\n      - log.txt: {persist: true}\n",
    )
    here.ok("run")
    here.ok("run", "-S", "p=2")
    out = here.ok("run")
    assert "restored" not in out
    assert (here.root / "log.txt").read_text().split() == ["1", "2", "1"]


def test_a_failed_run_records_no_stale_metrics_and_a_typo_no_run(here: Project) -> None:
    here.write("params.yaml", "x: 1\n")
    here.write(
        "s.py",
        "import json, sys, yaml\n"
        "x = yaml.safe_load(open('params.yaml'))['x']\n"
        "sys.exit(1) if x < 0 else json.dump({'v': x}, open('m.json', 'w'))\n",
    )
    here.write(
        "conveyor.yaml",
        f"stages:\n  s:\n    cmd: {sys.executable} s.py\n    params: [x]\n    metrics: [m.json]\n",
    )
    here.ok("run", "-n", "good")
    assert here.run("run", "-S", "x=-1", "-n", "bad").code == 1
    assert here.run("run", "nosuchstage").code == 2
    rows = {r["name"]: r for r in json.loads(here.ok("runs", "list", "--json"))}
    assert set(rows) == {"good", "bad"}
    assert rows["good"]["metrics"] == {"m.v": 1.0} and rows["bad"]["metrics"] == {}


def test_a_frozen_stage_with_a_new_out_does_not_crash(here: Project) -> None:
    here.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    here.ok("run")
    here.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: echo a > a.txt; echo b > b.txt\n    outs: [a.txt, b.txt]\n"
        "    frozen: true\n",
    )
    (here.root / "a.txt").unlink()
    here.ok("run")
    assert (here.root / "a.txt").read_text() == "a\n"


def test_tune_values_reach_trials_as_json(tmp_path: Path) -> None:
    from conveyor.pipeline.params import parse_scalar
    from conveyor.tune.study import override

    for value in (None, True, 0.1, 5, "yes", "b"):
        _, _, text = override("k", value).partition("=")
        assert parse_scalar(text) == value


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"type": "int", "low": 1, "high": 9, "step": 0.5}, "whole number above 0"),
        ({"type": "float", "low": 0, "high": 1, "step": 0}, "a number above 0"),
    ],
)
def test_tune_steps_are_checked(space: dict[str, object], message: str) -> None:
    from conveyor.tune.spec import parse

    raw = {"objective": {"metric": "m"}, "space": {"x": space}}
    with pytest.raises(ConfigError, match=message):
        parse(raw, "f:1", "p")
    with pytest.raises(ConfigError, match=r"tune\.seed"):
        parse(
            {
                "objective": {"metric": "m"},
                "space": {"x": {"type": "int", "low": 1, "high": 2}},
                "seed": "abc",
            },
            "f:1",
            "p",
        )
    with pytest.raises(ConfigError, match=r"tune\.study"):
        parse(
            {
                "objective": {"metric": "m"},
                "space": {"x": {"type": "int", "low": 1, "high": 2}},
                "study": "../x",
            },
            "f:1",
            "p",
        )


def test_an_unreachable_store_keeps_the_spool(here: Project, pg_url: str, pg_db: str) -> None:
    """A database that goes away mid-drain is no reason to reject records (real PostgreSQL)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from conveyor.tracking.store import SqlStore
    from tests.conftest import _libpq

    store = SqlStore(pg_db)
    name = make_url(pg_db).database
    spool.write(here.root, [{"t": "tags", "run": "r-1", "tags": {"a": "b"}, "ts": 1.0}])
    with psycopg.connect(_libpq(pg_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with pytest.raises(ConveyorError, match="cannot take the pending records"):
                spool.drain(here.root, store)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            store.close()
    assert len(spool.pending(here.root)) == 1
    assert not (here.root / ".conveyor" / "spool" / "rejected").exists()
