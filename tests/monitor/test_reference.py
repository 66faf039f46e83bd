"""A monitor's reference named by a registered version (``alias:``) or a run (``run:``): the
training table as that run recorded it, read from the object cache, and following the alias
when it moves. A real project: a real pipeline run, a real registry."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.monitor.config import Source, monitor, source
from conveyor.monitor.reference import MonitorError, reference, seen
from tests.conftest import Project
from tests.deploy.projects import package

MAKE = """\
import sys, random
import yaml
shift = yaml.safe_load(open("params.yaml"))["shift"]
rng = random.Random(1)
with open("data/train.csv", "w") as out:
    out.write("x1,x2,y\\n")
    for _ in range(600):
        x1 = rng.gauss(shift, 1.0)
        out.write(f"{x1},{rng.expovariate(0.5)},{int(x1 > shift)}\\n")
"""
PIPELINE = f"""\
stages:
  prepare:
    cmd: {sys.executable} make.py
    deps: [make.py]
    params: [shift]
    outs: [data/train.csv]
monitor:
  production:
    reference: {{reference}}
    label: y
    window: {{{{rows: 100}}}}
"""


def configured(project: Project, reference_text: str) -> None:
    project.write("conveyor.yaml", PIPELINE.format(reference=reference_text))


def trained(project: Project, shift: float) -> str:
    """The pipeline run with ``shift``; the run's id."""
    project.write("params.yaml", f"shift: {shift}\n")
    project.ok("run")
    return json.loads(project.ok("runs", "list", "--json"))[0]["id"]


@pytest.fixture
def registered(project: Project) -> tuple[Project, str]:
    """clf version 1 from a run at shift 0, its production alias; the run's id."""
    project.write("make.py", MAKE)
    (project.root / "data").mkdir()
    configured(project, "alias:production")
    run = trained(project, 0.0)
    package(project.root, "pkg")
    project.ok("models", "register", "clf", "pkg", "--run", run)
    project.ok("models", "alias", "clf@production", "1")
    return project, run


def test_a_reference_text_is_a_file_an_alias_or_a_run() -> None:
    assert source("data/train.csv") == Source("file", "", "data/train.csv")
    assert source("data/a:b.csv").kind == "file"  # a colon after a slash: a file's name
    assert source("alias:production") == Source("alias", "production", "")
    assert source("run:3f2a:data/train.csv") == Source("run", "3f2a", "data/train.csv")
    with pytest.raises(ConfigError, match="'s3' is not a kind of reference"):
        source("s3:bucket/train.csv")
    with pytest.raises(ConfigError, match="name the alias"):
        source("alias:")


def test_an_unknown_kind_of_reference_is_a_config_error_with_its_line(project: Project) -> None:
    configured(project, "s3:bucket/train.csv")
    with pytest.raises(ConfigError, match=r"conveyor.yaml:\d+.*'s3' is not a kind of reference"):
        monitor(project.root, "production")


def test_an_alias_names_its_versions_training_data_as_its_run_recorded_it(
    registered: tuple[Project, str],
) -> None:
    project, _ = registered
    recorded = (project.root / "data" / "train.csv").read_bytes()
    project.write("data/train.csv", "x1,x2,y\n9,9,1\n")  # the workspace moved on: no matter
    spec = monitor(project.root, "production")
    found = reference(project.root, spec, "clf")
    assert found.digest == hashlib.sha256(recorded).hexdigest()
    assert found.profile.rows == 600 and found.features == ("x1", "x2")
    x1 = found.profile.features["x1"]
    assert abs(x1.sum / x1.count) < 0.2  # trained at shift 0


def test_the_reference_follows_the_alias_to_a_retrained_version(
    registered: tuple[Project, str],
) -> None:
    project, _ = registered
    spec = monitor(project.root, "production")
    first = reference(project.root, spec, "clf")
    before = seen(project.root, spec, "clf")
    run = trained(project, 3.0)  # the world moved; a retrain on the new data
    project.ok("models", "register", "clf", "pkg", "--run", run)
    assert seen(project.root, spec, "clf") == before  # not promoted yet: the same reference
    project.ok("models", "alias", "clf@production", "2")
    assert seen(project.root, spec, "clf") != before
    second = reference(project.root, spec, "clf")
    assert second.digest != first.digest
    x1 = second.profile.features["x1"]
    assert abs(x1.sum / x1.count - 3.0) < 0.2


def test_a_run_names_its_training_table_or_the_path_given(registered: tuple[Project, str]) -> None:
    project, run = registered
    for text in (f"run:{run[:8]}", f"run:{run}:data/train.csv"):
        configured(project, text)
        found = reference(project.root, monitor(project.root, "production"))
        assert found.profile.rows == 600, text


def test_what_cannot_be_a_reference_is_said(registered: tuple[Project, str]) -> None:
    project, run = registered
    configured(project, "alias:staging")
    with pytest.raises(MonitorError, match="clf has no alias 'staging' yet"):
        reference(project.root, monitor(project.root, "production"), "clf")
    configured(project, f"run:{run}:data/other.csv")
    with pytest.raises(MonitorError, match=r"recorded no data/other\.csv") as err:
        reference(project.root, monitor(project.root, "production"))
    assert err.value.hint == "its tables: data/train.csv"
    configured(project, "run:ffffffffffff")
    with pytest.raises(MonitorError, match="ffffffffffff"):
        reference(project.root, monitor(project.root, "production"))
    package(project.root, "bare")
    project.ok("models", "register", "clf", "bare")  # no --run: no lineage
    project.ok("models", "alias", "clf@production", "2")
    configured(project, "alias:production")
    with pytest.raises(MonitorError, match="registered without its run") as err:
        reference(project.root, monitor(project.root, "production"), "clf")
    assert err.value.hint is not None and "--run" in err.value.hint


def test_a_recorded_table_missing_from_the_cache_says_to_pull(
    registered: tuple[Project, str],
) -> None:
    project, _ = registered
    import shutil

    shutil.rmtree(project.root / ".conveyor" / "cache" / "objects")
    spec = monitor(project.root, "production")
    with pytest.raises(MonitorError, match="is not in the cache") as err:
        reference(project.root, spec, "clf")
    assert err.value.hint is not None and "conveyor pull" in err.value.hint


def test_a_recorded_hash_that_is_not_an_object_id_reads_nothing(
    registered: tuple[Project, str],
) -> None:
    """A lineage edited outside conveyor: its "hash" a path out of the cache."""
    from conveyor.data import recorded
    from conveyor.data.workspace import Workspace

    project, _ = registered
    secret = project.root.parent / "secret.csv"
    secret.write_text("x1,x2,y\n1,2,1\n")
    hostile = "../" * 8 + str(secret).lstrip("/")
    with Workspace(project.root) as ws:
        assert recorded.read(ws.odb, {"data/train.csv": hostile}, "data/train.csv") is None
        assert recorded.read(ws.odb, {"data": hostile + ".tree"}, "data/train.csv") is None
