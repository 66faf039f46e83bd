#!/usr/bin/env python3
"""Data-versioning benchmark: time the conveyor CLI, optionally against DVC.

Two seeded data sets are generated once and cached in the work dir:

* A: 20,000 files of 25 KiB in 20 x 10 nested folders (~500 MiB)
* B: one 2 GiB file

``--scale F`` multiplies the file count of A and the size of B.

Every repeat runs each tool in fresh, git-initialised projects (one for the
A figures, one for the B figures) and times whole CLI invocations with a
warm page cache (dirty pages are flushed before each timed command).  Tools
are interleaved, in alternating order (conveyor, dvc, dvc, conveyor, ...), so
that disk noise hits both alike; medians are reported.  With
``--compare-dvc`` the dvc/conveyor ratios are checked against the targets.

From the repository root::

    .venv/bin/python bench/data.py --scale 0.05
    bash bench/install_dvc.sh
    .venv/bin/python bench/data.py --compare-dvc bench/.work/dvc-venv/bin/dvc

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import BenchError, find_exe, remove, warn

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

GEN_VERSION = 1  # bump when the generated content changes
SEED = 1_000_003
A_FILES = 20_000
A_FILE_SIZE = 25 * KIB
A_PER_LEAF = 100  # files per leaf folder
A_LEAVES = 10  # leaf folders per top folder
B_SIZE = 2 * GIB

HELP_RUNS = 10
HELP_TARGET_S = 0.15
# Minimum dvc_time / conveyor_time per figure.
RATIO_TARGETS: dict[str, float] = {
    "add_A_cold": 8.0,
    "add_A_again": 10.0,
    "status_A": 10.0,
    "checkout_A_copy": 3.0,
    "checkout_A_hardlink": 2.0,
    "add_B_cold": 6.0,
    "status_B_changed": 4.0,
}

A_FIGURES = (
    "add_A_cold",
    "add_A_again",
    "status_A",
    "status_A_changed",
    "checkout_A_copy",
    "checkout_A_hardlink",
    "push_A",
    "pull_A",
)
B_FIGURES = ("add_B_cold", "status_B_changed")
FIGURES = ("help", *A_FIGURES, *B_FIGURES)

OK = (0,)
OK_CHANGED = (0, 1)  # a status that reports changes may exit 1


# --------------------------------------------------------------------------
# Data sets


class Stream:
    """Deterministic pseudo-random bytes, cheap to make in pure Python.

    One seeded 1 MiB block, XOR-ed with a word derived from the block index,
    so every block (and every file cut from the stream) is distinct.
    """

    def __init__(self, seed: int) -> None:
        block = random.Random(seed).randbytes(MIB)
        self._base = int.from_bytes(block, "little")

    def block(self, index: int) -> bytes:
        word = struct.pack("<Q", (index + 1) * 0x9E3779B97F4A7C15 % (1 << 64))
        mask = int.from_bytes(word * (MIB // 8), "little")
        return (self._base ^ mask).to_bytes(MIB, "little")

    def pieces(self, size: int) -> Iterator[bytes]:
        """Yield consecutive pieces of ``size`` bytes, without end."""
        buf = bytearray()
        index = 0
        while True:
            while len(buf) < size:
                buf += self.block(index)
                index += 1
            yield bytes(buf[:size])
            del buf[:size]


@dataclass(frozen=True)
class DataSet:
    name: str  # its path inside a project: "A" (a folder) or "B" (a file)
    seed: int
    n_files: int
    file_size: int
    is_dir: bool

    @property
    def total_bytes(self) -> int:
        return self.n_files * self.file_size

    def rel_path(self, index: int) -> str:
        top, leaf = divmod(index // A_PER_LEAF, A_LEAVES)
        return f"d{top:02d}/s{leaf}/f{index:05d}.bin"

    def describe(self) -> dict[str, object]:
        return {
            "files": self.n_files,
            "file_bytes": self.file_size,
            "total_bytes": self.total_bytes,
        }


def make_datasets(scale: float) -> dict[str, DataSet]:
    n_files = max(1, round(A_FILES * scale))
    b_size = max(MIB, round(B_SIZE * scale))
    return {
        "A": DataSet("A", SEED, n_files, A_FILE_SIZE, is_dir=True),
        "B": DataSet("B", SEED + 1, 1, b_size, is_dir=False),
    }


def write_tree(ds: DataSet, root: Path) -> None:
    pieces = Stream(ds.seed).pieces(ds.file_size)
    made: set[Path] = set()
    for index in range(ds.n_files):
        path = root / ds.rel_path(index)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(next(pieces))


def write_file(ds: DataSet, path: Path) -> None:
    stream = Stream(ds.seed)
    remaining = ds.file_size
    with path.open("wb") as out:
        for index in range(ds.file_size // MIB + 1):
            if remaining == 0:
                break
            piece = stream.block(index)[:remaining]
            out.write(piece)
            remaining -= len(piece)


def ensure_dataset(ds: DataSet, data_dir: Path) -> Path:
    """Return the cached copy of ``ds``, generating it first if missing."""
    final = data_dir / ds.name
    if final.exists():
        return final
    partial = data_dir / f"{ds.name}.partial"
    remove(partial)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"generating data set {ds.name} ({ds.total_bytes / MIB:,.0f} MiB) in {final}",
        flush=True,
    )
    start = time.perf_counter()
    if ds.is_dir:
        write_tree(ds, partial)
    else:
        write_file(ds, partial)
    partial.rename(final)
    print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return final


# --------------------------------------------------------------------------
# File helpers


def iter_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for folder, _dirs, names in os.walk(path):
        for name in names:
            yield Path(folder, name)


def warm(path: Path) -> None:
    """Read every byte once so that the page cache holds it."""
    for file in iter_files(path):
        with file.open("rb") as handle:
            while handle.read(4 * MIB):
                pass


def stage(src: Path, dst: Path) -> None:
    """Copy a data set into a workspace (fresh mtimes) and warm the page cache."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(src, dst)
    warm(dst)


def unshare(path: Path) -> None:
    """Make ``path`` a private regular file, so writing to it cannot touch a cache."""
    if path.is_symlink() or path.stat().st_nlink > 1:
        private = path.with_name(path.name + ".private")
        shutil.copyfile(path, private)
        os.replace(private, path)


def poke(path: Path) -> None:
    """Invert 16 bytes in the middle of ``path``; keep its size, bump its mtime.

    Poking twice restores the content (with a newer mtime).
    """
    unshare(path)
    before = path.stat()
    middle = before.st_size // 2
    with path.open("r+b") as handle:
        handle.seek(middle)
        old = handle.read(16)
        handle.seek(middle)
        handle.write(bytes(byte ^ 0xFF for byte in old))
    mtime = max(time.time_ns(), before.st_mtime_ns + 1_000_000_000)
    os.utime(path, ns=(before.st_atime_ns, mtime))


def check_tree(path: Path, ds: DataSet, after: str) -> None:
    sizes = [file.stat().st_size for file in iter_files(path)] if path.exists() else []
    if len(sizes) != ds.n_files or sum(sizes) != ds.total_bytes:
        raise BenchError(
            f"after {after}, {path} holds {len(sizes)} files / {sum(sizes)} bytes; "
            f"expected {ds.n_files} files / {ds.total_bytes} bytes"
        )


# --------------------------------------------------------------------------
# Running commands


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class Runner:
    env: dict[str, str]

    def run(
        self, cmd: Sequence[str], cwd: Path, ok: Sequence[int] = OK
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                cmd,
                cwd=cwd,
                env=self.env,
                check=True,
                capture_output=True,
                text=True,
                errors="replace",
            )
        except subprocess.CalledProcessError as exc:
            if exc.returncode in ok:
                return subprocess.CompletedProcess(exc.cmd, exc.returncode, exc.stdout, exc.stderr)
            raise BenchError(
                f"command failed (exit {exc.returncode}): {shlex.join(cmd)}\n"
                f"  in {cwd}\n--- stderr ---\n{tail(exc.stderr)}"
                f"\n--- stdout ---\n{tail(exc.stdout)}"
            ) from exc
        except OSError as exc:
            raise BenchError(f"cannot run {shlex.join(cmd)} in {cwd}: {exc}") from exc

    def timed(
        self, cmd: Sequence[str], cwd: Path, ok: Sequence[int] = OK
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        os.sync()  # flush writes of earlier steps so they are not billed to this one
        start = time.perf_counter()
        proc = self.run(cmd, cwd, ok)
        return time.perf_counter() - start, proc

    def version(self, exe: Path) -> str | None:
        try:
            proc = self.run([str(exe), "--version"], REPO_ROOT)
        except BenchError:
            return None
        lines = (proc.stdout or proc.stderr).strip().splitlines()
        return lines[-1] if lines else None


@dataclass(frozen=True)
class Tool:
    name: str
    exe: Path
    meta_dir: str  # ".conveyor" or ".dvc"
    pointer_suffix: str  # ".cvy" or ".dvc"

    def cmd(self, *args: str) -> list[str]:
        return [str(self.exe), *args]

    def remote_add_args(self, name: str, url: Path) -> list[str]:
        if self.name == "dvc":
            return ["remote", "add", "-d", name, str(url)]
        return ["remote", "add", name, str(url), "--default"]


def conveyor_tool(exe: Path) -> Tool:
    return Tool("conveyor", exe, ".conveyor", ".cvy")


def dvc_tool(exe: Path) -> Tool:
    return Tool("dvc", exe, ".dvc", ".dvc")


# --------------------------------------------------------------------------
# One session: a fresh project of one tool, timing one phase


@dataclass
class Session:
    tool: Tool
    runner: Runner
    project: Path
    label: str
    results: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, ok: Sequence[int] = OK) -> subprocess.CompletedProcess[str]:
        return self.runner.run(self.tool.cmd(*args), self.project, ok)

    def timed(
        self, figure: str, *args: str, ok: Sequence[int] = OK
    ) -> subprocess.CompletedProcess[str]:
        seconds, proc = self.runner.timed(self.tool.cmd(*args), self.project, ok)
        self.results[figure] = seconds
        print(f"  {self.label:<16} {figure:<20} {seconds:9.3f} s", flush=True)
        return proc

    @property
    def cache_dir(self) -> Path:
        return self.project / self.tool.meta_dir / "cache"

    def expect_pointer(self, target: str) -> None:
        pointer = self.project / f"{target}{self.tool.pointer_suffix}"
        if not pointer.is_file():
            raise BenchError(f"{self.tool.name} add {target} did not write {pointer}")

    def expect_change_reported(self, figure: str, proc: subprocess.CompletedProcess[str]) -> None:
        text = (proc.stdout + proc.stderr).lower()
        if "modif" not in text and "chang" not in text:
            shown = tail(proc.stdout, 10)
            warn(f"{self.label} {figure}: status shows no change:\n{shown}")


def new_session(tool: Tool, runner: Runner, project: Path, label: str) -> Session:
    remove(project)
    project.mkdir(parents=True)
    runner.run(["git", "init", "-q"], project)
    runner.run(tool.cmd("init"), project)
    return Session(tool, runner, project, label)


def checkout_a(s: Session, ds: DataSet, cache_type: str) -> None:
    figure = f"checkout_A_{cache_type}"
    s.run("config", "cache.type", cache_type)
    remove(s.project / ds.name)
    s.timed(figure, "checkout")
    check_tree(s.project / ds.name, ds, f"{s.label} {figure}")
    if cache_type == "hardlink":
        sample = s.project / ds.name / ds.rel_path(0)
        if sample.stat().st_nlink < 2:
            warn(f"{s.label} {figure}: {sample} is not a hard link")


def pull_a(s: Session, ds: DataSet) -> None:
    s.run("config", "cache.type", "copy")
    if not s.cache_dir.is_dir():
        raise BenchError(f"{s.label}: no cache dir at {s.cache_dir} to wipe before pull")
    remove(s.cache_dir)
    remove(s.project / ds.name)
    s.timed("pull_A", "pull")
    check_tree(s.project / ds.name, ds, f"{s.label} pull_A")


def phase_a(s: Session, ds: DataSet, src: Path, want: set[str], remote: Path) -> None:
    stage(src, s.project / ds.name)
    s.timed("add_A_cold", "add", ds.name)  # always: every other A figure needs it
    s.expect_pointer(ds.name)
    if "add_A_again" in want:
        s.timed("add_A_again", "add", ds.name)
    if "status_A" in want:
        s.timed("status_A", "status")
    if "status_A_changed" in want:
        victim = s.project / ds.name / ds.rel_path(ds.n_files // 2)
        poke(victim)
        s.expect_change_reported(
            "status_A_changed", s.timed("status_A_changed", "status", ok=OK_CHANGED)
        )
        poke(victim)  # restore the content
    for cache_type in ("copy", "hardlink"):
        if f"checkout_A_{cache_type}" in want:
            checkout_a(s, ds, cache_type)
    if want & {"push_A", "pull_A"}:
        remove(remote)
        remote.mkdir(parents=True)
        s.run(*s.tool.remote_add_args("store", remote))
        s.timed("push_A", "push")
    if "pull_A" in want:
        pull_a(s, ds)


def phase_b(s: Session, ds: DataSet, src: Path, want: set[str]) -> None:
    target = s.project / ds.name
    stage(src, target)
    s.timed("add_B_cold", "add", ds.name)
    s.expect_pointer(ds.name)
    if "status_B_changed" in want:
        poke(target)
        s.expect_change_reported(
            "status_B_changed", s.timed("status_B_changed", "status", ok=OK_CHANGED)
        )


# --------------------------------------------------------------------------
# The whole run

Samples = dict[str, dict[str, list[float]]]  # tool -> figure -> seconds


@dataclass(frozen=True)
class Plan:
    tools: list[Tool]
    datasets: dict[str, DataSet]
    sources: dict[str, Path]
    want: set[str]
    repeat: int
    warmup: int
    runs_dir: Path

    @property
    def site_cache(self) -> Path:
        """Where DVC keeps its per-repo state and index (not /var/tmp/dvc)."""
        return self.runs_dir / "dvc-site-cache"


def measure_help(plan: Plan, runner: Runner, samples: Samples) -> None:
    print(f"help: {HELP_RUNS} runs of --help per tool", flush=True)
    for tool in plan.tools:
        runner.run(tool.cmd("--help"), plan.runs_dir)  # warm-up: imports, bytecode
    for _ in range(HELP_RUNS):
        for tool in plan.tools:
            seconds, _proc = runner.timed(tool.cmd("--help"), plan.runs_dir)
            samples[tool.name].setdefault("help", []).append(seconds)
    for tool in plan.tools:
        seconds = statistics.median(samples[tool.name]["help"])
        print(f"  {tool.name:<16} {'help':<20} {seconds:9.3f} s")


def run_session(plan: Plan, runner: Runner, tool: Tool, phase: str, rep: int) -> dict[str, float]:
    project = plan.runs_dir / f"{tool.name}-{phase}-r{rep}"
    remote = plan.runs_dir / f"{tool.name}-{phase}-r{rep}-remote"
    label = f"[{rep + 1}/{plan.repeat}] {tool.name}" if rep >= 0 else f"[warm-up] {tool.name}"
    session = new_session(tool, runner, project, label)
    try:
        if phase == "A":
            phase_a(session, plan.datasets["A"], plan.sources["A"], plan.want, remote)
        else:
            phase_b(session, plan.datasets["B"], plan.sources["B"], plan.want)
    finally:
        remove(project)
        remove(remote)
        remove(plan.site_cache)
    return {fig: secs for fig, secs in session.results.items() if fig in plan.want}


def run_plan(plan: Plan, runner: Runner) -> Samples:
    samples: Samples = {tool.name: {} for tool in plan.tools}
    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    if "help" in plan.want:
        measure_help(plan, runner, samples)
    phases = [name for name, figs in (("A", A_FIGURES), ("B", B_FIGURES)) if plan.want & set(figs)]
    for _ in range(plan.warmup):
        # Untimed: the first timed session would otherwise meet whatever ran before the
        # benchmark (freshly deleted files, memory just handed back), and only that one tool.
        for phase in phases:
            print(f"warm-up, data set {phase} (not counted)", flush=True)
            for tool in plan.tools[::-1]:
                run_session(plan, runner, tool, phase, -1)
    for rep in range(plan.repeat):
        order = plan.tools if rep % 2 == 0 else plan.tools[::-1]
        for phase in phases:
            print(f"repeat {rep + 1}/{plan.repeat}, data set {phase}", flush=True)
            for tool in order:
                for fig, secs in run_session(plan, runner, tool, phase, rep).items():
                    samples[tool.name].setdefault(fig, []).append(secs)
            baseline = samples.setdefault(BASELINE, {})
            baseline.setdefault(f"cp_{phase}", []).append(time_copy(plan, runner, phase))
    return samples


BASELINE = "cp -r"  # the floor for add and checkout: write every file once, nothing else


def time_copy(plan: Plan, runner: Runner, phase: str) -> float:
    """Seconds for `cp -r` of a data set, measured like the tools (warm source, flushed)."""
    dst = plan.runs_dir / f"baseline-{phase}"
    remove(dst)
    warm(plan.sources[phase])
    os.sync()
    seconds, _ = runner.timed(["cp", "-r", str(plan.sources[phase]), str(dst)], plan.runs_dir)
    remove(dst)
    return seconds


# --------------------------------------------------------------------------
# Reporting


def medians(samples: Samples) -> dict[str, dict[str, float]]:
    return {
        tool: {fig: statistics.median(vals) for fig, vals in figs.items()}
        for tool, figs in samples.items()
    }


def baseline_text(med: dict[str, dict[str, float]]) -> str:
    floor = med.get(BASELINE, {})
    parts = [f"{fig.removeprefix('cp_')} {secs:.3f} s" for fig, secs in sorted(floor.items())]
    return f"for scale, `cp -r` of the same data: {', '.join(parts)}" if parts else ""


def ratios(med: dict[str, dict[str, float]]) -> dict[str, float]:
    conveyor, dvc = med.get("conveyor", {}), med.get("dvc", {})
    return {
        fig: dvc[fig] / conveyor[fig]
        for fig in FIGURES
        if fig in conveyor and fig in dvc and conveyor[fig] > 0
    }


def targets(
    med: dict[str, dict[str, float]], ratio: dict[str, float]
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    help_s = med.get("conveyor", {}).get("help")
    if help_s is not None:
        out["help"] = {
            "max_seconds": HELP_TARGET_S,
            "seconds": help_s,
            "pass": help_s <= HELP_TARGET_S,
        }
    for fig, minimum in RATIO_TARGETS.items():
        if fig in ratio:
            out[fig] = {
                "min_ratio": minimum,
                "ratio": ratio[fig],
                "pass": ratio[fig] >= minimum,
            }
    return out


def target_text(fig: str) -> str:
    if fig == "help":
        return f"<= {HELP_TARGET_S:g} s"
    if fig in RATIO_TARGETS:
        return f">= {RATIO_TARGETS[fig]:g}x"
    return ""


def format_table(
    plan: Plan,
    med: dict[str, dict[str, float]],
    ratio: dict[str, float],
    goals: dict[str, dict[str, object]],
) -> str:
    names = [tool.name for tool in plan.tools]
    head = f"{'figure':<20}" + "".join(f"{name + ' s':>12}" for name in names)
    if len(names) > 1:
        head += f"{'dvc/conv':>10}"
    head += f"  {'target':<10}result"
    lines = [head, "-" * len(head)]
    for fig in FIGURES:
        if not any(fig in med[name] for name in names):
            continue
        row = f"{fig:<20}" + "".join(
            f"{med[name][fig]:12.3f}" if fig in med[name] else f"{'-':>12}" for name in names
        )
        if len(names) > 1:
            row += f"{ratio[fig]:9.1f}x" if fig in ratio else f"{'-':>10}"
        verdict = goals.get(fig, {}).get("pass")
        result = "" if verdict is None else ("PASS" if verdict else "FAIL")
        lines.append(f"{row}  {target_text(fig) if fig in goals else '':<10}{result}")
    return "\n".join(lines)


def machine_info(runner: Runner, tools: list[Tool]) -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tool_versions": {tool.name: runner.version(tool.exe) for tool in tools},
    }


def write_report(path: Path, plan: Plan, scale: float, samples: Samples, runner: Runner) -> None:
    med = medians(samples)
    ratio = ratios(med)
    goals = targets(med, ratio)
    print()
    runs = f"{plan.repeat} repeat(s) (help: {HELP_RUNS} runs)"
    print(f"medians of {runs}, scale {scale:g}")
    print(format_table(plan, med, ratio, goals))
    if baseline_text(med):
        print(baseline_text(med))
    if scale != 1:
        print("(targets are meant for scale 1; small scales measure mostly start-up)")
    report = {
        "scale": scale,
        "repeat": plan.repeat,
        "warmup": plan.warmup,
        "help_runs": HELP_RUNS,
        "datasets": {name: ds.describe() for name, ds in plan.datasets.items()},
        "machine": machine_info(runner, plan.tools),
        "medians": med,
        "samples": samples,
        "ratios": ratio,
        "targets": goals,
        "all_targets_pass": bool(goals) and all(goal["pass"] for goal in goals.values()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


# --------------------------------------------------------------------------
# Command line


def parse_only(raw: str | None) -> set[str]:
    if not raw:
        return set(FIGURES)
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = names - set(FIGURES)
    if unknown:
        raise BenchError(f"unknown figure(s) {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply file counts and sizes (default 1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed sessions of each tool before the repeats (default 1)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="repeats per tool (default 3, or 2 with --compare-dvc)",
    )
    parser.add_argument("--only", help=f"comma list of figures: {','.join(FIGURES)}")
    parser.add_argument(
        "--conveyor",
        default=str(REPO_ROOT / ".venv" / "bin" / "conveyor"),
        help="conveyor CLI",
    )
    parser.add_argument(
        "--skip-conveyor",
        action="store_true",
        help="time DVC alone (needs --compare-dvc)",
    )
    parser.add_argument("--compare-dvc", metavar="DVC", help="dvc executable to compare with")
    parser.add_argument(
        "--work",
        default=str(BENCH_DIR / ".work"),
        help="work dir (default bench/.work)",
    )
    parser.add_argument(
        "--out",
        default=str(BENCH_DIR / "results" / "data.json"),
        help="JSON report path",
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.skip_conveyor and not args.compare_dvc:
        parser.error("--skip-conveyor needs --compare-dvc")
    return args


def select_tools(args: argparse.Namespace) -> list[Tool]:
    tools = []
    if not args.skip_conveyor:
        hint = "install the project (.venv) or pass --conveyor PATH"
        tools.append(conveyor_tool(find_exe(args.conveyor, "conveyor", hint)))
    if args.compare_dvc:
        hint = "run: bash bench/install_dvc.sh"
        tools.append(dvc_tool(find_exe(args.compare_dvc, "dvc", hint)))
    return tools


def run(args: argparse.Namespace) -> None:
    want = parse_only(args.only)
    tools = select_tools(args)
    if shutil.which("git") is None:
        raise BenchError("git is needed to initialise the projects")
    work = Path(args.work).absolute()
    datasets = make_datasets(args.scale)
    data_dir = work / "data" / f"v{GEN_VERSION}-scale{args.scale:g}"
    needed = [name for name, figs in (("A", A_FIGURES), ("B", B_FIGURES)) if want & set(figs)]
    sources = {name: ensure_dataset(datasets[name], data_dir) for name in needed}
    repeat = args.repeat or (2 if args.compare_dvc else 3)
    if args.warmup < 0:
        raise BenchError("--warmup must be 0 or more")
    plan = Plan(tools, datasets, sources, want, repeat, args.warmup, work / "runs")
    env = {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(plan.site_cache)}
    runner = Runner({**os.environ, **env})
    samples = run_plan(plan, runner)
    write_report(Path(args.out).absolute(), plan, args.scale, samples, runner)


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
