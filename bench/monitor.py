#!/usr/bin/env python3
"""Monitoring benchmark: merging window profiles, taking feedback, and what the monitor costs the
server it runs in.

1. Merging profiles (in this process): a seeded reference of 20,000 rows and 20 features (15
   numeric, 5 categorical) gives the bins (``conveyor.monitor.profiles.reference``); 1,000
   windows of 900-1,100 rows each of the same distribution are profiled on them (``profile``,
   each call timed), and ``merge`` of all 1,000 profiles is timed (median of --merge-repeats).
   The merged profile is checked against one profile of all the windows' rows. Also: one
   window's profile as compact JSON, in bytes. Target: merge <= 1 s.
2. Feedback (processes): a CSV and a Parquet file of 1,000,000 (id, label) rows (32-character
   hex ids, labels 0/1), each taken by ``conveyor feedback add FILE`` (the venv's entry point,
   in a project made by ``conveyor init``) end to end, from process start to exit, the
   project's feedback folder emptied before each run; the two files interleaved. Target:
   >= 50,000 labels/s. Then one untimed breakdown in a process of its own (the steps of
   ``feedback.add``: reading the file, checking each row, skipping seen ids, writing the
   segment), so a miss says where the time goes.
3. Monitoring on vs off (processes, wrk): the example project (examples/classifier, set up as
   bench/serving.py does) with the same Pipeline fitted on the same rows as a table (version
   2: its signature names the 30 features, so requests are ``dataframe_split`` tables; the
   example's own version 1 takes one unnamed tensor, whose rows the monitor names by the
   reference's columns: ``--model example`` serves it). conveyor.yaml gets a
   ``production`` environment (version 2 its stable version) with a ``monitor:`` entry: the
   training data as reference (label and id left out), windows of 1,000 rows, drift ``auto``,
   quality (accuracy, min_labels 200), two alerts, ``interval`` --interval (10 s, its
   default). ``conveyor serve --env production --workers 2`` runs with its monitor (a process
   of its own under SCHED_IDLE, beside the workers) and with ``--no-monitor``, interleaved (on,
   off, then off, on...); each run: 1,200 requests with ids and their true labels through
   ``conveyor feedback add`` (so one window closes before the load), the monitor's next tick
   awaited, wrk (bench/serving.lua, the 1-row table, one thread, --connections) for one
   monitor interval unmeasured, so that the measured run holds a tick over a full interval's
   traffic as under steady load, then --duration seconds measured. After each monitored run
   its new window files and ``conveyor monitor status production --json`` are checked. The
   monitor's CPU time over the measured run is reported. Target: p99 on / off <= 1.05, as the
   median over the repeats of the ratio within each repeat (the servers of a repeat run back
   to back; between repeats this shared machine's p99 moves by more than the target); the
   ratio of the medians is shown too. ``--nice N`` adds a third server, monitored, whose
   monitor's threads are set to nice N (or SCHED_IDLE: ``idle``); ``--log-sample RATE`` has both
   servers log that share of the requests; ``--py-spy FILE`` records the monitor's process
   during the first measured monitored run.

From the repo root::

    bash bench/install_wrk.sh
    .venv/bin/python bench/monitor.py --duration 3 --repeats 1 --labels 100000
    .venv/bin/python bench/monitor.py --only serving --repeats 10 --nice 19 --py-spy /tmp/m.raw

Writes bench/results/monitor.json.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

import common
from common import BenchError, find_exe, remove, run_checked
from conveyor.monitor.profiles import NumericSummary, merge, profile, reference
from serving import HOST, INVOCATIONS, PATHS, Server, make_project, measure, write_bodies

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

MAX_MERGE_S = 1.0
MIN_LABELS_PER_S = 50_000.0
MAX_P99_RATIO = 1.05
NUMERIC, CATEGORICAL = 15, 5
LABELLED = 1200  # requests with ids and labels in each run: one window closed before wrk

MONITOR = """
deploy:
  production:
    model: classifier
    strategy: {{canary: {{steps: [{{weight: 10}}, {{pause: }}]}}}}
    analysis: {{interval: 1s, deadline: 1h, checks: []}}

monitor:
  production:
    reference: data/prepared/train.csv
    label: malignant
    exclude: [id]
    window: {{rows: 1000}}
    drift: {{method: auto}}
    quality: {{metric: accuracy, min: 0.8, min_labels: 200}}
    interval: {interval}
    alerts:
      - {{name: drift, when: "drift.share > 0.5", for: 2 windows, severity: warning}}
      - {{name: quality-drop, when: "quality.accuracy < 0.8", for: 1 window,
         severity: critical}}
"""

# Version 2: the example's Pipeline fitted on the same rows as a table with named columns, as a
# model trained on a DataFrame is (its signature names the 30 features; clients send tables).
NAMED = """
import sys
from pathlib import Path

import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import models

project, out = Path(sys.argv[1]), Path(sys.argv[2])
params = yaml.safe_load((project / "params.yaml").read_text())["train"]
table = pd.read_csv(project / "data/prepared/train.csv")
x, y = table.iloc[:, 1:-1], table.iloc[:, -1].astype(int)
model = make_pipeline(
    StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]))
).fit(x, y)
models.save(model, out, example=x.head(5), name="classifier")
"""

# feedback.add's steps, timed one by one (a process of its own: its memory is its own)
BREAKDOWN = """
import json, resource, sys, time
from pathlib import Path

import orjson

from conveyor.monitor import feedback

path, place = Path(sys.argv[1]), Path(sys.argv[2])
steps, last = {}, time.perf_counter()


def step(name):
    global last
    now = time.perf_counter()
    steps[name] = now - last
    last = now


feedback._frame(path)  # once untimed: the file in the page cache for both steps below
last = time.perf_counter()
pairs = feedback.table(path)
step("table: read the file, check each row")
feedback._frame(path)
step("  of which reading the file (pandas)")
labels, _ = feedback.fresh(pairs, feedback.Seen(place).refresh(), time.time())
step("skip seen ids, make records (fresh)")
data = b"".join(orjson.dumps(one, option=orjson.OPT_APPEND_NEWLINE) for one in labels)
step("one orjson.dumps per label, joined")
del data
chunks = [
    b"".join([orjson.dumps(one, option=orjson.OPT_APPEND_NEWLINE) for one in labels[i : i + 10000]])
    for i in range(0, len(labels), 10000)
]
step("the same in chunks of 10,000 (not what add does)")
del chunks
feedback.append(place, labels)
step("append: dumps, write, fsync, rename")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": steps, "peak_rss_mib": peak}))
"""


# -- 1. merging profiles -------------------------------------------------------------------------


def frame(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Rows of 15 numeric features (normal, lognormal, uniform, integer counts) and 5
    categorical ones (3 to 40 categories, skewed)."""
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        kind = i % 4
        if kind == 0:
            columns[f"num{i}"] = rng.normal(10.0 * i, 1.0 + i, rows)
        elif kind == 1:
            columns[f"num{i}"] = rng.lognormal(0.0, 0.5 + i / 20, rows)
        elif kind == 2:
            columns[f"num{i}"] = rng.uniform(-i, i + 1.0, rows)
        else:
            columns[f"num{i}"] = rng.poisson(3.0 + i, rows).astype(np.float64)
    for j in range(CATEGORICAL):
        k = (3, 8, 12, 25, 40)[j]
        weights = 1.0 / np.arange(1, k + 1)
        columns[f"cat{j}"] = rng.choice(
            [f"v{c}" for c in range(k)], rows, p=weights / weights.sum()
        )
    return pd.DataFrame(columns)


def merging(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    bins, _ = reference(frame(20_000, rng), categorical=[f"cat{j}" for j in range(CATEGORICAL)])
    sizes = rng.integers(900, 1101, args.windows)
    whole = frame(int(sizes.sum()), rng)
    cuts = np.concatenate(([0], np.cumsum(sizes)))
    windows = [whole.iloc[a:b] for a, b in itertools.pairwise(cuts)]
    profile(windows[0], bins)  # warm up
    profiles, profile_s = [], []
    for w in windows:
        start = time.perf_counter()
        profiles.append(profile(w, bins))
        profile_s.append(time.perf_counter() - start)
    merge_s = []
    for _ in range(args.merge_repeats):
        start = time.perf_counter()
        merged = merge(profiles)
        merge_s.append(time.perf_counter() - start)
    check_merged(merged, profile(whole, bins))
    sizes_json = [len(orjson.dumps(p.to_json())) for p in profiles]
    bins_json = len(orjson.dumps(bins.to_json()))
    fig = {
        "windows": args.windows,
        "rows": int(sizes.sum()),
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "merge_s": statistics.median(merge_s),
        "merge_samples_s": merge_s,
        "profile_window_ms": statistics.median(profile_s) * 1e3,
        "profile_json_bytes": statistics.median(sizes_json),
        "bins_json_bytes": bins_json,
        "max_merge_s": MAX_MERGE_S,
        "met": statistics.median(merge_s) <= MAX_MERGE_S,
    }
    print(
        f"  merge of {args.windows:,} profiles: {fig['merge_s']:.3f} s (median of "
        f"{len(merge_s)}: {', '.join(f'{s:.3f}' for s in merge_s)})\n"
        f"  profile of one window (~1,000 rows): {fig['profile_window_ms']:.2f} ms; "
        f"its JSON: {fig['profile_json_bytes']:,.0f} bytes (the bins: {bins_json:,} bytes)",
        flush=True,
    )
    return fig


def check_merged(merged: Any, whole: Any) -> None:
    """The merge of the windows equals one profile of their rows (sums up to rounding)."""
    if merged.rows != whole.rows:
        raise BenchError(f"merged {merged.rows} rows, profiled {whole.rows}")
    for name, a in merged.features.items():
        b = whole.features[name]
        if a.counts != b.counts or a.count != b.count or a.nulls != b.nulls:
            raise BenchError(f"merged counts of {name} differ from the whole profile's")
        numeric = isinstance(a, NumericSummary) and isinstance(b, NumericSummary)
        if numeric and ((a.min, a.max) != (b.min, b.max) or not np.isclose(a.sum, b.sum)):
            raise BenchError(f"merged sums of {name} differ from the whole profile's")


# -- 2. feedback -------------------------------------------------------------------------------


def label_files(work: Path, n: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    halves = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    ids = [f"{a:016x}{b:016x}" for a, b in halves.tolist()]
    table = pd.DataFrame({"id": ids, "label": rng.integers(0, 2, n)})
    files = {"csv": work / "labels.csv", "parquet": work / "labels.parquet"}
    table.to_csv(files["csv"], index=False)
    table.to_parquet(files["parquet"], index=False)
    return files


def feedback_figures(
    args: argparse.Namespace, conveyor: Path, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    project = work / "feedback-project"
    project.mkdir()
    run_checked(["git", "init", "-q"], project, env)
    run_checked([str(conveyor), "init"], project, env)
    files = label_files(work, args.labels, args.seed)
    stored = project / ".conveyor" / "feedback"
    samples: dict[str, list[float]] = {kind: [] for kind in files}
    for rep in range(args.feedback_repeats):
        order = list(files) if rep % 2 == 0 else list(files)[::-1]
        for kind in order:
            remove(stored)
            cmd = [str(conveyor), "feedback", "add", str(files[kind])]
            start = time.perf_counter()
            done = run_checked(cmd, project, env)
            seconds = time.perf_counter() - start
            if f"added {args.labels} labels" not in done.stdout:
                raise BenchError(f"feedback add {kind}: {done.stdout.strip()}")
            samples[kind].append(seconds)
            rate = args.labels / seconds
            print(f"  feedback add {kind:<7} {seconds:6.2f} s {rate:9,.0f} labels/s", flush=True)
    remove(stored)
    python = conveyor.parent / "python"
    (work / "breakdown.py").write_text(BREAKDOWN)
    out = run_checked(
        [str(python), str(work / "breakdown.py"), str(files["csv"]), str(stored)], project, env
    ).stdout
    breakdown = json.loads(out.strip().splitlines()[-1])
    for step, seconds in breakdown["seconds"].items():
        print(f"    {step:<50} {seconds:6.2f} s", flush=True)
    print(f"    peak RSS of the breakdown: {breakdown['peak_rss_mib']:,.0f} MiB", flush=True)
    fig: dict[str, Any] = {"labels": args.labels, "breakdown_csv": breakdown}
    for kind, seconds in samples.items():
        med = statistics.median(seconds)
        rate = args.labels / med
        fig[kind] = {
            "seconds": med,
            "samples_s": seconds,
            "labels_per_s": rate,
            "min_labels_per_s": MIN_LABELS_PER_S,
            "met": rate >= MIN_LABELS_PER_S,
        }
    fig["file_bytes"] = {kind: path.stat().st_size for kind, path in files.items()}
    for path in files.values():
        path.unlink()
    return fig


# -- 3. serving with the monitor on and off -----------------------------------------------------


def setup_serving(
    args: argparse.Namespace, conveyor: Path, work: Path, env: dict[str, str]
) -> tuple[Path, str]:
    """The project with production's stable version: the example's own (1, ``--model
    example``) or the same fit on named columns (2, the default); the version."""
    project = make_project(conveyor, work, env)  # version 1, alias classifier@production
    version = "1"
    if args.model == "named":
        (work / "named.py").write_text(NAMED)
        python = conveyor.parent / "python"
        run_checked([str(python), str(work / "named.py"), str(project), "named"], project, env)
        run_checked([str(conveyor), "models", "register", "classifier", "named"], project, env)
        version = "2"
    config = project / "conveyor.yaml"
    text = config.read_text()
    head = text[: text.index("\ndeploy:")] if "\ndeploy:" in text else text
    config.write_text(head + MONITOR.format(interval=f"{args.interval:g}s"))
    deploy = [str(conveyor), "deploy", f"models:/classifier/{version}", "--env", "production"]
    run_checked(deploy, project, env)
    return project, version


def labelled_rows(project: Path) -> tuple[list[str], list[tuple[list[float], str]]]:
    """The test set's feature names, and its rows with their true labels."""
    with (project / "data" / "prepared" / "test.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header[1:-1], [([float(v) for v in row[1:-1]], row[-1]) for row in rows]


def body(model: str, names: list[str], inputs: list[float]) -> bytes:
    """A 1-row /invocations body: rows for the example's tensor, a table for named columns."""
    if model == "example":
        return json.dumps({"inputs": [inputs]}).encode()
    return json.dumps({"dataframe_split": {"columns": names, "data": [inputs]}}).encode()


def send_labelled(
    server: Server, model: str, names: list[str], rows: list[tuple[list[float], str]], tag: str
) -> list[str]:
    """LABELLED requests with ids (cycling the test rows); each id with its true label."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    lines = []
    try:
        for i in range(LABELLED):
            inputs, truth = rows[i % len(rows)]
            request_id = f"{tag}-{i}"
            headers = {"Content-Type": "application/json", "x-request-id": request_id}
            conn.request("POST", PATHS[INVOCATIONS], body(model, names, inputs), headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise BenchError(f"{server.name}: {response.status} {answer[:300]!r}")
            lines.append(f"{request_id},{truth}")
    finally:
        conn.close()
    return lines


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of one process, its children apart; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def monitor_pid(supervisor: int, timeout: float = 30.0) -> int:
    """The monitor's process among the supervisor's children (its command names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{supervisor}/task").iterdir():
            for child in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"conveyor.cli.monitor_process" in cmdline:
                    return int(child)
        time.sleep(0.2)
    raise BenchError(f"no monitor process under the server's supervisor in {timeout:g} s")


def window_files(project: Path) -> int:
    """Windows closed so far: the highest window number plus one, by version (the files alone
    stop growing once ``retention`` removes the oldest)."""
    folder = project / ".conveyor/monitor/production/windows"
    numbers: dict[str, int] = {}
    for path in folder.glob("*/*.json"):
        if path.stem.isdigit():
            numbers[path.parent.name] = max(numbers.get(path.parent.name, -1), int(path.stem))
    return sum(n + 1 for n in numbers.values())


def state_at(project: Path) -> float:
    try:
        state = orjson.loads((project / ".conveyor/monitor/production/state.json").read_bytes())
        return float(state.get("at", 0.0))
    except (OSError, ValueError):
        return 0.0


def wait_for_tick(project: Path, after: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_at(project) > after:
            return
        time.sleep(0.1)
    raise BenchError(f"the monitor wrote no state in {timeout:g} s: is it running?")


def status(conveyor: Path, project: Path, env: dict[str, str]) -> dict[str, Any]:
    out = run_checked([str(conveyor), "monitor", "status", "production", "--json"], project, env)
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def pyspy_exe(args: argparse.Namespace) -> str:
    """py-spy: the venv's, else the one on PATH."""
    beside = Path(args.conveyor).parent / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy not found (--py-spy needs it): pip install py-spy")
    return found


def pyspy(args: argparse.Namespace, pid: int, seconds: int) -> subprocess.Popen[bytes] | None:
    if not args.py_spy:
        return None
    exe = pyspy_exe(args)
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
    cmd += ["--format", "raw", "--threads", "--output", str(Path(args.py_spy).absolute())]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serving_figures(
    args: argparse.Namespace,
    conveyor: Path,
    work: Path,
    env: dict[str, str],
    wrk: str,
) -> dict[str, Any]:
    project, version = setup_serving(args, conveyor, work, env)
    names, rows = labelled_rows(project)
    bodies = write_bodies(project, work, {INVOCATIONS})  # the 1-row body: test.csv's first row
    bodies[INVOCATIONS, 1].write_bytes(body(args.model, names, rows[0][0]))
    base = [str(conveyor), "serve", "--env", "production", "--workers", str(args.workers)]
    base += ["--host", HOST, "--port", "{port}"]
    if args.log_sample is not None:  # both servers log the same share
        base += ["--log-sample", f"{args.log_sample:g}"]
    servers = [
        Server("on", base, project, env, "/v2/health/ready", work / "on.log"),
        Server("off", [*base, "--no-monitor"], project, env, "/v2/health/ready", work / "off.log"),
    ]
    if args.nice is not None:  # the monitor's process at another priority: what would it do?
        servers.insert(1, Server("nice", base, project, env, "/v2/health/ready", work / "nice.log"))
    scenario = {1: "1row_c1", 16: "1row_c16"}.get(args.connections)
    if scenario is None:
        raise BenchError("--connections: 1 or 16 (bench/serving.py's 1-row scenarios)")
    samples: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    spied = False
    for rep in range(args.repeats):
        order = servers if rep % 2 == 0 else servers[::-1]
        print(f"repeat {rep + 1}/{args.repeats}", flush=True)
        for s in order:
            s.start()
            try:
                assert s.proc is not None
                lines = send_labelled(s, args.model, names, rows, f"{s.name}{rep}")
                answers = work / f"labels-{s.name}{rep}.csv"
                answers.write_text("id,label\n" + "\n".join(lines) + "\n")
                run_checked([str(conveyor), "feedback", "add", str(answers)], project, env)
                watcher = monitor_pid(s.proc.pid) if s.name != "off" else None
                if s.name == "nice" and watcher is not None:
                    renice_monitor(watcher, args.nice)
                if s.name != "off":
                    time.sleep(1.5)  # the log writes what it holds once a second
                    wait_for_tick(project, time.time(), args.interval + 30)
                    before = window_files(project)
                preload = max(1, round(args.interval))
                loaded(wrk, preload, bodies, s, scenario, failures)  # unmeasured
                cpu = cpu_s(s.proc.pid)
                mcpu = cpu_s(watcher) if watcher is not None else 0.0
                spy = None
                if s.name == "on" and not spied and watcher is not None:
                    spy, spied = pyspy(args, watcher, args.duration), True
                fig = loaded(wrk, args.duration, bodies, s, scenario, failures)
                fig["supervisor_cpu_s"] = cpu_s(s.proc.pid) - cpu
                fig["monitor_cpu_s"] = (cpu_s(watcher) - mcpu) if watcher is not None else 0.0
                if spy is not None:
                    spy.wait(args.duration + 30)
                for metric, value in fig.items():
                    samples[s.name].setdefault(metric, []).append(value)
                print(
                    f"  monitor {s.name:<3} {fig['rps']:8.1f} req/s {fig['p50_ms']:7.2f} ms p50 "
                    f"{fig['p99_ms']:7.2f} ms p99  monitor CPU {fig['monitor_cpu_s']:.2f} s",
                    flush=True,
                )
                if s.name != "off":
                    wait_for_tick(project, time.time() + 1.5, args.interval + 60)
                    worked = monitor_worked(conveyor, project, env, before)
                    checks.append({"server": s.name, **worked})
            finally:
                s.stop()
    med = {s: {k: statistics.median(v) for k, v in m.items()} for s, m in samples.items()}
    on, off = med["on"], med["off"]
    # Each repeat's servers ran back to back: the ratio within a repeat leaves out how the
    # machine drifts between repeats (a shared machine's p99 moves more than the target).
    paired = {
        name: [
            a / b for a, b in zip(samples[name]["p99_ms"], samples["off"]["p99_ms"], strict=True)
        ]
        for name in samples
        if name != "off"
    }
    others = {
        f"{name} / off": {m: med[name][m] / off[m] for m in ("p50_ms", "p99_ms", "rps", "cpu_ms")}
        for name in med
        if name not in ("on", "off")
    }
    return {
        "model": f"classifier/{version} ({args.model})",
        "connections": args.connections,
        "workers": args.workers,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "interval_s": args.interval,
        "log_sample": args.log_sample,
        "medians": med,
        "samples": samples,
        "ratios": {m: on[m] / off[m] for m in ("p50_ms", "p99_ms", "rps", "cpu_ms")},
        "paired_p99_ratios": paired,
        "paired_p99_ratio": {name: statistics.median(r) for name, r in paired.items()},
        "other_ratios": others,
        "nice": args.nice,
        "max_p99_ratio": MAX_P99_RATIO,
        "met": statistics.median(paired["on"]) <= MAX_P99_RATIO,
        "monitor_checks": checks,
        "failed_wrk_runs": failures,
    }


def loaded(
    wrk: str,
    duration: int,
    bodies: dict[tuple[str, int], Path],
    server: Server,
    scenario: str,
    failures: list[str],
) -> dict[str, float]:
    """One wrk run; one with failed requests is told, kept in ``failures`` and run again once
    (on a server started again if it had exited)."""
    try:
        return measure(wrk, duration, bodies, server, scenario)
    except BenchError as exc:
        assert server.proc is not None
        code = server.proc.poll()
        said = f"; the server exited ({code})" if code is not None else ""
        failures.append(f"monitor {server.name}: {exc}{said}")
        first = str(exc).splitlines()[0]
        print(f"  monitor {server.name}: {first}{said}; run again", file=sys.stderr, flush=True)
        if code is not None:
            server.stop()
            server.start()
        return measure(wrk, duration, bodies, server, scenario)


def renice_monitor(pid: int, nice: str) -> None:
    """Run every thread of the monitor's process at nice N (SCHED_OTHER), or SCHED_IDLE: a
    thread has a policy of its own on Linux, so each task is set."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        if nice == "idle":
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, int(nice))


def monitor_worked(
    conveyor: Path, project: Path, env: dict[str, str], before: int
) -> dict[str, Any]:
    """New window files since the run started, and the checks ``monitor status`` shows."""
    made = window_files(project) - before
    doc = status(conveyor, project, env)
    verdicts = {c["name"]: c["verdict"] for c in doc["checks"]}
    alerts = {name: a["status"] for name, a in doc["alerts"].items()}
    if made < 1 or not doc["checks"]:
        raise BenchError(f"the monitor did not work: {made} new windows, status: {doc}")
    shown = ", ".join(f"{k} {v}" for k, v in list(verdicts.items())[:6])
    more = f" (+{len(verdicts) - 6} more)" if len(verdicts) > 6 else ""
    print(
        f"    monitor: {made} new windows; status: {len(doc['checks'])} checks: "
        f"{shown}{more}; alerts: {alerts}",
        flush=True,
    )
    quality = next((c for c in doc["checks"] if c["name"].startswith("quality")), None)
    return {"new_windows": made, "checks": len(doc["checks"]), "alerts": alerts, "quality": quality}


# -- report --------------------------------------------------------------------------------------


def report(result: dict[str, Any], out: Path) -> None:
    print(f"\n{'figure':<48}{'value':>14}{'target':>14}")
    m = result.get("merge")
    if m:
        line = f"{m['merge_s']:.3f} s"
        print(f"{'merge of 1,000 window profiles':<48}{line:>14}{'<= 1 s':>14}  {verdict(m)}")
        line = f"{m['profile_window_ms']:.2f} ms"
        print(f"{'profile of one window (~1,000 rows)':<48}{line:>14}")
        line = f"{m['profile_json_bytes']:,.0f} B"
        print(f"{'one profile as JSON':<48}{line:>14}")
    f = result.get("feedback")
    if f:
        for kind in ("csv", "parquet"):
            g = f[kind]
            what = f"feedback add, {f['labels']:,} labels, {kind}"
            line = f"{g['labels_per_s']:,.0f}/s"
            print(f"{what:<48}{line:>14}{'>= 50,000/s':>14}  {verdict(g)}")
    s = result.get("serving")
    if s:
        print(f"\nserving, {s['connections']} connections, medians of {s['repeats']}")
        print(f"{'monitor':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'monitor CPU s':>18}")
        for name, fig in s["medians"].items():
            print(
                f"{name:<10}{fig['rps']:10.1f}{fig['p50_ms']:10.2f}{fig['p99_ms']:10.2f}"
                f"{fig['monitor_cpu_s']:18.2f}"
            )
        r = s["ratios"]
        print(f"{'on / off':<10}{r['rps']:9.3f}x{r['p50_ms']:9.3f}x{r['p99_ms']:9.3f}x")
        for name, r in s["other_ratios"].items():
            print(f"{name:<10}{r['rps']:9.3f}x{r['p50_ms']:9.3f}x{r['p99_ms']:9.3f}x")
        for name, ratios in s.get("paired_p99_ratios", {}).items():
            shown = " ".join(f"{r:.2f}" for r in ratios)
            median = s["paired_p99_ratio"][name]
            print(f"p99 {name} / off within each repeat: {shown}; median {median:.3f}x")
        print(f"p99 on / off: target <= {MAX_P99_RATIO:g}x (median within repeats): {verdict(s)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def verdict(goal: dict[str, Any]) -> str:
    return "met" if goal["met"] else "MISSED"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="merge,feedback,serving", help="parts to run")
    parser.add_argument("--windows", type=int, default=1000, help="profiles merged (1000)")
    parser.add_argument("--merge-repeats", type=int, default=5, help="merges timed (5)")
    parser.add_argument("--labels", type=int, default=1_000_000, help="rows per file (1e6)")
    parser.add_argument("--feedback-repeats", type=int, default=3, help="runs per file (3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--repeats", type=int, default=3, help="serving runs on and off (3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (2)")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="the monitor's interval: (10, its default)"
    )
    parser.add_argument(
        "--model",
        choices=("named", "example"),
        default="named",
        help="served: the example's fit on named columns (named), or the example's own",
    )
    parser.add_argument(
        "--nice",
        metavar="N|idle",
        help="also serve with the monitor's threads at nice N, or under SCHED_IDLE (idle): a "
        "third server, interleaved",
    )
    parser.add_argument(
        "--log-sample",
        type=float,
        metavar="RATE",
        help="both servers log this share of requests (conveyor serve --log-sample; default all)",
    )
    parser.add_argument("--py-spy", metavar="FILE", help="record the monitor (raw format)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conveyor", default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"))
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "monitor.json"))
    args = parser.parse_args(argv)
    args.parts = set(args.only.split(","))
    if args.parts - {"merge", "feedback", "serving"}:
        parser.error("--only: a comma-separated list of merge, feedback, serving")
    if min(args.duration, args.repeats, args.windows, args.labels, args.merge_repeats) < 1:
        parser.error("counts and durations must be at least 1")
    return args


def run(args: argparse.Namespace) -> None:
    conveyor = find_exe(args.conveyor, "conveyor", "make test creates .venv; or --conveyor PATH")
    wrk = shutil.which("wrk")
    if "serving" in args.parts and wrk is None:
        raise BenchError("wrk not found; run: bash bench/install_wrk.sh")
    work = Path(args.work).absolute() / "monitor"
    remove(work)
    work.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{conveyor.parent}{os.pathsep}{os.environ['PATH']}"}
    result: dict[str, Any] = {
        "benchmark": "monitor",
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
    }
    if "merge" in args.parts:
        print("1. merging window profiles", flush=True)
        result["merge"] = merging(args)
    if "feedback" in args.parts:
        print("2. feedback add", flush=True)
        result["feedback"] = feedback_figures(args, conveyor, work, env)
    if "serving" in args.parts:
        assert wrk is not None
        print("3. serving with the monitor on and off", flush=True)
        result["serving"] = serving_figures(args, conveyor, work, env, wrk)
    result["notes"] = [
        "merge: 20 features (15 numeric, 5 categorical), windows of 900-1,100 rows",
        "feedback: the CLI as a process, end to end; the feedback folder emptied per run",
        "serving: wrk -t1, 1-row /invocations; one monitor interval unmeasured before each run",
        "monitor_cpu_s: the monitor's process (SCHED_IDLE); supervisor_cpu_s: the supervisor "
        "alone (its workers and the monitor apart)",
    ]
    report(result, Path(args.out).absolute())
    remove(work)


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
