#!/usr/bin/env python3
"""Monitoring drift benchmark: conveyor's window profiles against Evidently's DataDriftPreset.

A seeded reference and current dataset of --rows rows each (1,000,000 by default) and 20
features: 15 numeric of several shapes (n0-n2 shifted by 0.3, 0.4, 0.5 reference standard
deviations; n3 with 1 % missing values on both sides) and 5 categorical of 10-50 categories
(c0 re-weighted), written once as Parquet. Each tool runs in its own process, which loads the
Parquet files untimed (and imports its libraries) and then times:

    conveyor   reference (bins + reference profile), profile (current window), drift (all
               features, auto methods, dataset verdict); total = the three
    evidently  Report([DataDriftPreset()]).run(current, reference) on Datasets built from the
               same DataFrames with an explicit DataDefinition (same kinds as conveyor's)

The tools alternate (conveyor first on even repeats, Evidently first on odd ones; the machine's
timings swing); medians are reported, with the ratio Evidently / conveyor total and each
feature's verdict from both, which must agree. Targets: conveyor total <= 1 s, >= 10x faster.
From the repo root::

    .venv/bin/python bench/monitor_drift.py
    .venv/bin/python bench/monitor_drift.py --compare-evidently "$(bash bench/install_evidently.sh)"

Writes bench/results/monitor_drift.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import common
from common import BenchError, find_exe, remove, run_checked

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

MAX_TOTAL_SECONDS = 1.0
MIN_RATIO = 10.0
NUMERIC_SHIFTS = {"n0": 0.3, "n1": 0.4, "n2": 0.5}  # in reference standard deviations
REWEIGHTED = "c0"
WITH_NULLS = "n3"
CATEGORIES = (10, 20, 30, 40, 50)
STEPS = ("reference", "profile", "drift")
NOTES = [
    "conveyor: bins and reference profile, current profile, drift of every feature (auto)",
    "evidently: Report([DataDriftPreset()]).run() only; Datasets built untimed",
    "total_cpu / report_cpu: user + system seconds of all threads (less sensitive to other "
    "work on the machine than wall time); the ratio and the 1 s target are on wall time",
    "scores in Evidently's units: Jensen-Shannon in natural-log units (conveyor's base-2 "
    "distance times sqrt(ln 2)), Wasserstein in reference standard deviations",
]

EVIDENTLY_WORKER = """
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

work = sys.argv[1]
meta = json.load(open(f"{work}/meta.json"))
ref = pd.read_parquet(f"{work}/reference.parquet")
cur = pd.read_parquet(f"{work}/current.parquet")
definition = DataDefinition(
    numerical_columns=meta["numeric"], categorical_columns=meta["categorical"]
)
start = time.perf_counter()
ref_ds = Dataset.from_pandas(ref, data_definition=definition)
cur_ds = Dataset.from_pandas(cur, data_definition=definition)
datasets = time.perf_counter() - start
start, cpu = time.perf_counter(), time.process_time()
snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
columns = {}
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if not config.get("type", "").endswith("ValueDrift"):
        continue
    value, limit = float(metric["value"]), float(config["threshold"])
    test = "p_value" in config["method"]
    drifted = value <= limit if test else value >= limit
    columns[config["column"]] = {
        "method": config["method"], "score": value, "threshold": limit, "drifted": drifted
    }
seconds = {"report": seconds, "report_cpu": cpu, "datasets": datasets}
print(json.dumps({"seconds": seconds, "columns": columns}))
"""


# ------------------------------------------------------------------------------------- data


def make_data(rows: int, work: Path) -> dict[str, Any]:
    """Seeded reference and current frames as Parquet in ``work``; returns their description."""
    import pandas as pd

    rng = np.random.default_rng(2026)
    shapes = [
        lambda n: rng.normal(0, 1, n),
        lambda n: rng.lognormal(0, 0.5, n),
        lambda n: rng.uniform(0, 10, n),
        lambda n: rng.exponential(2, n),
        lambda n: rng.gamma(3, 1, n),
        lambda n: rng.normal(100, 15, n),
    ]
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(15):
        name, draw = f"n{i}", shapes[i % len(shapes)]
        ref[name] = draw(rows)
        cur[name] = draw(rows) + NUMERIC_SHIFTS.get(name, 0.0) * float(np.std(ref[name]))
        if name == WITH_NULLS:
            for values in (ref[name], cur[name]):
                values[rng.random(rows) < 0.01] = np.nan
    for i, k in enumerate(CATEGORIES):
        name = f"c{i}"
        labels = np.array([f"{name}_{j:02d}" for j in range(k)], dtype=object)
        weights = 1.0 / np.arange(1, k + 1)  # Zipf-like
        ref[name] = labels[rng.choice(k, rows, p=weights / weights.sum())]
        moved = weights[::-1] if name == REWEIGHTED else weights
        cur[name] = labels[rng.choice(k, rows, p=moved / moved.sum())]
    work.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(ref).to_parquet(work / "reference.parquet")
    pd.DataFrame(cur).to_parquet(work / "current.parquet")
    meta = {
        "rows": rows,
        "numeric": [f"n{i}" for i in range(15)],
        "categorical": [f"c{i}" for i in range(len(CATEGORIES))],
        "shifted": [*NUMERIC_SHIFTS, REWEIGHTED],
    }
    (work / "meta.json").write_text(json.dumps(meta))
    return meta


# ---------------------------------------------------------------------------------- workers


def conveyor_worker(work: Path) -> dict[str, Any]:
    """One conveyor run (in its own process): load untimed, then time the three steps."""
    import pandas as pd
    from scipy import stats  # noqa: F401  (imported before timing, as Evidently's are)

    from conveyor.monitor.profiles import profile, reference
    from conveyor.stats.binned import dataset

    meta = json.loads((work / "meta.json").read_text())
    ref = pd.read_parquet(work / "reference.parquet")
    cur = pd.read_parquet(work / "current.parquet")
    cpu, t0 = time.process_time(), time.perf_counter()
    bins, ref_profile = reference(ref, categorical=meta["categorical"])
    t1 = time.perf_counter()
    cur_profile = profile(cur, bins)
    t2 = time.perf_counter()
    result = dataset(bins, ref_profile, cur_profile)
    t3, cpu = time.perf_counter(), time.process_time() - cpu
    columns = {}
    for column in result.columns:
        method = result.methods[column.column]
        key = {"jensenshannon": "js_distance", "ks": "ks_p_value", "chisquare": "chi2_p_value"}
        score = column.statistics[key.get(method, method)]
        if method == "jensenshannon" and score is not None:
            score *= math.sqrt(math.log(2))  # Evidently's natural-log units
        columns[column.column] = {"method": method, "score": score, "drifted": column.drifted}
    seconds = {"reference": t1 - t0, "profile": t2 - t1, "drift": t3 - t2, "total": t3 - t0}
    seconds["total_cpu"] = cpu  # user + system time of all threads
    return {"seconds": seconds, "columns": columns, "dataset_drifted": result.drifted}


def run_worker(tool: str, python: Path, work: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    if tool == "conveyor":
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", str(work)]
    else:
        env.pop("PYTHONPATH")
        cmd = [str(python), "-c", EVIDENTLY_WORKER, str(work)]
    out = run_checked(cmd, REPO_ROOT, env).stdout.strip().splitlines()
    try:
        return dict(json.loads(out[-1]))
    except (IndexError, json.JSONDecodeError) as exc:
        raise BenchError(f"{tool} worker printed no result: {out[-3:]}") from exc


# ----------------------------------------------------------------------------------- report


def verdict_table(meta: dict[str, Any], runs: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    conv, evid = runs["conveyor"]["columns"], runs.get("evidently", {}).get("columns", {})
    head = f"{'feature':<8}{'shifted':>8}  {'conveyor':<26}"
    head += f"{'evidently':<40}{'agree':>6}" if evid else ""
    lines, agree = [head, "-" * len(head)], True
    for name in [*meta["numeric"], *meta["categorical"]]:
        c = conv[name]
        row = f"{name:<8}{'yes' if name in meta['shifted'] else '':>8}  "
        row += f"{c['method'][:13]:<13} {c['score']:.4f} {'DRIFT' if c['drifted'] else '-':<5} "
        if evid:
            e = evid[name]
            same = e["drifted"] == c["drifted"]
            agree &= same
            row += f"{e['method'][:27]:<27} {e['score']:.4f} {'DRIFT' if e['drifted'] else '-':<5} "
            row += f"{'yes' if same else 'NO':>6}"
        lines.append(row)
    return "\n".join(lines), agree


def report(
    args: argparse.Namespace,
    meta: dict[str, Any],
    samples: dict[str, dict[str, list[float]]],
    runs: dict[str, list[dict[str, Any]]],
    loads: list[float],
) -> None:
    med = {
        tool: {k: statistics.median(v) for k, v in figs.items()} for tool, figs in samples.items()
    }
    conv = med["conveyor"]
    last = {tool: got[-1] for tool, got in runs.items()}
    print(
        f"\n{meta['rows']:,} rows x 20 features, reference and current; medians of {args.repeats}"
    )
    for step in (*STEPS, "total", "total_cpu"):
        print(f"  conveyor {step:<10} {conv[step]:7.3f} s")
    goals: dict[str, dict[str, Any]] = {
        "total": {"max_seconds": MAX_TOTAL_SECONDS, "seconds": conv["total"]}
    }
    goals["total"]["pass"] = conv["total"] <= MAX_TOTAL_SECONDS
    ratio = cpu_ratio = None
    if "evidently" in med:
        evid = med["evidently"]
        ratio, cpu_ratio = evid["report"] / conv["total"], evid["report_cpu"] / conv["total_cpu"]
        print(f"  evidently report     {evid['report']:7.3f} s   ({ratio:.1f}x)")
        print(f"  evidently report_cpu {evid['report_cpu']:7.3f} s   ({cpu_ratio:.1f}x)")
        goals["ratio"] = {"min_ratio": MIN_RATIO, "ratio": ratio, "pass": ratio >= MIN_RATIO}
    table, agree = verdict_table(meta, last)
    print("\n" + table)
    if "evidently" in med:
        goals["verdicts"] = {"pass": agree}
    for name, goal in goals.items():
        print(f"  target {name:<9} {'PASS' if goal['pass'] else 'FAIL'}")
    print("\n".join(NOTES))
    print(f"load average after each run: {loads} (on {os.cpu_count()} cores)")
    result = {
        "rows": meta["rows"],
        "features": {"numeric": meta["numeric"], "categorical": meta["categorical"]},
        "shifted": meta["shifted"],
        "repeats": args.repeats,
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "tool_versions": versions(args),
        },
        "notes": NOTES,
        "medians": med,
        "samples": samples,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "load_average": loads,
        "verdicts": last,
        "verdicts_agree": agree if "evidently" in med else None,
        "targets": goals,
        "all_targets_pass": all(g["pass"] for g in goals.values()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def versions(args: argparse.Namespace) -> dict[str, str]:
    out = {"numpy": np.__version__}
    if args.compare_evidently:
        code = "import importlib.metadata as m; print(m.version('evidently'))"
        cmd = [str(args.compare_evidently), "-c", code]
        out["evidently"] = run_checked(cmd, REPO_ROOT, os.environ).stdout.strip()
    return out


# ------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-evidently", metavar="PYTHON", help="python of an Evidently venv")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "monitor_drift.json"))
    parser.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rows < 100:
        parser.error("--repeats must be at least 1 and --rows at least 100")
    return args


def run(args: argparse.Namespace) -> None:
    if args.worker:
        print(json.dumps(conveyor_worker(Path(args.worker))))
        return
    pythons = {"conveyor": Path(sys.executable)}
    if args.compare_evidently:
        hint = "run: bash bench/install_evidently.sh"
        pythons["evidently"] = find_exe(args.compare_evidently, "Evidently venv's python", hint)
        args.compare_evidently = pythons["evidently"]
    work = Path(args.work).absolute() / "monitor_drift"
    remove(work)
    print(f"writing {args.rows:,} rows x 20 features twice to {work} ...", flush=True)
    meta = make_data(args.rows, work)
    samples: dict[str, dict[str, list[float]]] = {tool: {} for tool in pythons}
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in pythons}
    loads: list[float] = []  # 1-minute load average after each run: other work on the machine
    try:
        for rep in range(args.repeats):
            order = list(pythons) if rep % 2 == 0 else list(reversed(pythons))
            for tool in order:
                got = run_worker(tool, pythons[tool], work)
                loads.append(round(os.getloadavg()[0], 2))
                runs[tool].append(got)
                for step, seconds in got["seconds"].items():
                    samples[tool].setdefault(step, []).append(seconds)
                shown = ", ".join(f"{k} {v:.3f}" for k, v in got["seconds"].items())
                print(f"  repeat {rep + 1} {tool:<9} {shown}", flush=True)
    finally:
        remove(work)
    report(args, meta, samples, runs, loads)


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
