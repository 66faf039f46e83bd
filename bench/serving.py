#!/usr/bin/env python3
"""Serving benchmark: conveyor's model server under wrk, against `mlflow models serve` and MLServer.

The example project (examples/classifier) is set up in a scratch folder: data, `conveyor run`,
then the model is registered and aliased classifier@production. conveyor serves it with
`conveyor serve models:/classifier@production`; with --compare-mlflow, the MLflow venv fits the
same Pipeline(StandardScaler, LogisticRegression) on the same prepared rows with the same params,
saves it with `mlflow.sklearn.save_model` (signature inferred from the numpy rows) and serves it
with `mlflow models serve --env-manager local`, otherwise with MLflow's defaults (one uvicorn
worker). Both get the same `POST /invocations` body, `{"inputs": [[30 floats], ...]}`, rows taken
from data/prepared/test.csv (cycled up to 1,000).

With --compare-mlserver, MLServer (KServe's Python runtime, `mlserver` + `mlserver-sklearn`) serves
the same Pipeline, fitted the same way in its venv and saved with joblib (what its scikit-learn
runtime loads), with `parallel_workers: 0` (its worker pool fails with today's uvloop, and no
pool is its fastest set-up for a small model). Both servers get the same Open Inference Protocol
v2 body, `POST /v2/models/classifier/infer` with one FP64 tensor `{"name": "input", "shape":
[rows, 30], "data": [flat row-major values]}`: the same rows. Without a comparison, conveyor is
measured on both protocols; with one, on the protocols of the servers it is compared with.

Every repeat starts each server afresh (start-up: from the process's start until its readiness
endpoint answers 200, polled every 10 ms), checks a 1-row and a 1,000-row answer, then runs each
scenario with wrk (one thread, a Lua script to POST), the servers interleaved in alternating
order; resident memory (the server's process tree) is read once it is ready, and again after
the load. Medians are reported; any non-2xx response or socket error ends the benchmark. From
the repo root::

    bash bench/install_wrk.sh
    .venv/bin/python bench/serving.py --duration 3 --repeats 1
    .venv/bin/python bench/serving.py --compare-mlflow "$(bash bench/install_mlflow.sh)"
    .venv/bin/python bench/serving.py --compare-mlserver "$(bash bench/install_mlserver.sh)"

Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import BenchError, find_exe, remove, run_checked, warn

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
LUA = BENCH_DIR / "serving.lua"
HOST = "127.0.0.1"
READY_TIMEOUT, POLL = 120.0, 0.01  # seconds
MODEL_URI = "models:/classifier@production"
MODEL_NAME = "classifier"
V2_INPUT = "input"  # the input conveyor's signature names (inferred from a numpy example)
INVOCATIONS, V2 = "invocations", "v2"
PATHS = {INVOCATIONS: "/invocations", V2: f"/v2/models/{MODEL_NAME}/infer"}

# scenario -> (protocol, rows per request, connections)
SCENARIOS = {
    "1row_c1": (INVOCATIONS, 1, 1),
    "1row_c16": (INVOCATIONS, 1, 16),
    "1000rows_c1": (INVOCATIONS, 1000, 1),
    "v2_1row_c1": (V2, 1, 1),
    "v2_1row_c16": (V2, 1, 16),
    "v2_1000rows_c1": (V2, 1000, 1),
}
METRICS = ("rps", "rows_per_s", "p50_ms", "p99_ms", "cpu_ms")
# target -> (scenario, metric, minimum ratio); a ratio is how many times better conveyor is:
# conveyor / MLflow for throughput, MLflow / conveyor for latency.
TARGETS = {
    "16 connections: req/s": ("1row_c16", "rps", 20.0),
    "16 connections: p99 lower": ("1row_c16", "p99_ms", 10.0),
    "1 connection: p50 lower": ("1row_c1", "p50_ms", 5.0),
    "1,000-row batches: rows/s": ("1000rows_c1", "rows_per_s", 3.0),
}
MAX_STARTUP_S = 2.0
# target -> (scenario, metric, minimum ratio): conveyor against MLServer in the same run.
MLSERVER_TARGETS = {
    "v2 1 row, 1 connection: req/s": ("v2_1row_c1", "rps", 2.0),
    "v2 1 row, 16 connections: req/s": ("v2_1row_c16", "rps", 5.0),
    "v2 1,000 rows: req/s": ("v2_1000rows_c1", "rps", 1.5),
}
MAX_RSS_GROWTH = 1.5  # conveyor's RSS after the load, as a multiple of its RSS once ready
# MLflow 3.17.2 on this machine, as measured for the issue (medians of 3 runs).
MLFLOW_REFERENCE = {
    "1row_c1": {"rps": 59, "rows_per_s": 59, "p50_ms": 16.5, "p99_ms": 52},
    "1row_c16": {"rps": 49, "rows_per_s": 49, "p99_ms": 551},
    "1000rows_c1": {"rps": 27, "rows_per_s": 26_900},
    "server": {"startup_s": 8, "rss_mib": 504},
}

NOTES = [
    "wrk -t1 --timeout 10s --latency; bench/serving.lua POSTs the body",
    "mlflow models serve --env-manager local, MLflow's defaults otherwise (1 uvicorn worker)",
    "conveyor serve with its defaults; RSS: the server's process tree, after the load",
    "cpu_ms: CPU time (user + system) of the server's process tree per request under the load",
    "targets: ratios against MLflow in this run; without --compare-mlflow, the issue's figures",
    "mlserver start, settings.json: parallel_workers 0 (MLServer's defaults otherwise); its "
    "scikit-learn runtime loads a joblib file of the same Pipeline, fitted in its venv",
    "v2 body: one FP64 tensor named input, shape [rows, 30], data flat in row-major order",
]

MLFLOW_TRAIN = """
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import yaml
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

project, out = map(Path, sys.argv[1:])
params = yaml.safe_load((project / "params.yaml").read_text())["train"]
table = np.loadtxt(project / "data/prepared/train.csv", delimiter=",", skiprows=1)
x, y = table[:, 1:-1], table[:, -1].astype(int)
model = make_pipeline(
    StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]))
).fit(x, y)
mlflow.sklearn.save_model(model, out, signature=infer_signature(x, model.predict(x)))
"""

# The same fit, saved as MLServer's scikit-learn runtime loads it (a joblib file), with its
# model-settings.json; the server's settings.json is written at each start (its ports).
MLSERVER_TRAIN = """
import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

project, out, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
params = json.loads(sys.argv[4])  # train's params: the bench reads params.yaml
table = np.loadtxt(project / "data/prepared/train.csv", delimiter=",", skiprows=1)
x, y = table[:, 1:-1], table[:, -1].astype(int)
model = make_pipeline(
    StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]))
).fit(x, y)
out.mkdir(parents=True, exist_ok=True)
joblib.dump(model, out / "model.joblib")
settings = {
    "name": name,
    "implementation": "mlserver_sklearn.SKLearnModel",
    "parameters": {"uri": "./model.joblib", "version": "1"},
}
(out / "model-settings.json").write_text(json.dumps(settings))
"""


@dataclass
class Server:
    """A model server, started afresh for each repeat in a process group of its own."""

    name: str
    cmd: list[str]  # "{port}" is replaced by a free port
    cwd: Path
    env: dict[str, str]
    ready_path: str
    log: Path
    protocols: tuple[str, ...] = (INVOCATIONS,)
    settings: Path | None = None  # written at each start with its ports (MLServer's)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the server; the seconds until its readiness endpoint answered 200."""
        self.port = free_port()
        cmd = [arg.replace("{port}", str(self.port)) for arg in self.cmd]
        if self.settings is not None:
            settings = {"http_port": self.port, "grpc_port": free_port(), "parallel_workers": 0}
            settings |= {"metrics_port": free_port(), "host": HOST}
            self.settings.write_text(json.dumps(settings))
        with self.log.open("ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            start = time.perf_counter()
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        while time.perf_counter() - start < READY_TIMEOUT:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} server exited ({self.proc.returncode}) before "
                    f"it was ready; the end of {self.log}:\n{self.log_tail()}"
                )
            try:
                if self.request("GET", self.ready_path, timeout=1)[0] == 200:
                    return time.perf_counter() - start
            except OSError:
                pass  # not listening yet
            time.sleep(POLL)
        raise BenchError(
            f"{self.name} server not ready after {READY_TIMEOUT:g} s; "
            f"the end of {self.log}:\n{self.log_tail()}"
        )

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 60
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)  # the group start_new_session made: workers too
                self.proc.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def tree(root: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # the command name may hold spaces and parentheses: split after the last ")"
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants (VmRSS in /proc)."""
    kib = 0
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        kib += int(found[1]) if found else 0
    return kib / 1024


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user and system) a process and its descendants have used so far: what a
    request costs the server, which other work on a shared machine hardly changes."""
    ticks = 0
    for pid in tree(root):
        try:  # utime and stime: fields 14 and 15, the 12th and 13th after the name
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Bench:
    wrk: str
    servers: list[Server]
    bodies: dict[tuple[str, int], Path]  # (protocol, rows) -> request body
    duration: int
    repeats: int
    protocols: set[str]
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def record(self, server: str, figure: str, value: float) -> None:
        self.samples.setdefault(server, {}).setdefault(figure, []).append(value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_project(conveyor: Path, work: Path, env: dict[str, str]) -> Path:
    """The example project, run, with its model registered as classifier@production."""
    project = work / "project"
    shutil.copytree(REPO_ROOT / "examples" / "classifier", project)
    cli = str(conveyor)
    steps = [["git", "init", "-q"], [str(conveyor.parent / "python"), "get_data.py"]]
    steps += [[cli, "init"], [cli, "add", "data/raw"], [cli, "run"]]
    steps += [[cli, "models", "register", "classifier", "models/classifier"]]
    steps += [[cli, "models", "alias", "classifier@production", "1"]]
    for cmd in steps:
        run_checked(cmd, project, env)
    return project


def write_bodies(project: Path, work: Path, protocols: set[str]) -> dict[tuple[str, int], Path]:
    with (project / "data" / "prepared" / "test.csv").open(newline="") as f:
        rows = [[float(v) for v in row[1:-1]] for row in list(csv.reader(f))[1:]]  # no id, label
    bodies = {}
    for protocol, n, _ in SCENARIOS.values():
        if protocol not in protocols or (protocol, n) in bodies:
            continue
        sent = [rows[i % len(rows)] for i in range(n)]
        if protocol == INVOCATIONS:
            doc: dict[str, object] = {"inputs": sent}
        else:
            flat = [v for row in sent for v in row]
            tensor = {"name": V2_INPUT, "shape": [n, len(sent[0])], "datatype": "FP64"}
            doc = {"inputs": [{**tensor, "data": flat}]}
        bodies[protocol, n] = work / f"body-{protocol}-{n}.json"
        bodies[protocol, n].write_text(json.dumps(doc))
    return bodies


def predictions(protocol: str, status: int, data: bytes) -> object:
    """The predictions of an answer, or None."""
    try:
        doc = json.loads(data) if status == 200 else None
        if protocol == INVOCATIONS:
            return doc["predictions"] if doc else None
        return doc["outputs"][0]["data"] if doc else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def check_answers(server: Server, bodies: dict[tuple[str, int], Path]) -> dict[str, list[object]]:
    """Warm the server up and check its answers; by protocol, the predictions for its largest
    body."""
    answers: dict[str, list[object]] = {}
    for (protocol, n), path in sorted(bodies.items()):
        if protocol not in server.protocols:
            continue
        for _ in range(10):
            status, data = server.request("POST", PATHS[protocol], path.read_bytes())
            found = predictions(protocol, status, data)
            if not isinstance(found, list) or len(found) != n:
                raise BenchError(
                    f"{server.name}: {protocol} {n}-row request, answer {status}: {data[:500]!r}"
                )
            answers[protocol] = found
    return answers


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(text: str, what: str) -> dict[str, float]:
    """Requests/s and the 50% / 99% latencies of `wrk --latency`; failed requests end the run."""
    latency = {
        f"p{q}_ms": float(value) * UNITS_MS[unit]
        for q, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not (rps and total and len(latency) == 2):
        raise BenchError(f"{what}: cannot read wrk's output:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    failed = (int(bad[1]) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    if failed or not int(total[1]):
        raise BenchError(f"{what}: {failed} of {total[1]} requests failed:\n{text}")
    return {"rps": float(rps[1]), "requests": float(total[1]), **latency}


def load(b: Bench, server: Server, scenario: str) -> dict[str, float]:
    return measure(b.wrk, b.duration, b.bodies, server, scenario)


def measure(
    wrk: str,
    duration: int,
    bodies: dict[tuple[str, int], Path],
    server: Server,
    scenario: str,
) -> dict[str, float]:
    """One wrk run of ``scenario`` against ``server``: its figures, and the server's CPU time
    per request."""
    protocol, rows, connections = SCENARIOS[scenario]
    url = f"http://{HOST}:{server.port}{PATHS[protocol]}"
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(LUA), url, "--", str(bodies[protocol, rows])]
    assert server.proc is not None
    cpu = tree_cpu_s(server.proc.pid)
    figures = parse_wrk(run_checked(cmd, BENCH_DIR, os.environ).stdout, f"{server.name} {scenario}")
    cpu = tree_cpu_s(server.proc.pid) - cpu
    requests = figures.pop("requests")
    return {**figures, "rows_per_s": figures["rps"] * rows, "cpu_ms": cpu * 1e3 / requests}


def run_all(b: Bench) -> None:
    for rep in range(b.repeats):
        order = b.servers if rep % 2 == 0 else b.servers[::-1]
        print(f"repeat {rep + 1}/{b.repeats}", flush=True)
        try:
            answers: dict[str, set[str]] = {}
            for s in order:
                startup = s.start()
                b.record(s.name, "startup_s", startup)
                assert s.proc is not None
                b.record(s.name, "rss_start_mib", tree_rss_mib(s.proc.pid))
                for protocol, found in check_answers(s, b.bodies).items():
                    answers.setdefault(protocol, set()).add(json.dumps(found))
                print(f"  {s.name:<9} ready in {startup:.2f} s", flush=True)
            for protocol, found in answers.items():
                if len(found) > 1 and rep == 0:
                    warn(f"the servers' {protocol} predictions for the largest body differ")
            for scenario, (protocol, _, _) in SCENARIOS.items():
                if protocol not in b.protocols:
                    continue
                for s in order:
                    if protocol not in s.protocols:
                        continue
                    fig = load(b, s, scenario)
                    for metric, value in fig.items():
                        b.record(s.name, f"{scenario}.{metric}", value)
                    print(
                        f"  {s.name:<9} {scenario:<12} {fig['rps']:9.1f} req/s "
                        f"{fig['p50_ms']:9.2f} ms p50 {fig['p99_ms']:9.2f} ms p99 "
                        f"{fig['cpu_ms']:7.2f} CPU ms per request",
                        flush=True,
                    )
            for s in order:
                assert s.proc is not None
                rss = tree_rss_mib(s.proc.pid)
                b.record(s.name, "rss_mib", rss)
                b.record(s.name, "rss_growth", rss / b.samples[s.name]["rss_start_mib"][-1])
        finally:
            for s in order:
                s.stop()


def times_better(metric: str, conveyor: float, mlflow: float) -> float:
    """conveyor / MLflow for throughput, MLflow / conveyor for latency."""
    return mlflow / conveyor if metric.endswith("_ms") else conveyor / mlflow


def goals(med: dict[str, dict[str, float]]) -> dict[str, dict[str, float | bool]]:
    """The issue's targets, met or missed: against MLflow in this run, else the issue's figures."""
    conv, mlf = med.get("conveyor", {}), med.get("mlflow", {})
    out: dict[str, dict[str, float | bool]] = {}
    if "startup_s" in conv:
        startup = conv["startup_s"]
        out["start-up"] = {"seconds": startup, "max_seconds": MAX_STARTUP_S}
        out["start-up"]["met"] = startup <= MAX_STARTUP_S
    for target, (scenario, metric, minimum) in TARGETS.items():
        key = f"{scenario}.{metric}"
        if key not in conv:
            continue
        c, issue = conv[key], MLFLOW_REFERENCE[scenario][metric]
        g: dict[str, float | bool] = {"conveyor": c, "min_ratio": minimum}
        g |= {"mlflow_issue": issue, "ratio_vs_issue": times_better(metric, c, issue)}
        if key in mlf:
            g |= {"mlflow": mlf[key], "ratio": times_better(metric, c, mlf[key])}
        g["met"] = g.get("ratio", g["ratio_vs_issue"]) >= minimum
        out[target] = g
    return out


def mlserver_goals(med: dict[str, dict[str, float]]) -> dict[str, dict[str, float | bool]]:
    """The targets against MLServer in this run, and conveyor's memory growth under the load."""
    conv, mls = med.get("conveyor", {}), med.get("mlserver", {})
    out: dict[str, dict[str, float | bool]] = {}
    for target, (scenario, metric, minimum) in MLSERVER_TARGETS.items():
        key = f"{scenario}.{metric}"
        if key in conv and key in mls:
            ratio = times_better(metric, conv[key], mls[key])
            out[target] = {"conveyor": conv[key], "mlserver": mls[key], "ratio": ratio}
            out[target] |= {"min_ratio": minimum, "met": ratio >= minimum}
    if "rss_growth" in conv:
        growth = conv["rss_growth"]
        out["RSS after the load / at start"] = {
            "conveyor": growth,
            "max_ratio": MAX_RSS_GROWTH,
            "met": growth <= MAX_RSS_GROWTH,
        }
    return out


def print_tables(
    b: Bench, med: dict[str, dict[str, float]], met: dict[str, dict], mls: dict[str, dict]
) -> None:
    rows = [(s.name, med[s.name]) for s in b.servers]
    reference = "mlflow 3.17.2 (issue)"
    print(f"\nmedians of {b.repeats} repeat(s), {b.duration} s per wrk run, 1 wrk thread")
    for scenario, (protocol, n, connections) in SCENARIOS.items():
        if protocol not in b.protocols:
            continue
        print(f"\n{scenario}: {PATHS[protocol]}, {n:,} row(s) per request, {connections} conn.")
        print(f"{'server':<22}" + "".join(f"{m:>12}" for m in METRICS))
        figures = [(name, {m: f.get(f"{scenario}.{m}") for m in METRICS}) for name, f in rows]
        if scenario in MLFLOW_REFERENCE:
            figures.append((reference, MLFLOW_REFERENCE[scenario]))
        for name, fig in figures:
            if all(fig.get(m) is None for m in METRICS):
                continue  # a server that does not speak this protocol
            cells = (fig.get(m) for m in METRICS)
            print(
                f"{name:<22}" + "".join(f"{'-':>12}" if v is None else f"{v:12.2f}" for v in cells)
            )
    print(f"\n{'server':<22}{'start-up s':>12}{'RSS MiB':>12}{'at start':>12}")
    for name, fig in [*rows, (reference, MLFLOW_REFERENCE["server"])]:
        start = f"{fig['rss_start_mib']:12.0f}" if "rss_start_mib" in fig else f"{'-':>12}"
        print(f"{name:<22}{fig['startup_s']:12.2f}{fig['rss_mib']:12.0f}{start}")
    if any("mlflow" in g or "seconds" in g for g in met.values()) or INVOCATIONS in b.protocols:
        print_mlflow_goals(met)
    if mls:
        print(
            f"\n{'target (vs MLServer)':<34}{'conveyor':>11}{'mlserver':>11}{'ratio':>8}{'goal':>9}"
        )
    for target, g in mls.items():
        if "max_ratio" in g:
            cells = f"{g['conveyor']:10.2f}x" + f"{'-':>11}{'-':>8}"
            goal = f"<= {g['max_ratio']:g}x"
        else:
            cells = f"{g['conveyor']:11.2f}{g['mlserver']:11.2f}{g['ratio']:7.3g}x"
            goal = f">= {g['min_ratio']:g}x"
        print(f"{target:<34}{cells}{goal:>9}  {'met' if g['met'] else 'MISSED'}")


def print_mlflow_goals(met: dict[str, dict]) -> None:
    if met:
        head = f"{'target':<26}{'conveyor':>11}{'mlflow':>11}{'ratio':>8}"
        print(f"\n{head}{'issue':>11}{'ratio':>8}{'goal':>9}")
    for target, g in met.items():
        if "seconds" in g:
            cells = f"{g['seconds']:11.2f}" + f"{'-':>11}{'-':>8}" * 2
            goal = f"<= {MAX_STARTUP_S:g} s"
        else:
            cells, goal = f"{g['conveyor']:11.2f}", f">= {g['min_ratio']:g}x"
            for base, ratio in (("mlflow", "ratio"), ("mlflow_issue", "ratio_vs_issue")):
                cells += f"{g[base]:11.2f}{g[ratio]:7.3g}x" if base in g else f"{'-':>11}{'-':>8}"
        print(f"{target:<26}{cells}{goal:>9}  {'met' if g['met'] else 'MISSED'}")
    if met:
        print("issue: MLflow 3.17.2 as measured for the issue; met / MISSED against this run's")
        print("MLflow when it was measured (--compare-mlflow), else against the issue's figures")


def report(b: Bench, out: Path) -> None:
    med = {s: {f: statistics.median(v) for f, v in figs.items()} for s, figs in b.samples.items()}
    met = goals(med)
    mls = mlserver_goals(med)
    print_tables(b, med, met, mls)
    machine = {"nproc": os.cpu_count(), "python": platform.python_version()}
    scenarios = {
        k: {"protocol": p, "path": PATHS[p], "rows": r, "connections": c}
        for k, (p, r, c) in SCENARIOS.items()
        if p in b.protocols
    }
    result = {
        "repeats": b.repeats,
        "duration_s": b.duration,
        "machine": {**machine, "platform": platform.platform(), "versions": versions(b)},
        "notes": NOTES,
        "scenarios": scenarios,
        "medians": med,
        "samples": b.samples,
        "targets": met,
        "mlserver_targets": mls,
        "mlflow_reference": MLFLOW_REFERENCE,
        "all_targets_met": bool(met or mls)
        and all(g["met"] for g in [*met.values(), *mls.values()]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def versions(b: Bench) -> dict[str, str]:
    wrk = subprocess.run([b.wrk, "-v"], capture_output=True, text=True)  # exits 1
    out = {"wrk": wrk.stdout.split(" [")[0]}
    for s in b.servers:
        exe = Path(s.cmd[0])
        code = f"import importlib.metadata as m; print(m.version({s.name!r}))"
        out[s.name] = run_checked(
            [str(exe.parent / "python"), "-c", code], REPO_ROOT, s.env
        ).stdout.strip()
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run (20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario and server (3)")
    parser.add_argument("--conveyor", default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"))
    parser.add_argument("--compare-mlflow", metavar="PYTHON", help="python of an MLflow venv")
    parser.add_argument("--compare-mlserver", metavar="PYTHON", help="python of an MLServer venv")
    parser.add_argument("--skip-conveyor", action="store_true", help="the others alone")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "serving.json"))
    args = parser.parse_args(argv)
    if args.duration < 1 or args.repeats < 1:
        parser.error("--duration and --repeats must be at least 1")
    if args.skip_conveyor and not (args.compare_mlflow or args.compare_mlserver):
        parser.error("--skip-conveyor needs --compare-mlflow or --compare-mlserver")
    return args


def run(args: argparse.Namespace) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk not found; run: bash bench/install_wrk.sh")
    conveyor = find_exe(args.conveyor, "conveyor", "make test creates .venv; or --conveyor PATH")
    work = Path(args.work).absolute() / "serving"
    remove(work)
    work.mkdir(parents=True)
    # The pipeline's stages run `python`: the conveyor venv's, which has scikit-learn.
    env = {**os.environ, "PATH": f"{conveyor.parent}{os.pathsep}{os.environ['PATH']}"}
    project = make_project(conveyor, work, env)
    serve = [str(conveyor), "serve", MODEL_URI, "--host", HOST, "--port", "{port}"]
    servers = [
        Server(
            "conveyor",
            serve,
            project,
            env,
            "/v2/health/ready",
            work / "conveyor.log",
            protocols=(INVOCATIONS, V2),
        )
    ]
    servers = servers[: not args.skip_conveyor]
    if args.compare_mlflow:
        python = find_exe(
            args.compare_mlflow, "MLflow venv's python", "bash bench/install_mlflow.sh"
        )
        # `mlflow models serve` runs `uvicorn` through bash: the venv's bin must be on PATH.
        mlflow_env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
        mlflow_env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        (work / "mlflow_train.py").write_text(MLFLOW_TRAIN)
        model = work / "mlflow-model"
        run_checked(
            [str(python), str(work / "mlflow_train.py"), str(project), str(model)], work, mlflow_env
        )
        cmd = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model)]
        cmd += ["--env-manager", "local", "-h", HOST, "-p", "{port}"]
        servers.append(Server("mlflow", cmd, work, mlflow_env, "/ping", work / "mlflow.log"))
    if args.compare_mlserver:
        servers.append(mlserver(args.compare_mlserver, conveyor, project, work))
    compared = {p for s in servers if s.name != "conveyor" for p in s.protocols}
    protocols = compared or {INVOCATIONS, V2}
    bodies = write_bodies(project, work, protocols)
    bench = Bench(wrk, servers, bodies, args.duration, args.repeats, protocols)
    run_all(bench)
    report(bench, Path(args.out).absolute())
    remove(work)


def mlserver(raw_python: str, conveyor: Path, project: Path, work: Path) -> Server:
    """MLServer serving the example's Pipeline, fitted and saved in its own venv."""
    python = find_exe(raw_python, "MLServer venv's python", "bash bench/install_mlserver.sh")
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    folder = work / "mlserver-model"
    # train's params, read by conveyor's venv (MLServer's need not have PyYAML)
    read = "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))['train']))"
    train = run_checked([str(conveyor.parent / "python"), "-c", read], project, env).stdout
    (work / "mlserver_train.py").write_text(MLSERVER_TRAIN)
    script = [str(python), str(work / "mlserver_train.py"), str(project), str(folder)]
    run_checked([*script, MODEL_NAME, train.strip()], work, env)
    cmd = [str(python.parent / "mlserver"), "start", str(folder)]
    ready = "/v2/health/ready"
    return Server(
        "mlserver",
        cmd,
        work,
        env,
        ready,
        work / "mlserver.log",
        protocols=(V2,),
        settings=folder / "settings.json",
    )


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
