#!/usr/bin/env python3
"""Install size benchmark: a serving install (`pip install 'conveyor[serve]'`) against the whole
tool (`conveyor[all]`), each in a fresh venv under bench/.work/install_size/.

For each install: the size of its site-packages, alone and with the example model's
requirements added (what an image holds: the package's pinned scikit-learn, skops, numpy);
then, serving the example model (a StandardScaler + LogisticRegression on 30 features,
registered in a scratch project as clf@production) with that venv's `conveyor serve`: the
start-up time from the process's start to the first 200 on /v2/health/ready (median of
--repeat starts) and the server's resident memory (VmRSS, the process and its children)
once ready and after 200 predictions. The serving install's venv has no pandas, scipy (until
the model's scikit-learn brings it), matplotlib, optuna or alembic: the server reads the
registry (SQLite at the current schema) without them. Then the image: `conveyor package`
(run by the serving install) writes the example's build context, its requirements.txt is
installed into a third venv as the Dockerfile's builder stage does, and the model is served
as the entrypoint serves it (CONVEYOR_* variables from the Dockerfile). Target: the serving
install <= 40% of the whole tool's size. Packages come from the index pip is configured
with (the machine's mirror). From the repo root::

    .venv/bin/python bench/install_size.py            # builds the venvs once, then reuses them
    .venv/bin/python bench/install_size.py --fresh    # builds them again

Writes bench/results/install_size.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import REPO_ROOT, BenchError, remove, run_checked

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "install_size"
RESULTS = BENCH_DIR / "results" / "install_size.json"
CONVEYOR = Path(sys.executable).parent / "conveyor"
TARGET = 0.40
INSTALLS = {"serve": "serve", "full": "all"}  # name -> extra
TRAINING = ("pandas", "scipy", "matplotlib", "optuna", "alembic")

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
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="server starts per install")
    parser.add_argument("--fresh", action="store_true", help="build the venvs again")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def size_mib(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total / 2**20


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise BenchError(f"no site-packages in {venv}")
    return found[0]


def build(venv: Path, extra: str, fresh: bool) -> None:
    """A venv with conveyor[extra] installed from this checkout (not editable: a wheel)."""
    if fresh:
        remove(venv)
    if (venv / ".done").exists():
        return
    remove(venv)
    env = dict(os.environ)
    run_checked([sys.executable, "-m", "venv", str(venv)], REPO_ROOT, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run_checked([*pip, f"{REPO_ROOT}[{extra}]"], REPO_ROOT, env)
    # the training packages of the install itself, before the model's requirements come
    (venv / ".training").write_text(json.dumps(installed(venv, TRAINING)))
    (venv / ".done").write_text(f"conveyor[{extra}]\n")


def add_model_requirements(venv: Path, requirements: list[str], before: float) -> None:
    """Install the model's requirements once; the marker keeps the size measured before."""
    marker = venv / ".model"
    if marker.exists():
        return
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run_checked([*pip, *requirements], REPO_ROOT, dict(os.environ))
    marker.write_text("\n".join([str(before), *requirements]) + "\n")


def installed(venv: Path, names: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib.util, sys\n"
        "print(' '.join(n for n in sys.argv[1:] if importlib.util.find_spec(n)))"
    )
    out = run_checked([str(venv / "bin" / "python"), "-c", code, *names], REPO_ROOT, {})
    return out.stdout.split()


def make_project(root: Path) -> list[str]:
    """The example model registered as clf@production; its package's requirements."""
    env = dict(os.environ)
    if not (root / ".conveyor").exists():
        remove(root)
        root.mkdir(parents=True)
        run_checked([str(CONVEYOR), "init"], root, env)
        (root / "save.py").write_text(SAVE)
        run_checked([sys.executable, "save.py"], root, env)
        run_checked([str(CONVEYOR), "models", "register", "clf", "pkg"], root, env)
        run_checked([str(CONVEYOR), "models", "alias", "clf@production", "1"], root, env)
    import yaml

    manifest = yaml.safe_load((root / "pkg" / "conveyor-model.yaml").read_text())
    return [str(r) for r in manifest["requirements"]]


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` and its children (a server with workers runs several processes)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(found.group(1)) / 1024 if found else 0.0
    return total


def ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/v2/health/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False


def predict(port: int, rows: list[list[float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"inputs": rows}).encode()
    conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise BenchError(f"a prediction failed: {resp.status} {data[:300]!r}")


def serve_once(
    venv: Path, root: Path, rows: list[list[float]], extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """One start of the venv's `conveyor serve` (of clf@production, or as ``extra_env`` says):
    seconds to ready, RSS ready and after load."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    args = ["models:/clf@production"] if extra_env is None else []
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "bin" / "conveyor"), "serve", *args, "--port", "0"],
        cwd=root,
        env={**env, **(extra_env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not found:
            raise BenchError(f"the server did not start: {line}{proc.stderr.read()}")
        port = int(found.group(1))
        deadline = time.monotonic() + 120
        while not ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the server did not get ready: {proc.stderr.read()}")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        rss_ready = rss_mib(proc.pid)
        for _ in range(200):
            predict(port, rows)
        return {
            "startup_s": seconds,
            "rss_ready_mib": rss_ready,
            "rss_after_200_predictions_mib": rss_mib(proc.pid),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def measure(name: str, extra: str, root: Path, model_reqs: list[str], args: Any) -> dict[str, Any]:
    venv = WORK / f"venv-{name}"
    print(f"{name}: building {venv.name} (conveyor[{extra}])", file=sys.stderr, flush=True)
    build(venv, extra, args.fresh)
    site = site_packages(venv)
    marker = venv / ".model"
    alone = float(marker.read_text().split("\n", 1)[0]) if marker.exists() else size_mib(site)
    training = json.loads((venv / ".training").read_text())
    add_model_requirements(venv, model_reqs, alone)
    with_model = size_mib(site)
    rows = [[0.1 * ((i * 7 + j) % 11 - 5) for j in range(30)] for i in range(10)]
    runs = [serve_once(venv, root, rows) for _ in range(args.repeat)]
    return {
        "install": f"conveyor[{extra}]",
        "site_packages_mib": round(alone, 1),
        "site_packages_with_model_mib": round(with_model, 1),
        "training_packages_present": training,
        "startup_s_median": round(statistics.median(r["startup_s"] for r in runs), 3),
        "startup_s": [round(r["startup_s"], 3) for r in runs],
        "rss_ready_mib_median": round(statistics.median(r["rss_ready_mib"] for r in runs), 1),
        "rss_after_200_predictions_mib_median": round(
            statistics.median(r["rss_after_200_predictions_mib"] for r in runs), 1
        ),
    }


def image(root: Path, args: Any) -> dict[str, Any]:
    """What the image of the example model holds: `conveyor package` (run by the serving
    install), its requirements.txt installed into a fresh venv as the Dockerfile's builder stage
    does (the wheel's /build path pointed at the context), and the model served as the
    entrypoint does: `conveyor serve` configured by the Dockerfile's CONVEYOR_* variables."""
    context, venv = WORK / "context", WORK / "venv-image"
    print("image: the build context, installed as its builder stage would", file=sys.stderr)
    remove(context)
    serve_bin = WORK / "venv-serve" / "bin" / "conveyor"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run_checked([str(serve_bin), "package", "models:/clf@production", "--out", str(context)],
                root, env)  # fmt: skip
    text = (context / "requirements.txt").read_text()
    local = text.replace("file:///build/wheels/", (context / "wheels").as_uri() + "/")
    (WORK / "image-requirements.txt").write_text(local)
    if args.fresh or not (venv / ".done").exists():
        remove(venv)
        run_checked([sys.executable, "-m", "venv", str(venv)], REPO_ROOT, env)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
        run_checked([*pip, "-r", str(WORK / "image-requirements.txt")], REPO_ROOT, env)
        (venv / ".done").write_text("image\n")
    variables = dict(
        re.findall(r"^    (CONVEYOR_\w+)=(\S+)", (context / "Dockerfile").read_text(), re.M)
    )
    served = {
        **variables,
        "CONVEYOR_MODEL": str(context / "model"),
        "CONVEYOR_HOST": "127.0.0.1",
        "CONVEYOR_LOG_DIR": str(WORK / "image-predictions"),
    }
    outside = WORK / "srv"
    outside.mkdir(exist_ok=True)
    rows = [[0.1 * ((i * 7 + j) % 11 - 5) for j in range(30)] for i in range(10)]
    runs = [serve_once(venv, outside, rows, served) for _ in range(args.repeat)]
    return {
        "install": "the build context's requirements.txt (model + conveyor[serve], pinned)",
        "site_packages_mib": round(size_mib(site_packages(venv)), 1),
        "training_packages_present": installed(venv, TRAINING),
        "startup_s_median": round(statistics.median(r["startup_s"] for r in runs), 3),
        "rss_ready_mib_median": round(statistics.median(r["rss_ready_mib"] for r in runs), 1),
        "rss_after_200_predictions_mib_median": round(
            statistics.median(r["rss_after_200_predictions_mib"] for r in runs), 1
        ),
    }


def run(args: argparse.Namespace) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    root = WORK / "proj"
    model_reqs = make_project(root)
    figures = {
        name: measure(name, extra, root, model_reqs, args) for name, extra in INSTALLS.items()
    }
    figures["image"] = image(root, args)
    serve, full = figures["serve"], figures["full"]
    if serve["training_packages_present"]:
        raise BenchError(f"the serving install holds {serve['training_packages_present']}")
    ratio = serve["site_packages_mib"] / full["site_packages_mib"]
    ratio_model = serve["site_packages_with_model_mib"] / full["site_packages_with_model_mib"]
    doc = {
        "target": f"serving install <= {TARGET:.0%} of the whole tool's site-packages",
        "ratio": round(ratio, 3),
        "ratio_with_model": round(ratio_model, 3),
        "met": ratio <= TARGET,
        "model_requirements": model_reqs,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
        "notes": [
            "site-packages: every file's size, pip and setuptools included in both",
            "with model: after `pip install` of the example package's pinned requirements",
            "start-up: process start to the first 200 on /v2/health/ready, serving "
            "models:/clf@production from a SQLite registry",
            "RSS: VmRSS of the server process and its children",
            "image: the venv the Dockerfile's builder stage makes from the context's "
            "requirements.txt (no docker here: the same pip install, on this machine's Python), "
            "serving the model folder as the entrypoint does",
        ],
        "installs": figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'':24}{'serve':>12}{'full':>12}{'ratio':>8}{'image':>12}")
    for key, label in (
        ("site_packages_mib", "site-packages (MiB)"),
        ("site_packages_with_model_mib", "... with model (MiB)"),
        ("startup_s_median", "start-up to ready (s)"),
        ("rss_ready_mib_median", "RSS ready (MiB)"),
        ("rss_after_200_predictions_mib_median", "RSS after 200 req (MiB)"),
    ):
        a, b, c = serve[key], full[key], figures["image"].get(key, "")
        print(f"{label:24}{a:>12}{b:>12}{a / b:>8.0%}{c:>12}")
    verdict = "met" if doc["met"] else "NOT met"
    print(f"target {doc['target']}: {verdict} ({ratio:.0%})")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(common.main(run, parse_args, sys.argv[1:]))
