#!/usr/bin/env python3
"""Serving memory benchmark: the resident memory of `conveyor serve` under a long load of
1,000-row batches, with the prediction log on (the default).

A scratch project gets a model like the example's (StandardScaler + LogisticRegression on 30
features), registered and aliased clf@production; `conveyor serve models:/clf@production` serves
it. Clients (threads, keep-alive HTTP/1.1) POST `{"inputs": [[30 floats] x 1000]}` to
/invocations for --duration seconds; the server's VmRSS is sampled every second, and once more
after --idle seconds without requests. Any non-200 answer ends the benchmark.

--baseline SRC also runs the same load against another checkout's `src` folder (PYTHONPATH put
first), e.g. the code before a change: `git archive HEAD~3 src | tar -x -C /tmp/before`.
From the repo root::

    .venv/bin/python bench/serving_memory.py --duration 60 --clients 4
    .venv/bin/python bench/serving_memory.py --baseline /tmp/before/src

Writes bench/results/serving_memory.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common
from common import BenchError, run_checked

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "serving_memory.json"
CONVEYOR = Path(sys.executable).parent / "conveyor"

SAVE = """\
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from conveyor import models
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 30))
y = (x[:, :3].sum(axis=1) > 0).astype(int)
model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
models.save(model, "pkg", example=x[:3], name="clf")
np.savetxt("rows.csv", rng.normal(size=(1000, 30)), delimiter=",")
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--rows", type=int, default=1000, help="rows per request")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before the last")
    parser.add_argument("--baseline", type=Path, help="another src folder to measure too")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    if not found:
        raise BenchError(f"no VmRSS for process {pid}")
    return int(found.group(1)) / 1024


def make_project(root: Path, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    run_checked([str(CONVEYOR), "init"], root, env)
    (root / "save.py").write_text(SAVE)
    run_checked([sys.executable, "save.py"], root, env)
    run_checked([str(CONVEYOR), "models", "register", "clf", "pkg"], root, env)
    run_checked([str(CONVEYOR), "models", "alias", "clf@production", "1"], root, env)


def start(root: Path, src: Path | None) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, "-c", "from conveyor.cli.main import run; run()"]
    proc = subprocess.Popen(
        [*cmd, "serve", "models:/clf@production", "--port", "0"],
        cwd=root,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise BenchError(f"the server did not start: {line}{proc.stderr.read()}")
    port = int(found.group(1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise BenchError("the server did not get ready in 120 s")


def load(port: int, body: bytes, clients: int, seconds: float, pid: int) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    failures: list[str] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < stop and not failures:
            conn.request("POST", "/invocations", body, headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                failures.append(f"{resp.status}: {data[:200]!r}")
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    samples = [rss_mib(pid)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        samples.append(rss_mib(pid))
    for t in threads:
        t.join()
    if failures:
        raise BenchError(f"a request failed: {failures[0]}")
    return {"requests": sum(counts), "rss_mib_samples": [round(s, 1) for s in samples]}


def measure(root: Path, src: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    rows = [r.split(",") for r in (root / "rows.csv").read_text().splitlines()]
    values = [[float(v) for v in r] for r in rows][: args.rows]
    while len(values) < args.rows:
        values += values[: args.rows - len(values)]
    body = json.dumps({"inputs": values}).encode()
    proc, port = start(root, src)
    try:
        ready = rss_mib(proc.pid)
        result = load(port, body, args.clients, args.duration, proc.pid)
        time.sleep(args.idle)
        samples = result["rss_mib_samples"]
        figures = {
            "rss_ready_mib": round(ready, 1),
            "rss_peak_mib": max(samples),
            "rss_end_of_load_mib": samples[-1],
            "rss_after_idle_mib": round(rss_mib(proc.pid), 1),
            "requests": result["requests"],
            "requests_per_s": round(result["requests"] / args.duration, 1),
            "rss_mib_samples": samples,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()
    return figures


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="conveyor-memory-") as scratch:
        root = Path(scratch) / "proj"
        make_project(root, dict(os.environ))
        runs: dict[str, Any] = {}
        if args.baseline is not None:
            runs["baseline"] = measure(root, args.baseline.resolve(), args)
        runs["conveyor"] = measure(root, None, args)
    doc = {
        "duration_s": args.duration,
        "clients": args.clients,
        "rows_per_request": args.rows,
        "idle_s": args.idle,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
        "notes": [
            "conveyor serve models:/clf@production with its defaults (prediction log on)",
            "RSS: VmRSS of the server process, sampled every second of the load",
        ],
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    for name, fig in runs.items():
        print(
            f"{name:<10} ready {fig['rss_ready_mib']:6.0f} MiB  peak {fig['rss_peak_mib']:6.0f} MiB"
            f"  end {fig['rss_end_of_load_mib']:6.0f} MiB  idle {fig['rss_after_idle_mib']:6.0f}"
            f" MiB  {fig['requests_per_s']:7.1f} req/s"
        )


if __name__ == "__main__":
    sys.exit(common.main(run, parse_args, sys.argv[1:]))
