#!/usr/bin/env python3
"""Tracking benchmark: time conveyor's logging API and `runs list`, optionally against MLflow.

Medians over repeats, the tools interleaved in alternating order (as bench/data.py), every
workload in a fresh subprocess and a fresh project (conveyor) or SQLite database (MLflow, made
before any timing). log_metric_10k: 10,000 `log_metric` calls with steps in one run, timed inside
the process from just before the run starts until it ended (conveyor: spool file fsynced; MLflow:
committed); *_in_store: the same plus applying the spool to conveyor's store (its first open
creates it); log_batch_10k: MLflow's `log_batch`; runs_500: 500 runs of 10 params and 5 metrics.
runs_list_sort / _filter: whole commands over those runs, `conveyor runs list --sort=-metrics.m1`
/ `--filter "params.p1 > 100"` with `--limit 20`, and for MLflow a python script calling
`search_runs(max_results=20)`, also timed in-process (search_*_inproc). MLflow compares params as
strings only (=, !=, LIKE), so its filter is `metrics.m0 > 100`, m0 holding p1: the same runs
match. import: `python -c "import conveyor"` (or mlflow). From the repo root::

    .venv/bin/python bench/tracking.py
    bash bench/install_mlflow.sh
    .venv/bin/python bench/tracking.py --compare-mlflow bench/.work/mlflow-venv/bin/python

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
from common import BenchError, find_exe, remove, run_checked, timed

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

INNER = 3  # samples per repeat of the list commands, searches and imports
POINTS, RUNS, LIMIT, QUICK_POINTS = 10_000, 500, 20, 1_000
SORT, FILTER = "-metrics.m1", "params.p1 > 100"
FIGURES = (
    *("log_metric_10k", "log_metric_10k_in_store", "log_batch_10k", "runs_500"),
    *("runs_500_in_store", "runs_list_sort", "runs_list_filter", "search_sort_inproc"),
    *("search_filter_inproc", "import"),
)
RATIO_TARGETS = {"log_metric_10k": 200.0, "runs_500": 20.0}  # minimum mlflow / conveyor time
MAX_SECONDS = {"runs_list_sort": 0.3, "runs_list_filter": 0.3, "import": 0.1}
# row -> (mlflow figure, conveyor figure) whose medians give the row's ratio
RATIO_OF = {f: (f, f) for f in ("log_metric_10k", "runs_500", "runs_list_sort", "import")}
RATIO_OF |= {"runs_list_filter": ("runs_list_filter", "runs_list_filter")}
RATIO_OF |= {"log_metric_10k_in_store": ("log_metric_10k", "log_metric_10k_in_store")}
RATIO_OF |= {"runs_500_in_store": ("runs_500", "runs_500_in_store")}
RATIO_OF |= {"log_batch_10k": ("log_batch_10k", "log_metric_10k")}
# MLflow 3.17.2 on this machine, as measured for the issue (medians, seconds).
MLFLOW_REFERENCE = {"log_metric_10k": "61-63", "log_batch_10k": "1.2", "runs_500": "13-20"}
MLFLOW_REFERENCE |= {"search_sort_inproc": "0.53", "search_filter_inproc": "0.21"}
MLFLOW_REFERENCE |= {"import": "1.97"}

NOTES = [
    "ratios: *_in_store rows divide MLflow's time of the same workload; log_batch_10k "
    "divides MLflow's log_batch by conveyor's 10,000 log_metric calls",
    "runs_list_*: conveyor's CLI; MLflow's a python script calling search_runs "
    "(search_*_inproc: the same calls inside one process, DataFrame included)",
    "import: python -c 'import conveyor' / 'import mlflow'",
]

# The runs' content, shared by the workers and the checks below.
CONTENT = """
def params(i):
    return {f"p{j}": (i * 37 + j * 11) % 1000 for j in range(10)}

def metrics(i):
    rest = {f"m{k}": (i * 7919 + k) % 1000 / 1000 for k in range(1, 5)}
    return {"m0": float(params(i)["p1"]), **rest}
"""

CONVEYOR_WORKER = """
import json, sys, time
from pathlib import Path
import conveyor

what, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
if what == "log":
    with conveyor.start_run(name="log") as run:
        for i in range(n):
            conveyor.log_metric("loss", 1.0 / (i + 1), step=i)
else:
    for i in range(n):
        with conveyor.start_run(name=f"r{i}"):
            conveyor.log_params(params(i))
            conveyor.log_metrics(metrics(i))
durable = time.perf_counter() - start
from conveyor.tracking.db import opened

with opened(Path.cwd()) as store:
    stored = time.perf_counter() - start
    count = len(store.history(run.id, "loss")) if what == "log" else len(store.runs())
print(json.dumps({"seconds": durable, "in_store": stored, "count": count}))
"""

MLFLOW_WORKER = """
import json, sys, time
from pathlib import Path
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

what, n = sys.argv[1], int(sys.argv[2])
mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
client = MlflowClient()
QUERIES = {
    "sort": {"order_by": ["metrics.m1 DESC"]},
    "filter": {"filter_string": "metrics.m0 > 100"},
}
if what in QUERIES:  # a whole command: the caller times the process
    print(mlflow.search_runs(max_results=n, **QUERIES[what]).to_string())
    sys.exit()
client.search_experiments()  # creates the database and its tables: not timed
out = {}
start = time.perf_counter()
if what == "log":
    with mlflow.start_run(run_name="log") as run:
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
elif what == "batch":
    with mlflow.start_run(run_name="batch") as run:
        now = int(time.time() * 1000)
        points = [Metric("loss", 1.0 / (i + 1), now, i) for i in range(n)]
        client.log_batch(run.info.run_id, metrics=points)
elif what == "runs":
    for i in range(n):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_params(params(i))
            mlflow.log_metrics(metrics(i))
else:  # "search": in-process timings over the runs already there
    for name, query in QUERIES.items():
        out[name] = []
        for _ in range(int(sys.argv[3])):
            t = time.perf_counter()
            mlflow.search_runs(max_results=n, **query)
            out[name].append(time.perf_counter() - t)
        out[name + "_count"] = len(mlflow.search_runs(max_results=10_000, **query))
if what in ("log", "batch", "runs"):
    out["seconds"] = time.perf_counter() - start
    out["count"] = (
        len(client.get_metric_history(run.info.run_id, "loss"))
        if what != "runs" else len(mlflow.search_runs(max_results=10_000))
    )
print(json.dumps(out))
"""


@dataclass
class Bench:
    conveyor: Path  # the CLI
    pythons: dict[str, Path]  # tool -> the python that imports it
    quick: bool  # MLflow logs QUICK_POINTS points, and the time is scaled up
    env: dict[str, str]
    work: Path
    want: set[str]
    repeat: int
    samples: dict[str, dict[str, list[float]]]  # tool -> figure -> seconds

    def run(self, cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return run_checked(cmd, cwd, self.env)

    def timed(self, cmd: Sequence[str], cwd: Path) -> float:
        return timed(cmd, cwd, self.env)

    def worker(self, tool: str, cwd: Path, *args: object) -> dict[str, Any]:
        """Run a workload in a fresh interpreter; it times itself and prints JSON."""
        os.sync()
        proc = self.run(self.worker_cmd(tool, *args), cwd)
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))

    def worker_cmd(self, tool: str, *args: object) -> list[str]:
        return [str(self.pythons[tool]), str(self.work / f"{tool}_worker.py"), *map(str, args)]

    def time_import(self, tool: str, rep: int) -> None:
        for _ in range(INNER if "import" in self.want else 0):
            cmd = [str(self.pythons[tool]), "-c", f"import {tool}"]
            self.record(tool, "import", self.timed(cmd, self.work), rep)

    def record(self, tool: str, figure: str, seconds: float, rep: int, note: str = "") -> None:
        if figure not in self.want:
            return
        self.samples.setdefault(tool, {}).setdefault(figure, []).append(seconds)
        print(f"  [{rep + 1}] {tool:<9} {figure:<24} {seconds:8.3f} s {note}", flush=True)

    def fresh(self, name: str) -> Path:
        """An empty git repository (MLflow records its commit, conveyor its state)."""
        path = self.work / name
        remove(path)
        path.mkdir(parents=True)
        self.run(["git", "init", "-q"], path)
        return path

    def project(self, name: str) -> Path:
        path = self.fresh(name)
        self.run([str(self.conveyor), "init"], path)
        return path


def expect(what: str, got: object, wanted: object) -> None:
    if got != wanted:
        raise BenchError(f"{what}: got {got!r}, expected {wanted!r}")


def conveyor_session(b: Bench, rep: int, runs_match: int, best_m1: float) -> None:
    lists = {"runs_list_sort", "runs_list_filter"}
    for what, n, fig in (("log", POINTS, "log_metric_10k"), ("runs", RUNS, "runs_500")):
        if not b.want & {fig, f"{fig}_in_store", *(lists if what == "runs" else ())}:
            continue
        p = b.project(f"conveyor-{what}-r{rep}")
        out = b.worker("conveyor", p, what, n)
        expect(f"conveyor {what}: records in the store", out["count"], n)
        b.record("conveyor", fig, out["seconds"], rep, "(durable in the spool)")
        b.record("conveyor", f"{fig}_in_store", out["in_store"], rep)
        if what == "runs" and b.want & lists:
            conveyor_lists(b, p, rep, runs_match, best_m1)
        remove(p)
    b.time_import("conveyor", rep)


def conveyor_lists(b: Bench, p: Path, rep: int, runs_match: int, best_m1: float) -> None:
    b.run([str(b.conveyor), "runs", "list"], p)  # applies the spool (nothing left here)
    # --sort=KEY: with `--sort -metrics.m1` argparse takes the key for an option and fails.
    for figure, opts in (("runs_list_sort", [f"--sort={SORT}"]), ("runs_list_filter", [])):
        opts = opts or ["--filter", FILTER]
        check = [str(b.conveyor), "runs", "list", *opts, "--limit", str(RUNS), "--json"]
        listed = json.loads(b.run(check, p).stdout)
        if figure == "runs_list_sort":
            expect(f"{figure}: the first run's m1", listed[0]["metrics"]["m1"], best_m1)
        else:
            expect(f"{figure}: runs listed", len(listed), runs_match)
        for _ in range(INNER if figure in b.want else 0):
            cmd = [str(b.conveyor), "runs", "list", *opts, "--limit", str(LIMIT)]
            b.record("conveyor", figure, b.timed(cmd, p), rep)


def mlflow_session(b: Bench, rep: int, runs_match: int) -> None:
    calls = QUICK_POINTS if b.quick else POINTS
    for what, n, fig in (("log", calls, "log_metric_10k"), ("batch", POINTS, "log_batch_10k")):
        if fig in b.want:
            p = b.fresh(f"mlflow-{what}-r{rep}")
            out = b.worker("mlflow", p, what, n)
            expect(f"mlflow {what}: points in the store", out["count"], n)
            note = f"({n:,} calls, scaled)" if n != POINTS else ""
            b.record("mlflow", fig, out["seconds"] * POINTS / n, rep, note)
            remove(p)
    searches = {"runs_list_sort", "runs_list_filter", "search_sort_inproc", "search_filter_inproc"}
    if b.want & ({"runs_500"} | searches):
        p = b.fresh(f"mlflow-runs-r{rep}")
        out = b.worker("mlflow", p, "runs", RUNS)
        expect("mlflow runs in the store", out["count"], RUNS)
        b.record("mlflow", "runs_500", out["seconds"], rep)
        out = b.worker("mlflow", p, "search", LIMIT, INNER) if b.want & searches else {}
        expect("mlflow runs matching the filter", out.get("filter_count", runs_match), runs_match)
        for query in ("sort", "filter") if out else ():
            for seconds in out[query]:
                b.record("mlflow", f"search_{query}_inproc", seconds, rep, "(in-process)")
            for _ in range(INNER if f"runs_list_{query}" in b.want else 0):
                cmd = b.worker_cmd("mlflow", query, LIMIT)
                b.record("mlflow", f"runs_list_{query}", b.timed(cmd, p), rep, "(python script)")
        remove(p)
    b.time_import("mlflow", rep)


def run_all(b: Bench) -> None:
    for tool, code in (("conveyor", CONVEYOR_WORKER), ("mlflow", MLFLOW_WORKER)):
        (b.work / f"{tool}_worker.py").write_text(CONTENT + code)
    c: dict[str, Any] = {}
    exec(CONTENT, c)
    runs_match = sum(c["params"](i)["p1"] > 100 for i in range(RUNS))
    best_m1 = max(c["metrics"](i)["m1"] for i in range(RUNS))
    tools = list(b.pythons)
    for rep in range(b.repeat):
        print(f"repeat {rep + 1}/{b.repeat}", flush=True)
        for tool in tools if rep % 2 == 0 else tools[::-1]:
            if tool == "conveyor":
                conveyor_session(b, rep, runs_match, best_m1)
            else:
                mlflow_session(b, rep, runs_match)


def table(b: Bench, med: dict[str, dict[str, float]], ratio: dict[str, float], goals: dict) -> str:
    names = [n for n in ("conveyor", "mlflow") if n in med]
    head = f"{'figure':<25}" + "".join(f"{n + ' s':>12}" for n in names)
    head += (f"{'mlf/conv':>10}" if "mlflow" in names else "") + f"{'mlflow (issue)':>16}  target"
    lines = [head, "-" * (len(head) + 10)]
    for fig in FIGURES:
        if not any(fig in med[n] for n in names):
            continue
        mark = "*" if b.quick and fig == "log_metric_10k" else ""
        row = f"{fig + mark:<25}" + "".join(
            f"{med[n][fig]:12.3f}" if fig in med[n] else f"{'-':>12}" for n in names
        )
        if "mlflow" in names:
            row += f"{ratio[fig]:9.1f}x" if fig in ratio else f"{'-':>10}"
        row += f"{MLFLOW_REFERENCE.get(fig, '-'):>16}"
        if fig in goals:
            limit = f"<= {MAX_SECONDS[fig]:g} s" if fig in MAX_SECONDS else ""
            row += f"  {limit or f'>= {RATIO_TARGETS[fig]:g}x':<10}"
            row += "PASS" if goals[fig]["pass"] else "FAIL"
        lines.append(row)
    return "\n".join(lines)


def notes(b: Bench) -> list[str]:
    if "mlflow" not in b.pythons:
        return []
    quick = f"* MLflow made {QUICK_POINTS:,} log_metric calls; its time is scaled x10"
    return NOTES + ([quick] if b.quick else [])


def versions(b: Bench) -> dict[str, str]:
    out = {"conveyor": b.run([str(b.conveyor), "--version"], REPO_ROOT).stdout.strip()}
    if "mlflow" in b.pythons:
        code = "import importlib.metadata as m; print(m.version('mlflow'))"
        out["mlflow"] = b.run([str(b.pythons["mlflow"]), "-c", code], REPO_ROOT).stdout.strip()
    return out


def report(b: Bench, out: Path) -> None:
    med = {t: {f: statistics.median(v) for f, v in figs.items()} for t, figs in b.samples.items()}
    conv, mlf = med.get("conveyor", {}), med.get("mlflow", {})
    ratio = {row: mlf[m] / conv[c] for row, (m, c) in RATIO_OF.items() if m in mlf and conv.get(c)}
    goals: dict[str, dict[str, object]] = {}
    for fig, limit in MAX_SECONDS.items():
        if fig in conv:
            goals[fig] = {"max_seconds": limit, "seconds": conv[fig], "pass": conv[fig] <= limit}
    for fig, minimum in RATIO_TARGETS.items():
        if fig in ratio:
            goals[fig] = {"min_ratio": minimum, "ratio": ratio[fig], "pass": ratio[fig] >= minimum}
    print(f"\nmedians of {b.repeat} repeat(s) ({INNER} samples each for lists, searches, imports)")
    print(table(b, med, ratio, goals))
    print("\n".join(notes(b)))
    machine = {"nproc": os.cpu_count(), "python": platform.python_version()}
    result = {
        "repeat": b.repeat,
        "inner": INNER,
        "machine": {**machine, "platform": platform.platform(), "tool_versions": versions(b)},
        "mlflow_quick": b.quick,
        "mlflow_log_metric_calls": QUICK_POINTS if b.quick else POINTS,
        "notes": notes(b),
        "medians": med,
        "samples": b.samples,
        "ratios": ratio,
        "targets": goals,
        "mlflow_reference": MLFLOW_REFERENCE,
        "all_targets_pass": bool(goals) and all(g["pass"] for g in goals.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="repeats per tool (default 5, 2 with MLflow)")
    parser.add_argument("--only", help=f"comma list of figures: {','.join(FIGURES)}")
    parser.add_argument("--conveyor", default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"))
    parser.add_argument("--compare-mlflow", metavar="PYTHON", help="python of an MLflow venv")
    parser.add_argument(
        "--mlflow-quick", action="store_true", help=f"MLflow: {QUICK_POINTS:,} log_metric calls x10"
    )
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "tracking.json"))
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.mlflow_quick and not args.compare_mlflow:
        parser.error("--mlflow-quick needs --compare-mlflow")
    return args


def run(args: argparse.Namespace) -> None:
    want = set(FIGURES)
    if args.only:
        want = {name.strip() for name in args.only.split(",") if name.strip()}
        if want - set(FIGURES):
            raise BenchError(f"unknown figure(s) {sorted(want - set(FIGURES))}")
    conveyor = find_exe(args.conveyor, "conveyor", "make test creates .venv; or --conveyor PATH")
    pythons = {"conveyor": conveyor.parent / "python"}
    if args.compare_mlflow:
        hint = "run: bash bench/install_mlflow.sh"
        pythons["mlflow"] = find_exe(args.compare_mlflow, "MLflow venv's python", hint)
    work = Path(args.work).absolute() / "tracking"  # not runs/: bench/pipeline.py removes it
    remove(work)
    work.mkdir(parents=True)
    # No telemetry from MLflow, and no warning from GitPython if git were missing.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    env["GIT_PYTHON_REFRESH"] = "quiet"
    repeat = args.repeat or (2 if "mlflow" in pythons else 5)
    bench = Bench(conveyor, pythons, args.mlflow_quick, env, work, want, repeat, {})
    try:
        run_all(bench)
    finally:
        remove(work)
    report(bench, Path(args.out).absolute())


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
