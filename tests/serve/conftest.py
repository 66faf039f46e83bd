"""A real `conveyor serve` process on loopback, serving models registered in a real project."""

from __future__ import annotations

import os
import re
import signal
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

CONVEYOR = str(Path(sys.executable).parent / "conveyor")

SAVE = """\
import sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from conveyor import models
x = np.loadtxt("x.csv", delimiter=",")
y = (x[:, 0] > 0).astype(int)
if sys.argv[2] == "flipped":
    y = 1 - y
models.save(LogisticRegression().fit(x, y), sys.argv[1], example=x[:3], name="clf")
"""


def features(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [CONVEYOR, *args], cwd=root, capture_output=True, text=True, env=env or dict(os.environ)
    )
    assert proc.returncode == 0, f"conveyor {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def make_project(root: Path, env: dict[str, str] | None = None) -> Path:
    """A project with model ``clf`` version 1 (positive when x0 > 0) and version 2 (the
    opposite), alias ``production`` on version 1."""
    root.mkdir(parents=True)
    np.savetxt(root / "x.csv", features(), delimiter=",")
    (root / "save.py").write_text(SAVE)
    cli(root, "init", env=env)
    for folder, kind in (("v1", "plain"), ("v2", "flipped")):
        subprocess.run([sys.executable, "save.py", folder, kind], cwd=root, check=True)
        cli(root, "models", "register", "clf", folder, env=env)
    cli(root, "models", "alias", "clf@production", "1", env=env)
    return root


class Server:
    """``conveyor serve ARGS`` on a free port; ``request`` is a plain HTTP client."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [CONVEYOR, "serve", *args, "--port", "0"],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
            env=env or dict(os.environ),
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not found:
            self.proc.kill()
            raise AssertionError(f"no address in {line!r}: {self.proc.stderr.read()}")
        self.port = int(found.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = [line]
        deadline = time.monotonic() + 60
        while not self.ready():
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "the server did not get ready in 60 s"
            time.sleep(0.05)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}

    def ready(self) -> bool:
        try:
            return self.request("GET", "/v2/health/ready")[0] == 200
        except urllib.error.URLError:
            return False

    def json(
        self, method: str, path: str, doc: Any = None, **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        import json

        body = None if doc is None else json.dumps(doc).encode()
        status, raw, headers = self.request(method, path, body, **kw)
        return status, json.loads(raw) if raw.strip() else None, headers

    def stop(self) -> str:
        """SIGTERM, wait, and what the server printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        with self.proc.stderr:
            return "".join(self.lines) + self.proc.stderr.read()


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("serve") / "proj")


@pytest.fixture
def serve(registered: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str, root: Path = registered, env: dict[str, str] | None = None) -> Server:
        server = Server(root, *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
