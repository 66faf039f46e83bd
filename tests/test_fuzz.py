"""Fuzzing the files a user edits by hand: conveyor.yaml, params.yaml and ``.cvy`` pointers.

Hundreds of seeded mutations (byte flips, truncations, key swaps, type swaps, deep nesting, huge
numbers, odd unicode, aliases) go through the real CLI in-process. Whatever the bytes, conveyor
must answer with a clean exit code (a ConveyorError's, never 70: a bug) and no traceback, within
a bounded time and without its memory growing. The seed is fixed so that a failure reproduces
(``CONVEYOR_FUZZ_SEED=N`` explores others); the failing file's text is in the assertion message.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import time
from collections.abc import Callable

import pytest

from conveyor.data import pointer as pointer_mod
from conveyor.foundation.errors import ConveyorError
from tests.conftest import Project

CONFIG = """\
vars:
  - {folds: 3}
stages:
  prepare:
    cmd: python prepare.py ${prepare.split}
    deps: [data/raw]
    params: [prepare]
    outs: [data/prepared]
  train:
    matrix:
      lr: [0.1, 0.01]
      depth: [3, 5]
    cmd: python train.py --lr ${item.lr} --depth ${item.depth}
    deps: [data/prepared]
    outs:
      - models/${item.lr}-${item.depth}.pkl
  fold:
    foreach: [a, b]
    do:
      cmd: echo ${item} > folds/${item}.txt
      outs:
        - folds/${item}.txt
  evaluate:
    cmd: python evaluate.py
    deps: [data/prepared]
    outs: [eval]
    metrics: [eval/metrics.json]
    plots:
      - eval/roc.csv: {x: fpr, y: tpr, cache: false}
metrics:
  - eval/metrics.json
plots:
  - ROC:
      template: simple
      x: fpr
      y:
        eval/roc.csv: tpr
  - Confusion:
      template: confusion
      x: actual
      y: {eval/cm.json: predicted}
  - eval/importance.png
artifacts:
  model:
    path: models/0.1-3.pkl
    type: model
"""
PARAMS = """\
prepare:
  split: 0.2
  seed: 20170428
train:
  lr: 1e-3
  layers: [64, 32]
  opts: {dropout: 0.1, name: net}
"""
POINTER = "# Tracked by conveyor\npath: raw\nhash: " + "ab" * 32 + ".tree\nsize: 12\nnfiles: 2\n"

VALUES = [
    "[]", "{}", "null", "true", "3", "-1", "[1, {a: b}]", "'${nothing}'", "${train}",
    "!!binary x", "*undefined", "&a [*a]", "!!python/object:os.system x", "2024-13-01",
    "!!bool maybe", "? [a]\n  : b", "'''", "|\n  block", ".nan", "~", "[a, b, [c, {d: e}]]",
    "{cmd: x}", "${item.nope}", "../outside", "/abs/path", "${}", "\\${x}", "- a\n- b",
]  # fmt: skip
ODD = [
    "\u202e", "\x00", "\ufeff", "\u2028", "\x85", "é", "\U0001f642", "\t", "\r", "\x1b[31m",
    "\u0301", "\uffff", "𝔘", "\x7f",
]  # fmt: skip


def _bomb() -> str:
    lines = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _lines(mutate: Callable[[list[str], random.Random], None]) -> Callable[..., bytes]:
    def apply(data: bytes, rng: random.Random) -> bytes:
        lines = data.decode("utf-8", "surrogateescape").split("\n")
        mutate(lines, rng)
        return "\n".join(lines).encode("utf-8", "surrogateescape")

    return apply


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


_KEY = re.compile(r"^(\s*-?\s*)([A-Za-z_][\w.@-]*):")


@_lines
def _swap_keys(lines: list[str], rng: random.Random) -> None:
    keyed = [i for i, line in enumerate(lines) if _KEY.match(line)]
    if len(keyed) >= 2:
        i, j = rng.sample(keyed, 2)
        ki, kj = _KEY.match(lines[i]), _KEY.match(lines[j])
        assert ki and kj
        lines[i] = ki.group(1) + kj.group(2) + ":" + lines[i][ki.end() :]
        lines[j] = kj.group(1) + ki.group(2) + ":" + lines[j][kj.end() :]


@_lines
def _swap_type(lines: list[str], rng: random.Random) -> None:
    keyed = [i for i, line in enumerate(lines) if _KEY.match(line)]
    if keyed:
        i = rng.choice(keyed)
        match = _KEY.match(lines[i])
        assert match
        lines[i] = match.group(0) + " " + rng.choice(VALUES)


@_lines
def _nest(lines: list[str], rng: random.Random) -> None:
    n = rng.choice([20, 99, 101, 500, 5000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    lines.insert(rng.randrange(len(lines) + 1), f"deep: {opener * n}1{closer * n}")


@_lines
def _huge_number(lines: list[str], rng: random.Random) -> None:
    number = rng.choice(
        ["9" * 5000, "1e99999", "-0x" + "f" * 5000, "1" + "_0" * 3000, "1:" * 2000 + "1"]
    )
    keyed = [i for i, line in enumerate(lines) if _KEY.match(line)] or [0]
    i = rng.choice(keyed)
    match = _KEY.match(lines[i])
    lines[i] = (match.group(0) + " " if match else "n: ") + number


@_lines
def _odd_unicode(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    j = rng.randrange(len(lines[i]) + 1)
    lines[i] = lines[i][:j] + rng.choice(ODD) + lines[i][j:]


@_lines
def _lone_surrogate(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    lines[i] += "\udcff"  # written as the byte 0xff: not UTF-8


@_lines
def _alias(lines: list[str], rng: random.Random) -> None:
    lines[0:0] = rng.choice([_bomb(), "x: &r [1, *r]", "y: &s {a: *s}", "z: *nowhere"]).split("\n")


@_lines
def _reshape(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    action = rng.randrange(4)
    if action == 0:
        lines.insert(i, lines[i])
    elif action == 1:
        del lines[i]
    elif action == 2:
        lines[i] = "  " + lines[i]
    else:
        lines[i] = lines[i][2:]


MUTATIONS = [
    _flip, _truncate, _swap_keys, _swap_type, _swap_type, _nest, _huge_number, _odd_unicode,
    _lone_surrogate, _alias, _reshape, _reshape,
]  # fmt: skip


def _mutate(base: bytes, rng: random.Random) -> bytes:
    data = base
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.timeout(120)
def test_fuzzed_config_params_and_pointers_never_crash_hang_or_blow_up(project: Project) -> None:
    rng = random.Random(int(os.environ.get("CONVEYOR_FUZZ_SEED", "20261207")))
    project.write("data/raw/a.txt", "a\n")
    project.write("data/raw/b.txt", "b\n")
    commands = [["status"], ["run", "--dry"], ["dag"], ["metrics", "show"], ["params", "show"]]
    cases: list[tuple[str, bytes, list[str]]] = []
    for _ in range(240):
        cases.append(("conveyor.yaml", _mutate(CONFIG.encode(), rng), rng.choice(commands)))
    for _ in range(100):
        cases.append(("params.yaml", _mutate(PARAMS.encode(), rng), rng.choice(commands)))
    for _ in range(100):
        cases.append(("data/raw.cvy", _mutate(POINTER.encode(), rng), ["status"]))
    project.write("params.yaml", PARAMS)
    project.write("conveyor.yaml", CONFIG)
    project.ok("status")  # the unmutated files are fine; warm up imports
    before = _rss_kb()
    started = time.perf_counter()
    slowest = 0.0
    codes: dict[int, int] = {}
    for file, data, command in cases:
        project.write("conveyor.yaml", CONFIG)
        project.write("params.yaml", PARAMS)
        project.write(file, data)
        t0 = time.perf_counter()
        result = project.run(*command)
        spent = time.perf_counter() - t0
        slowest = max(slowest, spent)
        shown = f"{file} for `conveyor {' '.join(command)}`:\n{data[:2000]!r}\n{result.err[-3000:]}"
        assert result.code in (0, 1, 2, 3), shown
        assert "Traceback" not in result.err and "unexpectedly" not in result.err, shown
        assert spent < 5, f"{spent:.1f} s: {shown}"
        codes[result.code] = codes.get(result.code, 0) + 1
        if file.endswith(".cvy"):  # the loader itself, beside the CLI
            with contextlib.suppress(ConveyorError):
                pointer_mod.parse(data.decode("utf-8", "replace"), project.root / file, file)
    total = time.perf_counter() - started
    assert total < 60, f"{len(cases)} cases took {total:.0f} s"
    assert _rss_kb() - before < 100 * 1024, "memory grew by more than 100 MB"
    assert codes.get(2, 0) > len(cases) // 4, codes  # the mutations did reach the parsers
    assert codes.get(0, 0) > 0, codes  # and some mutations are harmless


@pytest.mark.parametrize(
    ("file", "line"), [("conveyor.yaml", 5), ("params.yaml", 5), ("data/raw.cvy", 5)]
)
def test_an_alias_bomb_in_any_file_is_one_clean_error_at_once(
    project: Project, file: str, line: int
) -> None:
    project.write("data/raw/a.txt", "a\n")
    project.write("params.yaml", PARAMS)
    project.write("conveyor.yaml", CONFIG)
    project.write("data/raw.cvy", POINTER)
    project.write(file, _bomb())
    started = time.perf_counter()
    result = project.run("status")
    assert time.perf_counter() - started < 1
    assert result.code == 2, result.err
    assert f"error: {file}:{line}: not valid YAML: aliases expand to more than" in result.err


MAKE = """\
import json, os
os.makedirs("m", exist_ok=True)
json.dump({"auc": 0.5, "n": {"x": 1}}, open("m/eval.json", "w"))
open("o.txt", "w").write("hi")
"""


@pytest.mark.timeout(120)
def test_fuzzed_lock_and_metrics_files_never_crash(project: Project) -> None:
    """What stages and `conveyor run` write, edited by hand or by a merge: conveyor.lock and a
    metrics file, through status, metrics show, params show, checkout, push and gc."""
    import sys

    rng = random.Random(int(os.environ.get("CONVEYOR_FUZZ_SEED", "20261207")))
    project.write("mk.py", MAKE)
    project.write("params.yaml", "train:\n  C: 1.0\n")
    project.write(
        "conveyor.yaml",
        f"stages:\n  a:\n    cmd: {sys.executable} mk.py\n    params: [train.C]\n"
        "    outs: [o.txt]\n    metrics: [m/eval.json]\n",
    )
    project.ok("run")
    project.ok("remote", "add", "store", str(project.root.parent / "fuzz-remote"), "--default")
    lock = (project.root / "conveyor.lock").read_bytes()
    metrics = (project.root / "m" / "eval.json").read_bytes()
    commands = [
        ["status"], ["metrics", "show"], ["params", "show"], ["checkout"], ["push"], ["gc", "--dry"]
    ]  # fmt: skip
    started = time.perf_counter()
    refused = 0  # mutations a parser saw and refused cleanly: the fuzzing reached one
    for i in range(200):
        file, base = ("conveyor.lock", lock) if i % 2 else ("m/eval.json", metrics)
        data = _mutate(base, rng)
        project.write("conveyor.lock", lock)
        project.write("m/eval.json", metrics)
        project.write(file, data)
        command = rng.choice(commands)
        result = project.run(*command)
        shown = f"{file} for `conveyor {' '.join(command)}`:\n{data[:2000]!r}\n{result.err[-3000:]}"
        assert result.code in (0, 1, 2, 3), shown
        assert "Traceback" not in result.err and "unexpectedly" not in result.err, shown
        refused += result.code == 2
    assert refused > 20
    assert time.perf_counter() - started < 60
