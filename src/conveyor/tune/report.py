"""What a study found: trials, the best, param importances, and the optimisation history as a
PNG and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.tune.spec import TuneSpec

if TYPE_CHECKING:
    import optuna


def summarise(study: optuna.Study) -> dict[str, Any]:
    import optuna

    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": dict(t.params),
            "run": t.user_attrs.get("run_name"),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    complete = [t for t in trials if t["state"] == "complete"]
    best = None
    if complete:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": dict(b.params)}
    importances: dict[str, float] = {}
    if len(complete) >= 2:
        try:
            importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError, ZeroDivisionError):
            importances = {}  # too little spread to tell
    return {"trials": trials, "best": best, "importances": importances}


def write_plots(
    study: optuna.Study, spec: TuneSpec, out: Path, summary: dict[str, Any]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    done = [t for t in summary["trials"] if t["state"] == "complete"]
    xs = [t["number"] for t in done]
    ys = [t["value"] for t in done]
    running: list[float] = []
    for y in ys:
        pick = max if spec.direction == "maximize" else min
        running.append(y if not running else pick(running[-1], y))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.scatter(xs, ys, label="trial", color="#4477aa")
    ax.step(xs, running, where="post", label="best so far", color="#cc6677")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"study {spec.study}: optimisation history")
    ax.legend()
    fig.tight_layout()
    png = out / "history.png"
    fig.savefig(png)
    plt.close(fig)
    page = out / "history.html"
    image = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>{t['number']}</td><td>{t['state']}</td><td>{t['value']}</td>"
        f"<td>{html.escape(str(t['params']))}</td></tr>"
        for t in summary["trials"]
    )
    page.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>study {html.escape(spec.study)}</title>"
        f"<h1>study {html.escape(spec.study)}</h1>"
        f"<p>{spec.direction} {html.escape(spec.metric)}</p>"
        f"<img alt='optimisation history' src='data:image/png;base64,{image}'>"
        "<table border=1 cellpadding=4><tr><th>trial</th><th>state</th><th>value</th>"
        f"<th>params</th></tr>{rows}</table>\n"
    )
    return [png, page]
