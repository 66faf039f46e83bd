#!/usr/bin/env python3
"""Pipeline benchmark: time `conveyor run` and `conveyor status`, optionally against DVC.

Figures, medians over repeats with the tools interleaved in alternating order (as bench/data.py):
run_overhead, a first run of examples/classifier minus the time its stage commands spent running
(run_overhead_vs_direct subtracts those commands run directly, noise included); noop_run and
status with nothing stale; run_cache_restore, a run after train.C went 1.0 -> 0.5 -> 1.0 (no
stage may run); plan_500_noop, a no-op run of a 500-stage `matrix:` pipeline; sleepers_8_j4,
8 independent `sleep 1` stages with `run -j 4` (ideal 2 s; conveyor only).

The stages' `python` is a shim first on PATH that logs each call and its duration. DVC's
500-stage project takes minutes to build, so it is kept in the work dir. From the repo root::

    .venv/bin/python bench/pipeline.py
    .venv/bin/python bench/pipeline.py --compare-dvc bench/.work/dvc-venv/bin/dvc

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import common
from common import BenchError, find_exe, remove, run_checked, timed, warn

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
EXAMPLE = REPO_ROOT / "examples" / "classifier"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"  # has scikit-learn, runs the stages

INNER = 3  # timed no-op runs and statuses per repeat
PLAN_STAGES = 500
SLEEPERS = 8
JOBS = 4
EXAMPLE_FIGURES = ("run_first", "run_overhead", "run_overhead_vs_direct", "noop_run", "status")
FIGURES = (*EXAMPLE_FIGURES, "run_cache_restore", "plan_500_noop", "sleepers_8_j4")
RATIO_TARGETS = {"noop_run": 5.0, "status": 5.0}  # minimum dvc_time / conveyor_time
MAX_SECONDS = {"run_overhead": 0.25, "plan_500_noop": 1.0, "sleepers_8_j4": 2.5}
# DVC 3.67.1 on this machine, as measured for the issue (3-stage pipeline of the same kind).
DVC_REFERENCE = {"noop_run": 0.87, "status": 0.78, "run_overhead": 1.1, "run_cache_restore": 1.16}
DIRECT = "direct"  # pseudo-tool: the stage commands run by hand

# bash for $EPOCHREALTIME: timestamps without starting a process.
SHIM = """#!/bin/bash
start=$EPOCHREALTIME
{python} "$@"
status=$?
echo "$start $EPOCHREALTIME $*" >> "$BENCH_STAGE_LOG"
exit $status
"""


@dataclass(frozen=True)
class Tool:
    name: str
    exe: Path
    config: str  # "conveyor.yaml" or "dvc.yaml"; the schema is the same
    run_verb: str  # "run" or "repro"

    def cmd(self, *args: str) -> list[str]:
        return [str(self.exe), *args]

    def run_cmd(self, *args: str) -> list[str]:
        return self.cmd(self.run_verb, *args)


@dataclass
class Bench:
    tools: list[Tool]
    env: dict[str, str]
    work: Path
    want: set[str]
    repeat: int
    samples: dict[str, dict[str, list[float]]]  # tool -> figure -> seconds
    stage_log: Path

    def run(self, cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return run_checked(cmd, cwd, self.env)

    def timed(self, cmd: Sequence[str], cwd: Path) -> float:
        return timed(cmd, cwd, self.env)

    def record(self, tool: str, figure: str, seconds: float, rep: int) -> None:
        if figure not in self.want and tool != DIRECT:
            return
        self.samples.setdefault(tool, {}).setdefault(figure, []).append(seconds)
        print(f"  [{rep + 1}] {tool:<10} {figure:<22} {seconds:8.3f} s", flush=True)

    def stages_ran(self, what: str = "", expected: int | None = None) -> float:
        """Seconds spent in stage commands since the last call; warn if not ``expected`` ran."""
        lines = self.stage_log.read_text().splitlines() if self.stage_log.exists() else []
        self.stage_log.write_text("")
        if expected is not None and len(lines) != expected:
            ran = [line.split(maxsplit=2)[-1] for line in lines]
            warn(f"{what}: {expected} stage command(s) expected, these ran: {ran}")
        return sum(float(end) - float(start) for start, end, *_ in map(str.split, lines))

    def project(self, tool: Tool, dest: Path, src: Path | None = None, config: str = "") -> Path:
        """A fresh git-initialised project of ``tool``: a copy of ``src``, or ``config`` alone."""
        remove(dest)
        if src is None:
            dest.mkdir(parents=True)
            (dest / tool.config).write_text(config)
        else:
            shutil.copytree(src, dest)
            (dest / "conveyor.yaml").rename(dest / tool.config)
        self.run(["git", "init", "-q"], dest)
        self.run(tool.cmd("init"), dest)
        return dest


# --------------------------------------------------------------------------
# The example pipeline


def make_template(b: Bench) -> Path:
    """A copy of the example with its raw data written, and nothing else."""
    template = b.work / "runs" / "example"
    shutil.copytree(EXAMPLE, template, ignore=shutil.ignore_patterns("__pycache__", "data"))
    b.run([str(VENV_PYTHON), "get_data.py"], template)
    return template


def stage_cmds(config: str) -> list[str]:
    return [m.strip() for m in re.findall(r"^\s+cmd:\s*(.+)$", config, re.MULTILINE)]


def set_train_c(project: Path, old: str, new: str) -> None:
    params = project / "params.yaml"
    pattern = rf"^(\s+C:\s*){re.escape(old)}\b"
    text, count = re.subn(pattern, rf"\g<1>{new}", params.read_text(), count=1, flags=re.M)
    if count != 1:
        raise BenchError(f"{params}: no `C: {old}` to change")
    params.write_text(text)


def time_direct(b: Bench, template: Path, rep: int) -> None:
    project = b.work / "runs" / f"direct-r{rep}"
    shutil.copytree(template, project)
    cmds = stage_cmds((project / "conveyor.yaml").read_text())
    b.stages_ran()
    b.record(DIRECT, "stages_direct", b.timed(["sh", "-c", " && ".join(cmds)], project), rep)
    b.stages_ran("the direct run", len(cmds))
    remove(project)


def example_session(b: Bench, tool: Tool, template: Path, rep: int) -> None:
    label = f"[{rep + 1}] {tool.name}"
    p = b.project(tool, b.work / "runs" / f"{tool.name}-example-r{rep}", template)
    try:
        b.run(tool.cmd("add", "data/raw"), p)
        b.stages_ran()
        seconds = b.timed(tool.run_cmd(), p)
        b.record(tool.name, "run_first", seconds, rep)
        n_stages = len(stage_cmds((p / tool.config).read_text()))
        b.record(tool.name, "run_overhead", seconds - b.stages_ran(label, n_stages), rep)
        if not (p / "metrics" / "eval.json").is_file():
            raise BenchError(f"{label}: the first run wrote no metrics/eval.json in {p}")
        for figure, cmd in (("noop_run", tool.run_cmd()), ("status", tool.cmd("status"))):
            for _ in range(INNER if figure in b.want else 0):
                b.record(tool.name, figure, b.timed(cmd, p), rep)
                b.stages_ran(f"{label} {figure}", 0)
        if "run_cache_restore" in b.want:
            set_train_c(p, "1.0", "0.5")
            b.run(tool.run_cmd(), p)
            b.stages_ran(f"{label} run with train.C=0.5", 2)
            set_train_c(p, "0.5", "1.0")
            b.record(tool.name, "run_cache_restore", b.timed(tool.run_cmd(), p), rep)
            b.stages_ran(f"{label} run after reverting train.C", 0)
    finally:
        remove(p)
        remove(b.work / "runs" / "dvc-site-cache")


# --------------------------------------------------------------------------
# Generated pipelines


def plan_config() -> str:
    return (
        f"stages:\n  gen:\n    matrix:\n      i: {json.dumps(list(range(PLAN_STAGES)))}\n"
        "    cmd: mkdir -p out && echo ${item.i} > out/${item.i}.txt\n"
        "    outs:\n      - out/${item.i}.txt\n"  # not [..]: YAML reads `[x${` as a mapping
    )


def plan_project(b: Bench, tool: Tool) -> Path:
    """The 500-stage project, run once. DVC's (minutes to build) is kept between invocations."""
    keep = tool.name == "dvc"
    final = b.work / (f"plan{PLAN_STAGES}-dvc" if keep else f"runs/plan{PLAN_STAGES}-{tool.name}")
    if (
        keep
        and (final / "dvc.lock").is_file()
        and (final / "dvc.yaml").read_text() == plan_config()
    ):
        return final
    print(f"building the {PLAN_STAGES}-stage project for {tool.name} in {final}", flush=True)
    start = time.perf_counter()
    partial = final.with_name(final.name + ".partial")
    b.project(tool, partial, config=plan_config())
    b.run(tool.run_cmd(*(["-j", str(JOBS)] if tool.name == "conveyor" else [])), partial)
    remove(final)
    partial.rename(final)
    print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return final


def out_mtimes(project: Path) -> dict[str, int]:
    outs = (e for e in os.scandir(project / "out") if e.name.endswith(".txt"))  # not .gitignore
    return {entry.name: entry.stat().st_mtime_ns for entry in outs}


def plan_session(b: Bench, tool: Tool, project: Path, rep: int) -> None:
    before = out_mtimes(project)
    if len(before) != PLAN_STAGES:
        raise BenchError(f"{project}/out holds {len(before)} outputs, not {PLAN_STAGES}")
    b.run(tool.run_cmd(), project)  # warm-up: the project moved, or DVC's index was dropped
    for _ in range(INNER):
        b.record(tool.name, "plan_500_noop", b.timed(tool.run_cmd(), project), rep)
    if out_mtimes(project) != before:
        warn(f"[{rep + 1}] {tool.name} plan_500_noop: a no-op run rewrote outputs in {project}")


def sleepers_session(b: Bench, tool: Tool, rep: int) -> None:
    config = "stages:\n" + "".join(
        f"  s{i}:\n    cmd: sleep 1 && echo {i} > s{i}.txt\n    outs: [s{i}.txt]\n"
        for i in range(SLEEPERS)
    )
    p = b.project(tool, b.work / "runs" / f"{tool.name}-sleepers-r{rep}", config=config)
    try:
        b.record(tool.name, "sleepers_8_j4", b.timed(tool.run_cmd("-j", str(JOBS)), p), rep)
        missing = [f"s{i}.txt" for i in range(SLEEPERS) if not (p / f"s{i}.txt").is_file()]
        if missing:
            raise BenchError(f"{tool.name} run -j {JOBS} did not write {missing} in {p}")
    finally:
        remove(p)


def run_all(b: Bench) -> None:
    template = make_template(b) if b.want & set(EXAMPLE_FIGURES) else None
    plans = {t.name: plan_project(b, t) for t in b.tools if "plan_500_noop" in b.want}
    for rep in range(b.repeat):
        print(f"repeat {rep + 1}/{b.repeat}", flush=True)
        order: list[Tool | None] = [None, *b.tools]  # None: the stage commands run directly
        for tool in order if rep % 2 == 0 else order[::-1]:
            if tool is None:
                if template is not None and "run_overhead_vs_direct" in b.want:
                    time_direct(b, template, rep)
                continue
            if template is not None:
                example_session(b, tool, template, rep)
            if tool.name in plans:
                plan_session(b, tool, plans[tool.name], rep)
            if tool.name == "conveyor" and "sleepers_8_j4" in b.want:
                sleepers_session(b, tool, rep)
    direct = b.samples.get(DIRECT, {}).get("stages_direct")
    for tool in b.tools:
        first = b.samples.get(tool.name, {}).get("run_first")
        if first and direct:  # paired by repeat
            pairs = zip(first, direct, strict=True)
            b.samples[tool.name]["run_overhead_vs_direct"] = [t - d for t, d in pairs]


# --------------------------------------------------------------------------
# Reporting


def table(b: Bench, med: dict[str, dict[str, float]], ratio: dict[str, float], goals: dict) -> str:
    names = [t.name for t in b.tools]
    head = f"{'figure':<22}" + "".join(f"{n + ' s':>12}" for n in names)
    head += (f"{'dvc/conv':>10}" if len(names) > 1 else "") + f"{'dvc (issue)':>13}  target"
    lines = [head, "-" * (len(head) + 10)]
    for fig in FIGURES:
        if not any(fig in med.get(n, {}) for n in names):
            continue
        row = f"{fig:<22}" + "".join(
            f"{med[n][fig]:12.3f}" if fig in med.get(n, {}) else f"{'-':>12}" for n in names
        )
        if len(names) > 1:
            row += f"{ratio[fig]:9.1f}x" if fig in ratio else f"{'-':>10}"
        row += f"{DVC_REFERENCE[fig]:13.2f}" if fig in DVC_REFERENCE else f"{'-':>13}"
        if fig in goals:
            limit = f"<= {MAX_SECONDS[fig]:g} s" if fig in MAX_SECONDS else ""
            row += f"  {limit or f'>= {RATIO_TARGETS[fig]:g}x':<10}"
            row += "PASS" if goals[fig]["pass"] else "FAIL"
        lines.append(row)
    return "\n".join(lines)


def report(b: Bench, out: Path) -> None:
    med = {t: {f: statistics.median(v) for f, v in figs.items()} for t, figs in b.samples.items()}
    conv, dvc = med.get("conveyor", {}), med.get("dvc", {})
    ratio = {f: dvc[f] / conv[f] for f in FIGURES if f in conv and f in dvc and conv[f] > 0}
    goals: dict[str, dict[str, object]] = {}
    for fig, limit in MAX_SECONDS.items():
        if fig in conv:
            goals[fig] = {"max_seconds": limit, "seconds": conv[fig], "pass": conv[fig] <= limit}
    for fig, minimum in RATIO_TARGETS.items():
        if fig in ratio:
            goals[fig] = {"min_ratio": minimum, "ratio": ratio[fig], "pass": ratio[fig] >= minimum}
    print(f"\nmedians of {b.repeat} repeat(s) ({INNER} samples each for no-op runs and status)")
    print(table(b, med, ratio, goals))
    if "stages_direct" in med.get(DIRECT, {}):
        print(f"the example's stage commands run directly: {med[DIRECT]['stages_direct']:.3f} s")
    versions = {}
    for tool in b.tools:
        proc = b.run(tool.cmd("--version"), REPO_ROOT)
        versions[tool.name] = (proc.stdout or proc.stderr).strip().splitlines()[-1]
    machine = {"nproc": os.cpu_count(), "python": platform.python_version()}
    result = {
        "repeat": b.repeat,
        "inner": INNER,
        "machine": {**machine, "platform": platform.platform(), "tool_versions": versions},
        "medians": med,
        "samples": b.samples,
        "ratios": ratio,
        "targets": goals,
        "dvc_reference": DVC_REFERENCE,
        "all_targets_pass": bool(goals) and all(g["pass"] for g in goals.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


# --------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeats per tool (default 5)")
    parser.add_argument("--only", help=f"comma list of figures: {','.join(FIGURES)}")
    parser.add_argument("--conveyor", default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"))
    parser.add_argument("--skip-conveyor", action="store_true", help="time DVC alone")
    parser.add_argument("--compare-dvc", metavar="DVC", help="dvc executable to compare with")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"), help="default bench/.work")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "pipeline.json"))
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.skip_conveyor and not args.compare_dvc:
        parser.error("--skip-conveyor needs --compare-dvc")
    return args


def run(args: argparse.Namespace) -> None:
    want = set(FIGURES)
    if args.only:
        want = {name.strip() for name in args.only.split(",") if name.strip()}
        if want - set(FIGURES):
            raise BenchError(f"unknown figure(s) {sorted(want - set(FIGURES))}")
        want |= {"run_first"} if "run_overhead_vs_direct" in want else set()
    tools = []
    if not args.skip_conveyor:
        exe = find_exe(args.conveyor, "conveyor", "make test creates .venv; or --conveyor PATH")
        tools.append(Tool("conveyor", exe, "conveyor.yaml", "run"))
    if args.compare_dvc:
        exe = find_exe(args.compare_dvc, "dvc", "run: bash bench/install_dvc.sh")
        tools.append(Tool("dvc", exe, "dvc.yaml", "repro"))
    if shutil.which("git") is None or shutil.which("bash") is None:
        raise BenchError("git and bash are needed")
    work = Path(args.work).absolute()
    runs = work / "runs"
    remove(runs)
    (runs / "bin").mkdir(parents=True)
    shim = runs / "bin" / "python"
    shim.write_text(SHIM.format(python=shlex.quote(str(VENV_PYTHON))))
    shim.chmod(0o755)
    env = {
        "PATH": f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENCH_STAGE_LOG": str(runs / "stages.log"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(runs / "dvc-site-cache"),
    }
    bench = Bench(tools, {**os.environ, **env}, work, want, args.repeat, {}, runs / "stages.log")
    try:
        run_all(bench)
    finally:
        remove(runs)
    report(bench, Path(args.out).absolute())


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
