"""A DVC project of the get-started shape, moved over by renaming dvc.yaml: real stage
processes write dvclive's layout (the files dvclive writes, made here with the standard
library: dvclive itself depends on the whole of DVC), then metrics, plots and checkout use it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.tracking.db import opened
from tests.conftest import Project

PY = sys.executable

PREPARE = """\
import os, sys, yaml
params = yaml.safe_load(open("params.yaml"))["prepare"]
rows = open(sys.argv[1]).read().split()
cut = int(len(rows) * (1 - params["split"]))
os.makedirs("data/prepared", exist_ok=True)
open("data/prepared/train.txt", "w").write("\\n".join(rows[:cut]))
open("data/prepared/test.txt", "w").write("\\n".join(rows[cut:]))
"""
FEATURIZE = """\
import os, sys
os.makedirs(sys.argv[2], exist_ok=True)
for part in ("train", "test"):
    words = open(f"{sys.argv[1]}/{part}.txt").read().split()
    open(f"{sys.argv[2]}/{part}.csv", "w").write("\\n".join(f"{len(w)},{w[0]}" for w in words))
"""
TRAIN = """\
import sys, yaml
params = yaml.safe_load(open("params.yaml"))["train"]
open(sys.argv[2], "w").write(f"threshold={params['threshold']}\\n")
"""
# dvclive's files: metrics.json, plots/sklearn/{roc,cm}/{train,test}.json, plots/images/*.png
EVALUATE = """\
import json, os, struct, sys, zlib
threshold = int(open(sys.argv[1]).read().split("=")[1])
out = "dvclive"
for sub in ("plots/sklearn/roc", "plots/sklearn/cm", "plots/images"):
    os.makedirs(f"{out}/{sub}", exist_ok=True)
metrics = {}
for part in ("train", "test"):
    rows = [line.split(",") for line in open(f"{sys.argv[2]}/{part}.csv").read().split()]
    actual = [int(first in "aeiou") for _, first in rows]
    predicted = [int(int(n) > threshold) for n, _ in rows]
    right = sum(a == p for a, p in zip(actual, predicted))
    metrics.setdefault("accuracy", {})[part] = right / len(rows)
    roc = [{"fpr": i / 4, "tpr": min(1.0, i / 3), "threshold": 1 - i / 4} for i in range(5)]
    json.dump({"roc": roc}, open(f"{out}/plots/sklearn/roc/{part}.json", "w"))
    cm = [{"actual": str(a), "predicted": str(p)} for a, p in zip(actual, predicted)]
    json.dump({"cm": cm}, open(f"{out}/plots/sklearn/cm/{part}.json", "w"))
json.dump(metrics, open(f"{out}/metrics.json", "w"))
def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
pixels = b"".join(b"\\0" + bytes([x * 60, 100, 200]) * 4 for x in range(4))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b""))
open(f"{out}/plots/images/importance.png", "wb").write(png)
"""

DVC_YAML = f"""\
artifacts:
  text-classification:
    path: model.pkl
    desc: Detect whether a word starts with a vowel
    type: model
    labels:
    - nlp
    - classification
stages:
  prepare:
    cmd: {PY} src/prepare.py data/data.txt
    deps:
    - data/data.txt
    - src/prepare.py
    params:
    - prepare.seed
    - prepare.split
    outs:
    - data/prepared
  featurize:
    cmd: {PY} src/featurization.py data/prepared data/features
    deps:
    - data/prepared
    - src/featurization.py
    outs:
    - data/features
  train:
    cmd: {PY} src/train.py data/features model.pkl
    deps:
    - data/features
    - src/train.py
    params:
    - train.threshold
    outs:
    - model.pkl
  evaluate:
    cmd: {PY} src/evaluate.py model.pkl data/features
    deps:
    - data/features
    - model.pkl
    - src/evaluate.py
    outs:
    - dvclive
    metrics:
    - dvclive/metrics.json
metrics:
- dvclive/metrics.json
plots:
- ROC:
    template: simple
    x: fpr
    y:
      dvclive/plots/sklearn/roc/train.json: tpr
      dvclive/plots/sklearn/roc/test.json: tpr
- Confusion-Matrix:
    template: confusion
    x: actual
    y:
      dvclive/plots/sklearn/cm/train.json: predicted
      dvclive/plots/sklearn/cm/test.json: predicted
- dvclive/plots/images/importance.png
"""
PARAMS = "prepare:\n  seed: 20170428\n  split: 0.25\ntrain:\n  threshold: 4\n"
WORDS = "apple banana orange kiwi umbrella grape egg plum ice melon olive fig\n"


@pytest.fixture
def dvc(project: Project) -> Project:
    project.write("src/prepare.py", PREPARE)
    project.write("src/featurization.py", FEATURIZE)
    project.write("src/train.py", TRAIN)
    project.write("src/evaluate.py", EVALUATE)
    project.write("params.yaml", PARAMS)
    project.write("data/data.txt", WORDS)
    project.write("conveyor.yaml", DVC_YAML)
    return project


def _accuracy(threshold: int) -> dict[str, float]:
    words = WORDS.split()
    cut = int(len(words) * 0.75)
    out = {}
    for part, rows in (("train", words[:cut]), ("test", words[cut:])):
        right = sum((w[0] in "aeiou") == (len(w) > threshold) for w in rows)
        out[f"metrics.accuracy.{part}"] = right / len(rows)
    return out


def test_the_get_started_shape_runs_and_shows_top_level_metrics_and_plots(dvc: Project) -> None:
    dvc.ok("run", "--name", "first")
    assert json.loads(dvc.ok("metrics", "show", "--json")) == _accuracy(4)
    assert (dvc.root / "dvclive" / "metrics.json").exists()
    dvc.ok("run", "--name", "second", "-S", "train.threshold=5")
    out = dvc.ok("plots", "first", "second", "--out", "pics")
    pics = dvc.root / "pics"
    names = sorted(p.name for p in pics.iterdir())
    assert names == [
        "00-ROC.png",
        "01-Confusion-Matrix.png",
        "02-dvclive-plots-images-importance-png-first.png",
        "03-dvclive-plots-images-importance-png-second.png",
        "index.html",
    ], out
    # the image is the file the stage wrote, as it was in each run's dvclive folder
    assert (pics / names[2]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (pics / names[0]).stat().st_size > 10_000  # four lines drawn: 2 runs x 2 files
    page = (pics / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "<h2>ROC</h2>" in page and "<h2>Confusion-Matrix</h2>" in page
    with opened(dvc.root, write=False) as store:
        runs = {r["name"]: r for r in (store.run(row["id"]) for row in store.runs())}
    assert (
        runs["second"]["metrics"]["metrics.accuracy.test"] == _accuracy(5)["metrics.accuracy.test"]
    )


def test_every_mistake_of_the_file_is_reported_in_one_run(dvc: Project) -> None:
    text = (
        DVC_YAML.replace("    outs:\n    - model.pkl", "    outz:\n    - model.pkl")
        .replace("    template: confusion", "    templat: confusion")
        .replace("- prepare.split", "- prepare.splt")
        .replace("artifacts:", "artifact:")
    )
    dvc.write("conveyor.yaml", text)
    result = dvc.run("run")
    assert result.code == 2 and "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 4, result.err
    numbers = [int(line.split(":")[2]) for line in lines]
    assert numbers == sorted(numbers)  # in the order a reader meets them
    assert "conveyor.yaml:1: unknown section 'artifact'" in result.err
    assert "unknown param 'prepare.splt'" in result.err
    assert "stage 'train': unknown key 'outz'" in result.err
    assert "plot 'Confusion-Matrix': unknown key 'templat'" in result.err
    assert "did you mean 'template'?" in result.err
    assert not (dvc.root / "data" / "prepared").exists()  # nothing ran


def test_checkout_restores_pipeline_outs_from_the_lock(dvc: Project) -> None:
    dvc.ok("run")
    model = (dvc.root / "model.pkl").read_text()
    test_csv = dvc.root / "data" / "features" / "test.csv"
    features = test_csv.read_text()
    import shutil

    shutil.rmtree(dvc.root / "dvclive")
    (dvc.root / "model.pkl").unlink()
    out = dvc.ok("checkout", "train")  # one stage's outs only
    assert (dvc.root / "model.pkl").read_text() == model
    assert "model.pkl: 1 added" in out and not (dvc.root / "dvclive").exists()
    out = dvc.ok("checkout")
    assert json.loads((dvc.root / "dvclive" / "metrics.json").read_text())
    assert "dvclive: " in out and "data/features: up to date" in out
    # unsaved work in an out is not overwritten without --force
    os.chmod(test_csv, 0o644)
    test_csv.write_text("unsaved\n")
    result = dvc.run("checkout", "data/features")
    assert result.code == 1 and "not in the cache" in result.err and "--force" in result.err
    assert test_csv.read_text() == "unsaved\n"
    dvc.ok("checkout", "--force", "data/features")
    assert test_csv.read_text() == features
    assert "No stale stages." in dvc.ok("status")


def test_a_run_records_the_python_of_the_stages_not_conveyors(
    project: Project, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # A real distribution's metadata folder: what an installer leaves (installing one here
    # would need the network).
    (site / "scikit_learn-0.0.1.dist-info").mkdir()
    path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: python -c \"import sys; open('out.txt', 'w').write(sys.prefix)\"\n"
        f"    outs: [out.txt]\n    env:\n      PATH: {json.dumps(path)}\n",
    )
    project.ok("run")
    assert (project.root / "out.txt").read_text() == str(venv)
    with opened(project.root, write=False) as store:
        env = store.run(store.runs()[-1]["id"])["environment"]
    assert env["executable"].startswith(str(venv))
    assert env["packages"] == {"scikit-learn": "0.0.1"}  # conveyor's own numpy is not there
    # an install into the stages' environment shows in the next run (the probe is not stale)
    (site / "numpy-0.0.2.dist-info").mkdir()
    project.ok("run", "--force")
    with opened(project.root, write=False) as store:
        env = store.run(store.runs()[-1]["id"])["environment"]
    assert env["packages"] == {"numpy": "0.0.2", "scikit-learn": "0.0.1"}


def test_the_python_probe_runs_none_of_the_projects_modules(project: Project) -> None:
    """A project's own platform.py or json.py (beside conveyor.yaml) is the project's: the
    probe of the stages' Python never imports it, and still records the Python."""
    for name in ("platform.py", "json.py"):
        project.write(name, "open('imported.txt', 'a').write(__name__)\nraise SystemExit(3)\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: python -c \"open('out.txt', 'w').write('x')\"\n"
        "    outs: [out.txt]\n",
    )
    project.ok("run")
    assert not (project.root / "imported.txt").exists()
    with opened(project.root, write=False) as store:
        env = store.run(store.runs()[-1]["id"])["environment"]
    probed = subprocess.run(
        ["python", "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True, cwd="/",
    )  # fmt: skip
    assert env["python"] == probed.stdout.strip()


def test_checkout_rev_restores_outs_and_lock_entries_of_that_commit(dvc: Project) -> None:
    dvc.ok("run")
    dvc.git("add", "-A")
    dvc.git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "four")
    four = (dvc.root / "model.pkl").read_text()
    dvc.write("params.yaml", PARAMS.replace("threshold: 4", "threshold: 6"))
    dvc.ok("run")
    assert (dvc.root / "model.pkl").read_text() == "threshold=6\n"
    out = dvc.ok("checkout", "--rev", "HEAD", "model.pkl")
    assert (dvc.root / "model.pkl").read_text() == four and "model.pkl: 0 added, 1 modified" in out
    status = dvc.ok("status")  # the lock's train entry is the commit's: its param changed
    assert "stale     stage train" in status and "param train.threshold changed 4 -> 6" in status


def test_a_top_level_metrics_folder_stands_for_the_files_in_it(dvc: Project) -> None:
    dvc.write(
        "conveyor.yaml", DVC_YAML.replace("metrics:\n- dvclive/metrics.json", "metrics:\n- dvclive")
    )
    dvc.ok("run")
    (dvc.root / "dvclive" / "extra").mkdir()
    (dvc.root / "dvclive" / "extra" / "loss.yaml").write_text("final: 0.25\n")
    shown = json.loads(dvc.ok("metrics", "show", "--json"))
    assert shown == {**_accuracy(4), "loss.final": 0.25}


def test_the_pull_request_report_draws_the_top_level_plots_against_a_base_run(
    dvc: Project,
) -> None:
    dvc.ok("run", "--name", "base")
    with opened(dvc.root, write=False) as store:
        base = store.runs()[-1]["id"]
    dvc.ok("run", "-S", "train.threshold=5")
    dvc.ok("report", "--base", base, "--no-gates")
    report = (dvc.root / "reports" / "report.md").read_text()
    shown = sorted(p.name for p in (dvc.root / "reports" / "report-plots").iterdir())
    # both sides' dvclive files, read from inside the folder out (the base from the cache)
    assert "![ROC](report-plots/00-ROC.png)" in report, report
    assert "![Confusion-Matrix](report-plots/01-Confusion-Matrix.png)" in report
    assert sum(name.endswith("-importance-png-workspace.png") for name in shown) == 1, shown
    assert sum(f"-run-{base}" in name for name in shown) == 1, shown


def test_the_report_never_copies_a_file_a_link_leads_to_outside_the_project(
    dvc: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A repository can commit a plots file as a link to a key file: the pull-request report
    (posted as a comment) must not carry it."""
    secret = tmp_path_factory.mktemp("home") / "credentials"
    secret.write_bytes(b"aws_secret_access_key = SECRET-IN-HOME\n")
    dvc.ok("run", "--name", "base")
    with opened(dvc.root, write=False) as store:
        base = store.runs()[-1]["id"]
    image = dvc.root / "dvclive" / "plots" / "images" / "importance.png"
    image.unlink()
    image.symlink_to(secret)
    roc = dvc.root / "dvclive" / "plots" / "sklearn" / "roc" / "test.json"
    roc.unlink()
    roc.symlink_to(secret)
    dvc.ok("report", "--base", base, "--no-gates")
    written = [p.read_bytes() for p in (dvc.root / "reports").rglob("*") if p.is_file()]
    assert written and not any(b"SECRET-IN-HOME" in data for data in written)
    embedded = base64.b64encode(secret.read_bytes())[:24]  # how the HTML page embeds images
    assert not any(embedded in data for data in written)
    shown = sorted(p.name for p in (dvc.root / "reports" / "report-plots").iterdir())
    assert not any(name.endswith("-workspace.png") for name in shown), shown


def test_a_metrics_file_linked_outside_the_project_is_refused_not_read(
    dvc: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Metrics reach run records, `metrics show` and the report: a metrics file a repository
    links to a JSON file of tokens (~/.docker/config.json) must not carry them there."""
    tokens = tmp_path_factory.mktemp("home") / "config.json"
    tokens.write_text(json.dumps({"auths": {"registry": {"auth": "TOKEN-IN-HOME"}}}))
    dvc.ok("run")
    metrics = dvc.root / "dvclive" / "metrics.json"
    metrics.unlink()
    metrics.symlink_to(tokens)
    result = dvc.run("metrics", "show")
    assert result.code == 2, result.err
    assert "dvclive/metrics.json is a link to" in result.err and "outside the project" in result.err
    assert "TOKEN-IN-HOME" not in result.out + result.err
