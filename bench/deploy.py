#!/usr/bin/env python3
"""Progressive delivery benchmark: what a rollout costs the requests it routes, and how fast a
failing candidate loses its traffic.

The example project (examples/classifier) is set up in a scratch folder as bench/serving.py sets
it up (its model registered as version 1 of ``classifier``); a second fit with another ``C`` is
version 2, and version 3 is a python-flavor package that answers like a classifier until a
trigger file exists, then fails every call. conveyor.yaml gains five environments:

    held             canary held at 10 %: steps [{weight: 10}, {pause: }] (a pause until resumed)
    held_apart       the same, with serve: {candidate: process}
    shadowed         shadow, every request copied (fraction 1.0) for an hour
    shadowed_inline  the same, with serve: {candidate: inline}
    failing          canary at 50 % with an error-rate check, interval 1 s, failure limit 1

1. Router overhead and shadow cost, with wrk (bench/serving.lua, 1-row /invocations bodies, 1
   and 16 connections), the servers interleaved in alternating order in every repeat:
   ``conveyor serve models:/classifier@held`` (one version), ``conveyor serve --env held`` (v1
   stable, v2 candidate at 10 %: requests carry no id, so the server's fresh ids split them) and
   ``conveyor serve --env shadowed`` (v1 answers, v2 gets a copy of every request). Targets: the
   10 % canary adds <= 5 % to p50 and p99; shadowing keeps the primary's p99 within 10 %. Each
   strategy's candidate answers where it does by default (a canary's in the workers, a
   shadow's in a process of its own); the other place of each (held_apart, shadowed_inline)
   is measured alongside and shown without a target.
2. Abort time: ``conveyor serve --env failing`` with v3 at 50 % under a steady load from 4
   threads (each request with a fresh ``x-request-id``); the trigger file is created, and the
   time from the first failed request to the last request the candidate answered is measured.
   Target <= 2 s with a 1 s analysis interval (Flagger's default interval alone is 60 s).

From the repo root::

    bash bench/install_wrk.sh
    .venv/bin/python bench/deploy.py --duration 3 --repeats 1

Standard library only (the packages are written by the venv's python).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import common
from common import BenchError, find_exe, remove, run_checked
from serving import (
    HOST,
    INVOCATIONS,
    PATHS,
    Server,
    make_project,
    measure,
    write_bodies,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

ENVIRONMENTS = """
deploy:
  held:
    model: classifier
    strategy: {canary: {steps: [{weight: 10}, {pause: }]}}
    analysis: {interval: 1s, deadline: 1h, checks: []}
  held_apart:
    model: classifier
    serve: {candidate: process}
    strategy: {canary: {steps: [{weight: 10}, {pause: }]}}
    analysis: {interval: 1s, deadline: 1h, checks: []}
  shadowed:
    model: classifier
    strategy: {shadow: {fraction: 1.0, min_agreement: 0.5, duration: 1h}}
    analysis: {interval: 1s, deadline: 1h, checks: []}
  shadowed_inline:
    model: classifier
    serve: {candidate: inline}
    strategy: {shadow: {fraction: 1.0, min_agreement: 0.5, duration: 1h}}
    analysis: {interval: 1s, deadline: 1h, checks: []}
  failing:
    model: classifier
    strategy: {canary: {steps: [{weight: 50}, {pause: }]}}
    analysis:
      interval: 1s
      failure_limit: 1
      deadline: 1h
      checks: [{metric: error_rate, max_increase: 0.01, min_samples: 20}]
"""

# Version 3: answers 0 for every row until the trigger file exists, then fails every call.
FAILING = '''
import sys
from pathlib import Path

import numpy as np

from conveyor import models

folder, trigger = Path(sys.argv[1]), sys.argv[2]
code = folder.parent / "failing_model.py"  # in the project: a package's code travels with it
code.write_text(f"""
import os
import numpy as np

class Model:
    def predict(self, x):
        if os.path.exists({trigger!r}):
            raise RuntimeError("the candidate fails from now on")
        return np.zeros(len(x), dtype=int)

def load(folder):
    return Model()
""")
example = np.loadtxt(folder.parent / "data/prepared/test.csv", delimiter=",",
                     skiprows=1)[:2, 1:-1]
models.save(None, folder, flavor="python", loader="failing_model:load", code=[code],
            example=example, name="classifier")
'''

SCENARIOS = ("1row_c1", "1row_c16")
# (what, server, baseline, metric, max ratio)
TARGETS = [
    ("10 % canary p50, 1 connection", "canary", "1row_c1", "p50_ms", 1.05),
    ("10 % canary p99, 1 connection", "canary", "1row_c1", "p99_ms", 1.05),
    ("10 % canary p50, 16 connections", "canary", "1row_c16", "p50_ms", 1.05),
    ("10 % canary p99, 16 connections", "canary", "1row_c16", "p99_ms", 1.05),
    ("shadow p99, 1 connection", "shadow", "1row_c1", "p99_ms", 1.10),
    ("shadow p99, 16 connections", "shadow", "1row_c16", "p99_ms", 1.10),
]
# The other place for each strategy's candidate (serve: {candidate: ...}): shown, no target
OTHERS = [
    ("canary in its own process p50, c1", "canary_apart", "1row_c1", "p50_ms"),
    ("canary in its own process p99, c1", "canary_apart", "1row_c1", "p99_ms"),
    ("canary in its own process p50, c16", "canary_apart", "1row_c16", "p50_ms"),
    ("canary in its own process p99, c16", "canary_apart", "1row_c16", "p99_ms"),
    ("shadow inline p99, c1", "shadow_inline", "1row_c1", "p99_ms"),
    ("shadow inline p99, c16", "shadow_inline", "1row_c16", "p99_ms"),
]
MAX_ABORT_S = 2.0


def cli(conveyor: Path, project: Path, env: dict[str, str], *args: str) -> str:
    return run_checked([str(conveyor), *args], project, env).stdout


def deployment(server: Server, name: str) -> dict[str, object]:
    status, body = server.request("GET", f"/deployments/{name}", timeout=5)
    if status != 200:
        raise BenchError(f"GET /deployments/{name}: {status} {body[:300]!r}")
    doc: dict[str, object] = json.loads(body)
    return doc


def wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def setup(conveyor: Path, work: Path, env: dict[str, str]) -> Path:
    """The project with versions 1 (stable everywhere), 2 and 3 registered, and rollouts of 2
    on held and shadowed."""
    project = make_project(conveyor, work, env)  # version 1, alias classifier@production
    params = project / "params.yaml"
    params.write_text(re.sub(r"(\n\s+C:\s*)([\d.e-]+)", r"\g<1>0.05", params.read_text(), count=1))
    cli(conveyor, project, env, "run")
    cli(conveyor, project, env, "models", "register", "classifier", "models/classifier")
    trigger = work / "fail-now"
    (work / "failing.py").write_text(FAILING)
    python = conveyor.parent / "python"
    run_checked(
        [str(python), str(work / "failing.py"), str(project / "failing"), str(trigger)], work, env
    )
    cli(conveyor, project, env, "models", "register", "classifier", "failing")
    config = project / "conveyor.yaml"  # the example's own environments give way to these
    text = config.read_text()
    config.write_text(
        text[: text.index("\ndeploy:")] + ENVIRONMENTS
        if "\ndeploy:" in text
        else text + ENVIRONMENTS
    )
    for name in ("held", "held_apart", "shadowed", "shadowed_inline", "failing"):
        cli(conveyor, project, env, "deploy", "models:/classifier/1", "--env", name)
    for name in ("held", "held_apart", "shadowed", "shadowed_inline"):
        cli(conveyor, project, env, "deploy", "models:/classifier/2", "--env", name)
    return project


# -- 1. overhead ---------------------------------------------------------------------------------


def overhead(
    args: argparse.Namespace,
    conveyor: Path,
    project: Path,
    work: Path,
    env: dict[str, str],
    wrk: str,
) -> dict[str, dict[str, list[float]]]:
    base = [str(conveyor), "serve", "--host", HOST, "--port", "{port}"]
    servers = [
        Server(
            "single",
            [*base[:2], "models:/classifier@held", *base[2:]],
            project,
            env,
            "/v2/health/ready",
            work / "single.log",
        ),
        Server(
            "canary",
            [*base, "--env", "held"],
            project,
            env,
            "/v2/health/ready",
            work / "canary.log",
        ),
        Server(
            "shadow",
            [*base, "--env", "shadowed"],
            project,
            env,
            "/v2/health/ready",
            work / "shadow.log",
        ),
        Server(
            "canary_apart",
            [*base, "--env", "held_apart"],
            project,
            env,
            "/v2/health/ready",
            work / "canary_apart.log",
        ),
        Server(
            "shadow_inline",
            [*base, "--env", "shadowed_inline"],
            project,
            env,
            "/v2/health/ready",
            work / "shadow_inline.log",
        ),
    ]
    rollout_of = {
        "canary": "held",
        "shadow": "shadowed",
        "canary_apart": "held_apart",
        "shadow_inline": "shadowed_inline",
    }
    bodies = write_bodies(project, work, {INVOCATIONS})

    samples: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    for rep in range(args.repeats):
        order = servers if rep % 2 == 0 else servers[::-1]
        print(f"repeat {rep + 1}/{args.repeats}", flush=True)
        for s in order:
            s.start()
            try:
                body = bodies[INVOCATIONS, 1].read_bytes()
                for _ in range(50):  # warm up: both versions loaded and called
                    status, answer = s.request("POST", PATHS[INVOCATIONS], body)
                    if status != 200:
                        raise BenchError(f"{s.name}: {status} {answer[:300]!r}")
                if s.name != "single":
                    doc = deployment(s, rollout_of[s.name])
                    if doc.get("status") not in ("progressing", "paused"):
                        raise BenchError(f"{s.name}: the rollout is not on: {doc}")
                for scenario in SCENARIOS:
                    fig = measure(wrk, args.duration, bodies, s, scenario)
                    for metric, value in fig.items():
                        samples[s.name].setdefault(f"{scenario}.{metric}", []).append(value)
                    print(
                        f"  {s.name:<7} {scenario:<9} {fig['rps']:9.1f} req/s "
                        f"{fig['p50_ms']:7.2f} ms p50 {fig['p99_ms']:7.2f} ms p99",
                        flush=True,
                    )
            finally:
                s.stop()
    return samples


# -- 2. abort time -------------------------------------------------------------------------------


class Load:
    """Threads posting 1-row requests with fresh ids; each answer's send time, status, version."""

    def __init__(self, port: int, body: bytes, threads: int = 4) -> None:
        self.port, self.body = port, body
        self.answers: list[tuple[float, int, str]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        while not self.stopping.is_set():
            headers = {"Content-Type": "application/json", "x-request-id": uuid.uuid4().hex}
            sent = time.monotonic()
            try:
                conn.request("POST", PATHS[INVOCATIONS], self.body, headers)
                response = conn.getresponse()
                response.read()
                version = response.getheader("x-model-version") or ""
                self.answers.append((sent, response.status, version))
            except OSError:
                self.answers.append((sent, 0, ""))
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        conn.close()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(15)


def abort_times(
    args: argparse.Namespace, conveyor: Path, project: Path, work: Path, env: dict[str, str]
) -> list[float]:
    trigger = work / "fail-now"
    server = Server(
        "failing",
        [str(conveyor), "serve", "--env", "failing", "--host", HOST, "--port", "{port}"],
        project,
        env,
        "/v2/health/ready",
        work / "failing.log",
    )
    body = json.dumps({"inputs": [[0.5] * 30]}).encode()
    times = []
    server.start()
    try:
        for rep in range(args.repeats):
            trigger.unlink(missing_ok=True)
            cli(conveyor, project, env, "deploy", "models:/classifier/3", "--env", "failing")
            wait_for(
                "the candidate at 50 %",
                lambda: (
                    deployment(server, "failing").get("weight") == 50
                    and deployment(server, "failing").get("status") in ("progressing", "paused")
                ),
            )
            traffic = Load(server.port, body)
            try:
                time.sleep(3)  # both versions answering
                trigger.touch()
                wait_for(
                    "the abort",
                    lambda: deployment(server, "failing").get("status") == "aborted",
                    timeout=30,
                )
                time.sleep(2)  # the answers after the abort: all stable's
            finally:
                traffic.stop()
            failed = [t for t, status, _ in traffic.answers if status != 200]
            if not failed:
                raise BenchError("the candidate never failed")
            first = min(failed)
            candidate = [t for t, status, v in traffic.answers if v == "3" or status != 200]
            seconds = max(candidate) - first
            times.append(seconds)
            served = sum(1 for t, _, _ in traffic.answers if t > max(candidate))
            print(
                f"  abort {rep + 1}: {seconds:.2f} s from the first failure to the last "
                f"request on the candidate ({len(failed)} failed, {served} answered by "
                "stable after)",
                flush=True,
            )
    finally:
        server.stop()
    return times


# -- report --------------------------------------------------------------------------------------


def report(
    samples: dict[str, dict[str, list[float]]],
    aborts: list[float],
    out: Path,
    args: argparse.Namespace,
) -> None:
    med = {s: {k: statistics.median(v) for k, v in m.items()} for s, m in samples.items()}
    goals = {}
    print(f"\n{'target':<34} {'one version':>12} {'rollout':>10} {'ratio':>7} {'max':>6}")
    for what, server, scenario, metric, limit in TARGETS:
        one, two = med["single"][f"{scenario}.{metric}"], med[server][f"{scenario}.{metric}"]
        ratio = two / one
        goals[what] = {
            "single": one,
            server: two,
            "ratio": ratio,
            "max": limit,
            "met": ratio <= limit,
        }
        print(
            f"{what:<34} {one:10.2f}ms {two:8.2f}ms {ratio:7.2f} {limit:6.2f}"
            f"{'' if ratio <= limit else '  MISSED'}"
        )
    for what, server, scenario, metric in OTHERS:
        one, two = med["single"][f"{scenario}.{metric}"], med[server][f"{scenario}.{metric}"]
        goals[what] = {"single": one, server: two, "ratio": two / one}
        print(f"{what:<34} {one:10.2f}ms {two:8.2f}ms {two / one:7.2f}      -")
    worst = max(aborts)
    goals["failing candidate to 100 % stable"] = {
        "seconds": aborts,
        "max_s": MAX_ABORT_S,
        "met": worst <= MAX_ABORT_S,
    }
    print(
        f"{'failing candidate to 100 % stable':<34} {worst:10.2f} s (worst of {len(aborts)}; "
        f"max {MAX_ABORT_S:g} s){'' if worst <= MAX_ABORT_S else '  MISSED'}"
    )
    result = {
        "benchmark": "deploy",
        "duration_s": args.duration,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "medians": med,
        "samples": samples,
        "goals": goals,
        "notes": [
            "wrk -t1 --latency, 1-row POST /invocations, servers interleaved per repeat",
            "canary: v1 stable, v2 candidate held at 10 %; shadow: every request copied to v2",
            "canary's candidate inline (its default), shadow's in its own process (its default);"
            " canary_apart and shadow_inline: the other place, shown without a target",
            "abort: 4 threads, fresh x-request-id each; interval 1 s, failure_limit 1",
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per server and abort (3)")
    parser.add_argument("--conveyor", default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"))
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "deploy.json"))
    args = parser.parse_args(argv)
    if args.duration < 1 or args.repeats < 1:
        parser.error("--duration and --repeats must be at least 1")
    return args


def run(args: argparse.Namespace) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk not found; run: bash bench/install_wrk.sh")
    conveyor = find_exe(args.conveyor, "conveyor", "make test creates .venv; or --conveyor PATH")
    work = Path(args.work).absolute() / "deploy"
    remove(work)
    work.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{conveyor.parent}{os.pathsep}{os.environ['PATH']}"}
    project = setup(conveyor, work, env)
    print("1. router overhead and shadow cost", flush=True)
    samples = overhead(args, conveyor, project, work, env, wrk)
    print("2. a failing candidate", flush=True)
    aborts = abort_times(args, conveyor, project, work, env)
    report(samples, aborts, Path(args.out).absolute(), args)
    remove(work)


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
