"""Hot reload: the server follows an alias that moves while clients keep sending requests, on
SQLite and on PostgreSQL; and `conveyor serve` refuses what it cannot serve, clearly."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.serve.conftest import CONVEYOR, Server, cli, features, make_project

X = features(8, seed=1)
TRUTH = (X[:, 0] > 0).astype(int).tolist()
FLIPPED = [1 - v for v in TRUTH]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_alias_move_is_served_without_a_failed_request(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if backend == "postgresql":
        env["CONVEYOR_DB"] = request.getfixturevalue("pg_db")
    root = make_project(tmp_path / "proj", env)
    server = Server(root, "models:/clf@production", "--reload-interval", "0.2", env=env)
    body = json.dumps({"inputs": X.tolist()}).encode()
    results: list[tuple[int, str, list[int]]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, raw, headers = server.request("POST", "/invocations", body)
            results.append(
                (status, headers.get("x-model-version", ""), json.loads(raw).get("predictions"))
            )

    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        cli(root, "models", "alias", "clf@production", "2", env=env)
        deadline = time.monotonic() + 30
        while not any(v == "2" for _, v, _ in results[-20:]):
            assert time.monotonic() < deadline, "the server never moved to version 2"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        log = server.stop()
    assert results and all(status == 200 for status, _, _ in results)
    by_version = {v: p for _, v, p in results}
    assert by_version == {"1": TRUTH, "2": FLIPPED}  # each answer is its version's own
    first_two = next(i for i, (_, v, _) in enumerate(results) if v == "2")
    assert all(v == "2" for _, v, _ in results[first_two + 8 :])  # and it stays moved
    assert "models:/clf@production moved: serving version 2 (was 1)" in log


def run_serve(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONVEYOR, "serve", *args], cwd=root, capture_output=True, text=True, timeout=60
    )


def test_what_cannot_be_served_is_refused_before_listening(registered: Path) -> None:
    unknown = run_serve(registered, "models:/nope@production")
    assert unknown.returncode != 0 and "nope" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    no_alias = run_serve(registered, "models:/clf@staging")
    assert no_alias.returncode != 0 and "has no alias 'staging'" in no_alias.stderr
    not_package = run_serve(registered, str(registered / "x.csv"))
    assert not_package.returncode != 0 and "is not a model package" in not_package.stderr
    bad_rate = run_serve(registered, "models:/clf/1", "--log-sample", "2")
    assert bad_rate.returncode == 2 and "--log-sample" in bad_rate.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run_serve(registered, "models:/clf/1", "--port", port)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr


def test_a_package_folder_is_served_as_version_local(registered: Path) -> None:
    server = Server(registered, str(registered / "v1"))
    try:
        status, raw, headers = server.request(
            "POST", "/v2/models/clf/infer",
            json.dumps({"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP64",
                                    "data": X.ravel().tolist()}]}).encode(),
        )  # fmt: skip
        assert status == 200 and headers["x-model-version"] == "local"
        assert json.loads(raw)["outputs"][0]["data"] == TRUTH
    finally:
        server.stop()


def broken_copy(root: Path, name: str, how: str) -> Path:
    """A copy of package v1 that cannot be loaded: an untrusted pickle, or a corrupt file."""
    folder = root / name
    shutil.copytree(root / "v1", folder)
    manifest = folder / "conveyor-model.yaml"
    if how == "pickle":
        (folder / "model.skops").unlink()
        (folder / "model.joblib").write_bytes(pickle.dumps({"not": "vouched for"}))
        text = manifest.read_text().replace("model.skops", "model.joblib")
        manifest.write_text(text.replace("format: skops", "format: joblib"))
    else:
        (folder / "model.skops").write_bytes(b"not a zip file at all")
    return folder


@pytest.mark.parametrize(
    ("how", "workers", "reason"),
    [
        ("pickle", "1", "is a pickle, and the package does not say it is trusted"),
        ("corrupt", "1", "BadZipFile"),
        ("pickle", "2", "is a pickle, and the package does not say it is trusted"),
    ],
)
def test_a_model_that_cannot_be_loaded_at_start_up_stops_the_server(
    registered: Path, how: str, workers: str, reason: str
) -> None:
    folder = broken_copy(registered, f"broken-{how}-{workers}", how)
    started = time.monotonic()
    proc = run_serve(registered, str(folder), "--port", "0", "--workers", workers)
    assert proc.returncode == 2, proc.stderr
    assert reason in proc.stderr and f"cannot load {folder}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 45  # it stopped; it did not wait for a fix


def test_a_registered_version_that_cannot_be_loaded_stops_the_server_at_start_up(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "proj")
    cli(root, "models", "register", "clf", str(broken_copy(root, "bad", "pickle")))
    proc = run_serve(root, "models:/clf/3", "--port", "0")
    assert proc.returncode == 2 and "cannot load models:/clf/3" in proc.stderr, proc.stderr
    assert "the package does not say it is trusted" in proc.stderr

    # Once serving, an alias moved to that version keeps the old one serving.
    server = Server(root, "models:/clf@production", "--reload-interval", "0.1")
    try:
        cli(root, "models", "alias", "clf@production", "3")
        deadline = time.monotonic() + 30
        while 'result="failed"} ' not in (metrics := server.request("GET", "/metrics")[1].decode()):
            assert time.monotonic() < deadline, "the failed reload was never counted"
            time.sleep(0.1)
        time.sleep(0.5)  # a few more attempts
        body = json.dumps({"inputs": X.tolist()}).encode()
        status, raw, headers = server.request("POST", "/invocations", body)
        assert status == 200 and json.loads(raw)["predictions"] == TRUTH
        assert headers["x-model-version"] == "1" and server.ready()
    finally:
        log = server.stop()
    assert log.count("keeping version 1") == 1, log  # said once, not every 0.1 s
    assert 'conveyor_model_reloads_total{model="clf",result="loaded"}' not in metrics
    assert 'result="loaded"' not in metrics and 'role="stable",result="failed"' in metrics


def test_the_first_load_is_not_a_reload(registered: Path) -> None:
    # A reload interval shorter than the load: the watcher must not take the first load for
    # an alias that moved.
    server = Server(registered, "models:/clf@production", "--reload-interval", "0.01")
    try:
        time.sleep(0.5)
        metrics = server.request("GET", "/metrics")[1].decode()
    finally:
        log = server.stop()
    assert "conveyor_model_reloads_total{" not in metrics
    assert 'conveyor_model_info{model="clf",version="1"' in metrics
    assert "moved" not in log and "serving clf version 1" in log
