"""A serving install (`pip install 'conveyor[serve]'`) holds no training stack: the serving
path, the registry and the monitor run with optuna, matplotlib, scipy, pandas, alembic and
scikit-learn refused at import (a meta-path hook in a sitecustomize), the monitor's verdicts
are a full install's, and what needs the rest says which extra to install.

The sizes, start-up times and memory of real installs: bench/install_size.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.deploy.projects import environment, package

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
TRAINING = ("optuna", "matplotlib", "scipy", "pandas", "alembic", "sklearn")
HOOK = """\
import sys

REFUSED = {refused!r}


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
"""
MONITOR = """
monitor:
  production:
    reference: data/rows.csv
    window: {rows: 120, min_rows: 30}
    interval: 1s
"""
TUNE = """
tune:
  objective: {metric: eval.f1, direction: maximize}
  space:
    train.C: {type: float, low: 0.001, high: 10, log: true}
  trials: 1
"""


def without(tmp: Path, refused: tuple[str, ...]) -> dict[str, str]:
    """An environment whose Python cannot import ``refused``."""
    hook = tmp / ("hook-" + "-".join(refused))
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK.format(refused=set(refused)))
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


SERVING = TRAINING


def conveyor(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONVEYOR, *args], cwd=root, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clf version 1 (python flavor: numpy only) as clf@production, deployed to production,
    which conveyor.yaml monitors; ``tab``, a package that takes a table."""
    import pandas as pd

    from conveyor import models

    root = tmp_path_factory.mktemp("serving") / "proj"
    root.mkdir()
    full = dict(os.environ)
    assert conveyor(root, full, "init").returncode == 0
    package(root, "v1")
    (root / "data").mkdir()
    rows = np.random.default_rng(0).normal(size=(300, 3))
    (root / "data" / "rows.csv").write_text(
        "input_0,input_1,input_2\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    )
    with (root / "conveyor.yaml").open("a") as f:
        f.write(environment() + MONITOR + TUNE)
    for args in (
        ("models", "register", "clf", "v1"),
        ("models", "alias", "clf@production", "1"),
        ("deploy", "clf/1", "--env", "production"),
    ):
        done = conveyor(root, full, *args)
        assert done.returncode == 0, done.stderr
    code = root / "src" / "tabmodel.py"
    code.write_text("class M:\n    def predict(self, x):\n        return x['a'] * 2\n\n"
                    "def load(folder):\n    return M()\n")  # fmt: skip
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    models.save(None, root / "tab", flavor="python", loader="tabmodel:load", code=[code],
                example=frame)  # fmt: skip
    return root


class Server:
    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [CONVEYOR, "serve", *args, "--port", "0"], cwd=root, env=env,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.said: list[str] = []  # what it printed before it listened (--env: the monitor)
        while True:
            line = self.proc.stderr.readline()
            found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if found:
                break
            assert line, "".join(self.said) + self.stop()
            self.said.append(line)
        self.url = f"http://127.0.0.1:{found.group(1)}"
        deadline = time.monotonic() + 60
        while self.status("/v2/health/ready") != 200:
            assert self.proc.poll() is None, self.stop()
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.05)

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def post(self, path: str, doc: object) -> object:
        req = urllib.request.Request(self.url + path, data=json.dumps(doc).encode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        if not self.proc.stderr.closed:
            with self.proc.stderr:
                self.said.append(self.proc.stderr.read())
        return "".join(self.said)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_the_hook_refuses_the_training_stack(tmp_path: Path) -> None:
    env = without(tmp_path, SERVING)
    for name in TRAINING:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], env=env,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 1 and "not installed" in done.stderr, name


@pytest.mark.slow
def test_serving_reading_the_registry_and_rollouts_need_no_training_stack(
    project: Path, tmp_path: Path, servers: list[Server]
) -> None:
    env = without(tmp_path, SERVING)
    for args in (("--help",), ("models", "list"), ("models", "show", "clf@production"),
                 ("rollout", "status", "production")):  # fmt: skip
        done = conveyor(project, env, *args)
        assert done.returncode == 0, f"{args}: {done.stderr}"
    assert "production=1" in conveyor(project, env, "models", "list").stdout

    server = Server(project, env, "models:/clf@production")
    servers.append(server)
    rows = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP64",
                        "data": [0.5, 1.0, -1.0, -0.5, 0.0, 2.0]}]}  # fmt: skip
    answer = server.post("/v2/models/clf/infer", rows)
    assert answer["outputs"][0]["data"] == [1, 0]  # type: ignore[index]
    assert server.post("/invocations", {"inputs": [[0.5, 1.0, -1.0]]}) == {"predictions": [1]}
    assert server.status("/metrics") == 200

    # --env: the deployment record followed, the rollout controller running, and the monitor
    server = Server(project, env, "--env", "production")
    servers.append(server)
    assert server.post("/invocations", {"inputs": [[-0.5, 0.0, 2.0]]}) == {"predictions": [0]}
    assert server.status("/deployments/production") == 200
    said = server.stop()
    assert "not started" not in said and "Traceback" not in said, said


def _windows(root: Path) -> dict[str, Any]:
    """Each closed window's profile and checks, by file (what the monitor decided)."""
    found = {}
    for path in sorted((root / ".conveyor" / "monitor" / "production" / "windows").rglob("*.json")):
        window = json.loads(path.read_text())
        found[path.name] = {k: window[k] for k in ("profile", "checks") if k in window}
    return found


@pytest.mark.slow
def test_the_server_monitors_without_pandas_or_scipy_as_a_full_install_does(
    project: Path, tmp_path: Path, servers: list[Server]
) -> None:
    env = without(tmp_path, SERVING)
    server = Server(project, env, "--env", "production")
    servers.append(server)
    rng = np.random.default_rng(7)
    for shift in (0.0, 1.5):  # a window like the reference, then one moved
        rows = (rng.normal(size=(120, 3)) + shift).round(6).tolist()
        server.post("/invocations", {"inputs": rows})
    deadline = time.monotonic() + 60
    while len(_windows(project)) < 2:
        assert time.monotonic() < deadline, "the monitor closed no 2 windows in 60 s"
        time.sleep(0.2)
    said = server.stop()
    assert "not started" not in said and "Traceback" not in said, said
    served = _windows(project)
    verdicts = [[c.get("verdict") for c in w["checks"]] for w in served.values()]
    assert any("alert" in v or "ok" in v for v in verdicts), served

    for args in (("status",), ("run",), ("watch", "--ticks", "1")):
        done = conveyor(project, env, "monitor", *args, "production")
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (args, done.stderr)
        assert "needs" not in done.stderr, (args, done.stderr)
    done = conveyor(project, env, "monitor", "status", "production")
    assert done.returncode == 0 and "drift.input_0" in done.stdout, done.stdout

    # The same log judged by a full install, from scratch: the same profiles and verdicts
    full = tmp_path / "full"
    shutil.copytree(project, full, symlinks=True)
    shutil.rmtree(full / ".conveyor" / "monitor" / "production")
    done = conveyor(full, dict(os.environ), "monitor", "run", "production", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    assert _windows(full) == served


def test_training_commands_name_the_extra_to_install(project: Path, tmp_path: Path) -> None:
    env = without(tmp_path, SERVING)
    done = conveyor(project, env, "tune")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "error: `conveyor tune` needs optuna, which this install of conveyor leaves out",
        "  hint: install the extra that brings it: pip install 'conveyor[train]'",
    ]
    done = conveyor(project, env, "monitor", "report", "production", "--out", "r.html")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "needs matplotlib" in done.stderr and "pip install 'conveyor[train]'" in done.stderr


def test_a_store_without_the_schema_needs_a_full_install_once(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    env = {**without(tmp_path, SERVING), "CONVEYOR_DB": f"sqlite:///{empty}"}
    root = tmp_path / "proj"
    root.mkdir()
    assert conveyor(root, dict(os.environ), "init").returncode == 0
    done = conveyor(root, env, "models", "list")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "has no conveyor schema yet (this conveyor reads 0005): migrating it needs alembic" in (
        done.stderr
    )
    assert "from a full install (pip install 'conveyor[all]')" in done.stderr
    done = conveyor(root, {**os.environ, "CONVEYOR_DB": f"sqlite:///{empty}"}, "models", "list")
    assert done.returncode == 0, done.stderr  # the full install migrates it ...
    assert conveyor(root, env, "models", "list").returncode == 0  # ... and then it is read


def test_a_model_that_takes_a_table_needs_pandas(project: Path, tmp_path: Path) -> None:
    done = conveyor(project, without(tmp_path, SERVING), "serve", "tab", "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "a model that takes a table (as a DataFrame) needs pandas" in done.stderr
    assert "pip install 'conveyor[tables]'" in done.stderr and "Traceback" not in done.stderr
    manifest = (project / "tab" / "conveyor-model.yaml").read_text()
    assert "pandas==" in manifest  # the package lists it: its image installs it


@pytest.mark.slow
def test_a_registry_on_postgresql_is_read_and_served_from(
    pg_db: str, tmp_path: Path, servers: list[Server]
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    full = {**os.environ, "CONVEYOR_DB": pg_db}
    assert conveyor(root, full, "init").returncode == 0
    package(root, "v1")
    for args in (("models", "register", "clf", "v1"), ("models", "alias", "clf@production", "1")):
        done = conveyor(root, full, *args)  # the full install migrates the new database
        assert done.returncode == 0, done.stderr
    env = {**without(tmp_path, SERVING), "CONVEYOR_DB": pg_db}
    done = conveyor(root, env, "models", "list")
    assert done.returncode == 0 and "production=1" in done.stdout, done.stderr
    server = Server(root, env, "models:/clf@production")
    servers.append(server)
    assert server.post("/invocations", {"inputs": [[0.5, 1.0, -1.0]]}) == {"predictions": [1]}
