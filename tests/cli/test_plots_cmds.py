"""`conveyor plots`: real runs, real matplotlib, real files."""

from __future__ import annotations

import sys

from tests.conftest import Project

TRAIN = """\
import csv, yaml, conveyor
rate = yaml.safe_load(open("params.yaml"))["train"]["rate"]
for step in range(5):
    conveyor.log_metric("loss", 1.0 / (1 + rate * step), step=step)
with open("curve.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["x", "y"])
    w.writerows([x, rate * x] for x in range(4))
"""


def test_plots_overlays_step_metrics_and_plots_files(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.write("params.yaml", "train:\n  rate: 1\n")
    project.write(
        "conveyor.yaml",
        f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    params: [train.rate]\n"
        "    plots: [curve.csv]\n",
    )
    project.ok("run", "--name", "slow")
    project.ok("run", "--name", "fast", "-S", "train.rate=3")
    out = project.ok("plots", "slow", "fast", "--out", "pics")
    pics = project.root / "pics"
    pngs = sorted(p.name for p in pics.glob("*.png"))
    assert pngs == ["00-loss.png", "01-curve-csv.png"]
    assert all((pics / p).stat().st_size > 5000 for p in pngs)
    page = (pics / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<h2>loss</h2>" in page
    assert "wrote pics/index.html" in out


def test_nothing_to_plot_is_said(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n")
    project.ok("run")
    result = project.run("plots")
    assert result.code == 1 and "Nothing to plot" in result.out
