"""`make demo`: copy the example project to a temp folder and drive it through conveyor.

Every step prints the command and what it printed; a failing step stops the demo with its exit
code. Run from the repository root with the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from classifier.get_data import DRIFTED  # what the demo's new instrument reads higher

HERE = Path(__file__).resolve().parent
KEPT = HERE.parent / "demo-output"  # what the demo leaves to look at (git-ignored)
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "conveyor demo",
    "GIT_AUTHOR_EMAIL": "demo@conveyor.invalid",
    "GIT_COMMITTER_NAME": "conveyor demo",
    "GIT_COMMITTER_EMAIL": "demo@conveyor.invalid",
}


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, **GIT_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        self.step = 0

    def section(self, title: str) -> None:
        self.step += 1
        print(f"\n\033[1m== {self.step}. {title}\033[0m", flush=True)

    def sh(self, *cmd: str, expect: int | None = 0, cwd: Path | None = None) -> str:
        """Run and print a command (in ``cwd``, else the project); exit unless it exits
        ``expect`` (None: any code)."""
        where = f"({cwd.name}) " if cwd is not None else ""
        print(f"{where}$ {' '.join(cmd)}", flush=True)
        proc = subprocess.run(
            cmd, cwd=cwd or self.root, env=self.env, capture_output=True, text=True
        )
        output = (proc.stdout + proc.stderr).rstrip()
        if output:
            print("  " + output.replace("\n", "\n  "), flush=True)
        if expect is not None and proc.returncode != expect:
            print(f"demo step exited with {proc.returncode}, not {expect}", file=sys.stderr)
            sys.exit(proc.returncode or 1)
        if expect:
            print(f"  (exit code {proc.returncode}, as expected)", flush=True)
        return proc.stdout

    def passes(self, *cmd: str) -> bool:
        """Run a command without printing it: did it exit 0?"""
        return subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True).returncode == 0

    def quiet(self, *cmd: str) -> str:
        """Run a command for its output, without printing it."""
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            sys.exit(proc.returncode)
        return proc.stdout


def run(demo: Demo, remote: Path) -> None:
    py = str(BIN / "python")
    demo.section("A fresh git repository with the example project")
    demo.sh("git", "init", "-q", "-b", "main")
    demo.sh(py, "get_data.py")
    demo.sh("conveyor", "init")

    demo.section("Version the raw data")
    demo.sh("conveyor", "add", "data/raw")
    demo.sh("cat", "data/raw.cvy")
    print("objects are named at once; a journal of this boot lets the next command check them")
    print("after a crash (core.fsync: journal; `true` waits for the disk instead)")
    demo.sh("conveyor", "config", "core.fsync")
    demo.sh("git", "add", "-A")
    demo.sh("git", "commit", "-qm", "Track the raw data with conveyor")

    demo.section("Push it to a remote (a local folder here; s3://... works the same)")
    demo.sh("conveyor", "remote", "add", "store", str(remote), "--default")
    demo.sh("conveyor", "push")
    demo.sh("conveyor", "push")

    demo.section("A new batch of data arrives: status shows it, add records it")
    demo.sh(py, "get_data.py", "--extra", "200")
    demo.sh("conveyor", "status")
    demo.sh("conveyor", "add", "data/raw")
    demo.sh("git", "commit", "-qam", "Add 200 labelled rows")
    demo.sh("conveyor", "push")

    demo.section("Time travel: the data as of the previous commit, and back")
    demo.sh("conveyor", "checkout", "--rev", "HEAD~1")
    demo.sh("wc", "-l", "data/raw/cells.csv")
    demo.sh("conveyor", "checkout", "--rev", "HEAD")
    demo.sh("wc", "-l", "data/raw/cells.csv")

    demo.section("Lose the cache and the workspace copy, then pull them back")
    shutil.rmtree(demo.root / ".conveyor" / "cache")
    shutil.rmtree(demo.root / "data" / "raw")
    print("removed .conveyor/cache and data/raw")
    demo.sh("conveyor", "status")
    demo.sh("conveyor", "pull")
    demo.sh("conveyor", "status")
    demo.sh("conveyor", "fsck")

    safety(demo)

    demo.section("The pipeline: prepare -> train -> evaluate, declared in conveyor.yaml")
    demo.sh("conveyor", "dag")
    demo.sh("conveyor", "run")
    demo.sh("conveyor", "metrics", "show")
    demo.sh("git", "add", "-A")
    demo.sh("git", "commit", "-qm", "Run the pipeline")

    demo.section("Run it again: nothing is stale, nothing runs")
    demo.sh("conveyor", "run")

    demo.section("The same pipeline on Ray: each stage a task in its own working copy")
    print("(a local Ray is started for the run; code, deps and outs travel through the remote "
          "by hash, and the lock is written here)")  # fmt: skip
    demo.sh("conveyor", "run", "--executor", "ray", "--force")
    demo.sh("conveyor", "status")
    demo.sh("git", "commit", "-qam", "The pipeline, run on Ray", "--allow-empty")

    demo.section("Change a param: only the stages that use it (and what follows) run")
    params = demo.root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.05"))
    print("set train.C to 0.05 in params.yaml")
    demo.sh("conveyor", "status")
    demo.sh("conveyor", "run")
    demo.sh("conveyor", "metrics", "show")

    demo.section("Back to the committed params: outs come from the run-cache, nothing re-runs")
    demo.sh("git", "checkout", "params.yaml")
    demo.sh("conveyor", "run")
    demo.sh("git", "status", "--short")

    demo.section("A teammate's clone: the run-cache travels with push and pull")
    demo.sh("conveyor", "push", "--run-cache")
    mate = demo.root.parent / "teammate"
    demo.sh("git", "clone", "-q", str(demo.root), str(mate))
    demo.sh("conveyor", "pull", "--run-cache", cwd=mate)
    print("(the teammate tries train.C = 0.05, which was run above in the other clone)")
    mate_params = mate / "params.yaml"
    mate_params.write_text(mate_params.read_text().replace("C: 1.0", "C: 0.05"))
    demo.sh("conveyor", "run", cwd=mate)

    demo.section("Every run is tracked: a table of runs, and what changed between two of them")
    demo.sh("conveyor", "runs", "list", "--limit", "6")
    runs = json.loads(demo.quiet("conveyor", "runs", "list", "--json", "--sort", "started"))
    low = next(r["id"] for r in runs if r["params"].get("train.C") == 0.05)
    demo.sh(
        "conveyor",
        "runs",
        "list",
        "--filter",
        "params.train.C < 1",
        "--columns",
        "metrics.eval.auc",
    )
    demo.sh("conveyor", "diff", runs[0]["id"], low)

    demo.section("Experiments: queue two, run them side by side in copies, apply the best")
    demo.sh("conveyor", "exp", "run", "--queue", "-S", "train.C=0.3", "--name", "C-0.3")
    demo.sh("conveyor", "exp", "run", "--queue", "-S", "train.C=3", "--name", "C-3")
    demo.sh("conveyor", "exp", "start", "-j", "2")
    demo.sh("git", "status", "--short")
    demo.sh("conveyor", "runs", "list", "--filter", "name ~ 'C-*'", "--sort", "-metrics.eval.f1")
    exps = json.loads(
        demo.quiet(
            "conveyor",
            "runs",
            "list",
            "--json",
            "--filter",
            "name ~ 'C-*'",
            "--sort",
            "-metrics.eval.f1",
        )
    )
    demo.sh("conveyor", "exp", "apply", exps[0]["id"])
    demo.sh("conveyor", "diff", "--md")

    demo.section("Tuning: Optuna searches train.C, every trial a tracked run; apply the best")
    demo.sh("conveyor", "tune", "--trials", "4")
    demo.sh("conveyor", "tune", "show", "--apply")
    demo.sh("conveyor", "run")
    demo.sh("conveyor", "metrics", "show")

    demo.section("Register the model with its lineage, make it production, load it by name")
    last = json.loads(demo.quiet("conveyor", "runs", "list", "--json", "--limit", "1"))[0]["id"]
    demo.sh("conveyor", "models", "register", "classifier", "models/classifier", "--run", last)
    demo.sh("conveyor", "models", "alias", "classifier@production", "1")
    demo.sh("conveyor", "models", "list")
    demo.sh("conveyor", "models", "lineage", "classifier@production")
    demo.sh(
        str(BIN / "python"),
        "-c",
        "import numpy as np; from conveyor import models; "
        "m = models.load('models:/classifier@production'); "
        "x = np.loadtxt('data/prepared/test.csv', delimiter=',', skiprows=1)[:5, 1:-1]; "
        "print('predictions of production on 5 test rows:', m.predict(x))",
    )
    gates(demo)
    serve(demo)
    deploy(demo)
    monitoring(demo)
    scale_out(demo)


def safety(demo: Demo) -> None:
    """What a cloned repository holds is untrusted: it never writes into .git or outside the
    project, and secrets never reach a committed file."""
    demo.section("Safe by default: a hostile pointer, a secret, local state kept out of git")
    hostile = demo.root / "hooks.cvy"
    raw = (demo.root / "data" / "raw.cvy").read_text()
    hostile.write_text(raw.replace("path: raw", "path: .git/hooks"))
    print("a pointer whose path leads into .git/hooks (a hook runs code on the next git command):")
    demo.sh("grep", "path:", "hooks.cvy")
    demo.sh("conveyor", "checkout", "hooks.cvy", expect=2)
    hostile.unlink()
    demo.sh("conveyor", "config", "db.url", "postgresql://ml:s3cret@db.example/ml", expect=2)
    demo.sh("conveyor", "config", "--local", "db.url", "postgresql://ml:s3cret@db.example/ml")
    demo.sh("conveyor", "config", "--list")
    demo.sh("conveyor", "config", "--local", "--unset", "db.url")
    demo.sh("git", "status", "--short", "--ignored", ".conveyor")


def gates(demo: Demo) -> None:
    """A candidate that passes the gates, one with a damaged param that fails, and back."""
    demo.section("Quality gates: thresholds, production at 95% confidence, slices, data, behaviour")
    demo.sh("conveyor", "check")
    demo.section("A damaged candidate (train.C = 0.002: far too much regularisation) fails")
    demo.sh("conveyor", "run", "-S", "train.C=0.002")
    demo.sh("conveyor", "metrics", "show")
    demo.sh("conveyor", "check", expect=1)
    demo.sh("conveyor", "report", "--base", "production")
    demo.sh("sed", "-n", "/### Params and metrics/,$p", "reports/report.md")
    demo.section("Back to the good params: restored from the run-cache, the gates pass again")
    demo.sh("conveyor", "run")
    demo.sh("conveyor", "check")
    demo.section("CI: a GitHub workflow, and the whole job in one command (here, on main)")
    demo.sh("conveyor", "ci", "init", "github")
    demo.sh("git", "add", "-A")
    demo.sh("git", "commit", "-qm", "Gates, reports and the CI workflow")
    demo.sh("conveyor", "ci", "--release")


def serve(demo: Demo) -> None:
    """Serve production on loopback; ask it over both protocols; show its metrics and log."""
    demo.section("Serve production over HTTP: Open Inference Protocol v2 and MLflow scoring")
    cmd = ["conveyor", "serve", "models:/classifier@production", "--port", "0"]
    print(f"$ {' '.join(cmd)} &", flush=True)
    server = subprocess.Popen(cmd, cwd=demo.root, env=demo.env, stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    try:
        first = server.stderr.readline()
        print("  " + first.rstrip(), flush=True)
        url = first.split("listening on ", 1)[1].split()[0]
        deadline = time.monotonic() + 60
        while _get(url + "/v2/health/ready")[0] != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                print(server.stderr.read(), file=sys.stderr)
                sys.exit("demo step failed: the server did not get ready")
            time.sleep(0.05)
        rows = [
            [float(v) for v in line.split(",")[1:-1]]
            for line in (demo.root / "data/prepared/test.csv").read_text().splitlines()[1:4]
        ]
        v2 = {"id": "demo-1", "inputs": [
            {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}
        ]}  # fmt: skip
        for path, body in (
            ("/v2/models/classifier/infer", v2),
            ("/invocations", {"dataframe_split": {"data": rows}}),
        ):
            shown = json.dumps(body)
            print(f"$ curl -X POST {url}{path} -d '{shown[:70]}...'", flush=True)
            status, answer, headers = _post(url + path, body)
            print(
                f"  {status} x-request-id: {headers['x-request-id']} "
                f"x-model-version: {headers['x-model-version']}\n  {answer}",
                flush=True,
            )
        print(f"$ curl {url}/metrics | grep requests_total", flush=True)
        for line in _get(url + "/metrics")[1].splitlines():
            if line.startswith("conveyor_requests_total"):
                print("  " + line, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
    log = sorted((demo.root / ".conveyor/predictions/classifier").glob("*.jsonl"))
    record = json.loads(log[-1].read_text().splitlines()[0])
    print(
        f"prediction log {log[-1].relative_to(demo.root)}: request {record['id']} "
        f"answered by version {record['version']}: {record['outputs']}",
        flush=True,
    )


TOKEN = "demo-admin-token"  # what POST /feedback needs; a real one comes from a secret store

# A damaged version: the right answers' shape, a broken dependency that fails one call in five.
DAMAGED = """
import numpy as np

class Model:
    calls = 0

    def predict(self, x):
        Model.calls += 1
        if Model.calls % 5 == 0:
            raise RuntimeError("a broken dependency")
        return np.zeros(len(x), dtype=int)

def load(folder):
    return Model()
"""


class Traffic:
    """Users of a served environment: one-row requests with fresh ids (and a user id, for an
    A/B's sticky split), and the true labels posted to /feedback a moment later."""

    def __init__(self, demo: Demo, url: str) -> None:
        header, *lines = (demo.root / "data/prepared/test.csv").read_text().splitlines()
        self.names = header.split(",")[1:-1]
        self.rows = [([float(v) for v in ln.split(",")[1:-1]], int(float(ln.split(",")[-1])))
                     for ln in lines]  # fmt: skip
        self.scale = [1.0] * len(self.names)  # what the users' instrument reads, per feature
        self.url = url
        self.answered: dict[str, int] = {}  # version -> requests it answered
        self.failed: dict[str, int] = {}  # version -> requests it failed
        self.labels = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pending: list[dict[str, object]] = []
        rng = random.Random(0)
        while not self.stopping.is_set():
            features, label = rng.choice(self.rows)
            features = [v * f for v, f in zip(features, self.scale, strict=True)]
            rid = uuid.uuid4().hex
            headers = {"x-request-id": rid, "x-user-id": f"user-{rng.randrange(10_000)}"}
            req = urllib.request.Request(
                self.url + "/invocations", data=json.dumps({"inputs": [features]}).encode(),
                headers={"Content-Type": "application/json", **headers}, method="POST",
            )  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                    version = resp.headers["x-model-version"]
                    self.answered[version] = self.answered.get(version, 0) + 1
                    pending.append({"id": rid, "label": label})
            except urllib.error.HTTPError as exc:
                version = exc.headers.get("x-model-version", "?")
                self.failed[version] = self.failed.get(version, 0) + 1
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
            if len(pending) >= 25:  # the truth arrives later, in batches
                body = json.dumps(pending).encode()
                auth = {"Authorization": f"Bearer {TOKEN}"}
                fb = urllib.request.Request(
                    self.url + "/feedback", data=body, method="POST", headers=auth
                )
                with urllib.request.urlopen(fb, timeout=10) as resp:
                    self.labels += json.loads(resp.read())["accepted"]
                pending = []

    def drift(self, names: Iterable[str], factor: float) -> None:
        """From now on, these features read ``factor`` times higher (the labels stay)."""
        chosen = set(names)
        self.scale = [factor if n in chosen else 1.0 for n in self.names]

    def summary(self) -> str:
        answered = ", ".join(f"version {v}: {n}" for v, n in sorted(self.answered.items()))
        failed = ", ".join(f"version {v}: {n}" for v, n in sorted(self.failed.items())) or "none"
        return (
            f"traffic so far: answered by {answered}; failed: {failed}; "
            f"labels posted: {self.labels}"
        )

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(15)


class Serving:
    """`conveyor serve --env ENV` in the background, ready, with its URL."""

    def __init__(self, demo: Demo, env: str, *args: str) -> None:
        cmd = ["conveyor", "serve", "--env", env, "--port", "0", *args]
        print(f"$ CONVEYOR_ADMIN_TOKEN=... {' '.join(cmd)} &", flush=True)
        self.proc = subprocess.Popen(
            cmd, cwd=demo.root, env={**demo.env, "CONVEYOR_ADMIN_TOKEN": TOKEN},
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        print("  " + first.rstrip(), flush=True)
        if "listening on " not in first:
            print(self.proc.stderr.read(), file=sys.stderr)
            sys.exit("demo step failed: the server did not start")
        self.url = first.split("listening on ", 1)[1].split()[0]
        deadline = time.monotonic() + 60
        while _get(self.url + "/v2/health/ready")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                print(self.proc.stderr.read(), file=sys.stderr)
                sys.exit("demo step failed: the server did not get ready")
            time.sleep(0.05)
        # what the server and its controller say, on the demo's output, as they say it
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            print("  [server] " + line.rstrip(), flush=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def deploy(demo: Demo) -> None:
    """Production follows its deployment record: a canary judged on live traffic and labels, a
    refused version, a damaged one aborted by itself, a rollback, and an A/B test's verdict."""
    demo.section("Progressive delivery: production serves what its deployment record says")
    demo.sh("conveyor", "deploy", "classifier@production", "--env", "production")
    server = Serving(demo, "production", "--no-monitor")  # monitoring has its own step
    traffic = Traffic(demo, server.url)
    try:
        demo.section("A new version rolls out as a canary, judged against production on live "
                     "traffic and labels")  # fmt: skip
        # a retrain with another C that passes the gates against production (the first of these)
        for c in ("1.0", "0.5", "2", "0.3"):
            demo.sh("conveyor", "run", "-S", f"train.C={c}")
            if demo.passes("conveyor", "check"):
                break
        demo.sh("conveyor", "check")
        last = json.loads(demo.quiet("conveyor", "runs", "list", "--json", "--limit", "1"))[0]
        new = _registered(demo.sh("conveyor", "models", "register", "classifier",
                                  "models/classifier", "--run", last["id"]))  # fmt: skip
        demo.sh("conveyor", "deploy", f"models:/classifier/{new}", "--env", "production")
        demo.sh("conveyor", "rollout", "watch", "production", "--timeout", "120")
        print(traffic.summary(), flush=True)
        demo.sh("conveyor", "rollout", "status", "production")

        demo.section("A version whose gates failed is refused")
        demo.sh("conveyor", "run", "-S", "train.C=0.002")
        demo.sh("conveyor", "check", expect=1)
        last = json.loads(demo.quiet("conveyor", "runs", "list", "--json", "--limit", "1"))[0]
        failed = _registered(demo.sh("conveyor", "models", "register", "classifier",
                                     "models/classifier", "--run", last["id"]))  # fmt: skip
        demo.sh("conveyor", "deploy", f"models:/classifier/{failed}", "--env", "production",
                expect=1)  # fmt: skip
        demo.sh("conveyor", "run")  # back to the good params, from the run-cache

        demo.section("A damaged version (one call in five fails) is aborted by itself")
        code = demo.root / "damaged" / "damaged_model.py"
        code.parent.mkdir()
        code.write_text(DAMAGED)
        demo.quiet(
            str(BIN / "python"), "-c",
            "import numpy as np; from conveyor import models; "
            "x = np.loadtxt('data/prepared/test.csv', delimiter=',', skiprows=1)[:2, 1:-1]; "
            "models.save(None, 'damaged/package', flavor='python', "
            "loader='damaged_model:load', code=['damaged/damaged_model.py'], example=x, "
            "name='classifier')",
        )  # fmt: skip
        damaged = _registered(
            demo.sh("conveyor", "models", "register", "classifier", "damaged/package")
        )
        demo.sh("conveyor", "deploy", f"models:/classifier/{damaged}", "--env", "production")
        demo.sh("conveyor", "rollout", "watch", "production", "--timeout", "60", expect=1)
        demo.sh("conveyor", "rollout", "history", "production")
        print(traffic.summary(), flush=True)

        demo.section("Roll back: the previous version, its alias and all traffic, at once")
        demo.sh("conveyor", "rollback", "production")
        demo.sh("conveyor", "models", "list")
        time.sleep(1)
        print(traffic.summary(), flush=True)
    finally:
        traffic.stop()
        server.stop()

    demo.section("An A/B test: half the users each (sticky by x-user-id), ended by a verdict")
    demo.sh("conveyor", "deploy", "classifier@production", "--env", "experiment")
    server = Serving(demo, "experiment")
    traffic = Traffic(demo, server.url)
    try:
        demo.sh("conveyor", "deploy", f"models:/classifier/{new}", "--env", "experiment")
        demo.sh("conveyor", "rollout", "watch", "experiment", "--timeout", "120", expect=None)
        print(traffic.summary(), flush=True)
        demo.sh("conveyor", "rollout", "history", "experiment")
    finally:
        traffic.stop()
        server.stop()


def monitoring(demo: Demo) -> None:
    """Production watches itself: windows of traffic against the training data, accuracy from
    the labels; the world changes, the quality alert fires, and its retrain rolls a new version
    out, promoted by its canary, with no command typed."""
    demo.section("Monitoring: production's traffic against its training data, and its labels")
    server = Serving(demo, "production")
    traffic = Traffic(demo, server.url)
    try:
        _until(demo, "a window closed", lambda: bool(_checks(demo)), 90)
        demo.sh("conveyor", "monitor", "status")

        demo.section("The world changes: the lab's new instrument reads texture and smoothness "
                     "30 % higher")  # fmt: skip
        print("(every cell is measured again with it, and the data lands as a data job would "
              "add it)")  # fmt: skip
        demo.sh(str(BIN / "python"), "get_data.py", "--extra", "200", "--drift", "1.3")
        print("(the new instrument's readings are valid: schema.yaml widens their ranges)")
        _widen(demo.root / "schema.yaml", DRIFTED, 1.3)
        demo.sh("conveyor", "add", "data/raw")
        demo.sh("conveyor", "push")
        before = _stable(demo)
        traffic.drift(DRIFTED, 1.3)
        print("(users now send the new instrument's readings; their labels follow)", flush=True)
        _until(demo, "the retrained version promoted", lambda: _stable(demo) != before, 300)
        print(traffic.summary(), flush=True)
        demo.sh("conveyor", "rollout", "history", "production")
        _until(demo, "the quality back", lambda: _verdict(demo, "quality.accuracy") == "ok", 120)
        demo.sh("conveyor", "monitor", "status")
        demo.section("The monitoring report: each feature against the training data, over time")
        demo.sh("conveyor", "monitor", "report", "--window", "all", "--png", "reports")
        KEPT.mkdir(exist_ok=True)  # the demo's project is a temp folder: keep the report
        for name in ("monitor-production.html", "monitor-production-features.png"):
            shutil.copy(demo.root / "reports" / name, KEPT / name)
        print(f"(kept: open {KEPT / 'monitor-production.html'} in a browser; the features' "
              f"picture is {KEPT / 'monitor-production-features.png'})")  # fmt: skip
    finally:
        traffic.stop()
        server.stop()


def scale_out(demo: Demo) -> None:
    """Past one machine: production as Kubernetes manifests whose canary Argo Rollouts carries
    out with conveyor's analysis as the judge, the image's build context, and the pipeline for
    the orchestrators teams run."""
    demo.section("Production on Kubernetes: an Argo Rollout, judged by conveyor's own analysis")
    demo.sh("conveyor", "k8s", "render", "production", "--out", "k8s")
    rollout = next((demo.root / "k8s").glob("rollout-*.yaml")).relative_to(demo.root)
    template = next((demo.root / "k8s").glob("analysistemplate-*.yaml")).relative_to(demo.root)
    print("(the canary's steps, as deploy: says, each weight held until the analysis passes)")
    demo.sh("sed", "-n", "/strategy:/,/template:/p", str(rollout))
    print("(the analysis: conveyor's verdict; inconclusive is neither, so Argo asks again)")
    demo.sh("sed", "-n", "/metrics:/,$p", str(template))
    demo.sh("conveyor", "k8s", "apply", "production", expect=1)

    demo.section("The image those pods run: an OCI build context for production's version")
    demo.sh("conveyor", "package", "--env", "production", "--out", "image")
    demo.sh("sed", "-n", "/^FROM/p;/^USER/p;/^HEALTHCHECK/,+1p;/^ENTRYPOINT/p", "image/Dockerfile")
    KEPT.mkdir(exist_ok=True)
    shutil.rmtree(KEPT / "image", ignore_errors=True)
    shutil.copytree(demo.root / "image", KEPT / "image", ignore=shutil.ignore_patterns("wheels"))
    print(f"(kept: {KEPT / 'image'}; no container builder here: `docker build` it where one is)")

    demo.section("The pipeline for the orchestrators teams run: Airflow and Kubeflow Pipelines")
    demo.sh("conveyor", "export", "airflow", "--image", "classifier-pipeline:latest")
    demo.sh("conveyor", "export", "kubeflow", "--image", "classifier-pipeline:latest")


def _widen(schema: Path, names: Iterable[str], factor: float) -> None:
    """Raise the ``max`` of these columns in a schema file by ``factor``."""
    lines = schema.read_text().splitlines(keepends=True)
    column = ""
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.startswith("    "):
            column = line.strip().rstrip(":")
        elif column in names and line.strip().startswith("max:"):
            value = float(line.split(":", 1)[1])
            lines[i] = f"    max: {round(value * factor, 4)}\n"
    schema.write_text("".join(lines))


def _checks(demo: Demo) -> dict[str, Any]:
    shown = json.loads(demo.quiet("conveyor", "monitor", "status", "--json"))
    return {c["name"]: c for c in shown["checks"]}


def _verdict(demo: Demo, name: str) -> str:
    return str(_checks(demo).get(name, {}).get("verdict", ""))


def _stable(demo: Demo) -> int | None:
    (shown,) = json.loads(demo.quiet("conveyor", "rollout", "status", "production", "--json"))
    return shown["record"]["stable"] if shown["record"] else None


def _until(demo: Demo, what: str, done: Callable[[], bool], seconds: float) -> None:
    """Wait (bounded) for ``done``; the demo fails, saying what it waited for, past that."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"demo step failed: waited {seconds:g} s for {what}")
        time.sleep(1)


def _registered(output: str) -> int:
    """The version `conveyor models register` says it registered."""
    found = re.search(r"registered \S+ version (\d+)", output)
    if found is None:
        sys.exit(f"demo step failed: no version in {output!r}")
    return int(found[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except OSError:  # refused, reset, timed out (a busy machine), or an HTTP error
        return 0, ""


def _post(url: str, body: object) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.headers.items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as tmp:
        root = Path(tmp) / "classifier"
        shutil.copytree(HERE / "classifier", root)
        print(f"demo project: {root}")
        run(Demo(root), Path(tmp) / "remote-store")
    print("\ndemo finished: every step passed")


if __name__ == "__main__":
    main()
