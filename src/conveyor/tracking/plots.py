"""Plots of several runs overlaid: step-wise metric curves and the pipeline's plots files,
written as one PNG per figure and a self-contained HTML page that embeds them all.

The data is gathered by the caller; this module only draws (matplotlib, headless).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple


class Series(NamedTuple):
    label: str  # the run
    xs: list[float]
    ys: list[float]


class Figure(NamedTuple):
    title: str
    x: str
    y: str
    series: list[Series]


def table_from(data: bytes, name: str) -> tuple[list[str], list[list[float]]]:
    """Columns and numeric rows of a CSV, TSV or JSON (a list of objects) plots file."""
    text = data.decode(errors="replace")
    if name.endswith(".json"):
        rows = json.loads(text)
        if isinstance(rows, Mapping):  # {"roc": [...]} as some tools write it
            rows = next((v for v in rows.values() if isinstance(v, list)), [])
        columns = list(rows[0]) if rows else []
        records = [[r.get(c) for c in columns] for r in rows]
    else:
        reader = csv.reader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ",")
        columns, *records = list(reader) or [[]]
    numeric = []
    for record in records:
        try:
            numeric.append([float(v) for v in record])
        except (TypeError, ValueError):
            continue  # a row that is not all numbers: skipped
    return columns, numeric


def file_figure(path: str, tables: Mapping[str, tuple[list[str], list[list[float]]]]) -> Figure:
    """One plots file across runs: its first column against its second."""
    series = []
    x_name = y_name = ""
    for run, (columns, rows) in tables.items():
        if len(columns) < 2 or not rows:
            continue
        x_name, y_name = columns[0], columns[1]
        series.append(Series(run, [r[0] for r in rows], [r[1] for r in rows]))
    return Figure(path, x_name, y_name, series)


def render(figures: Sequence[Figure], out: Path, title: str) -> list[Path]:
    """A PNG per figure and ``index.html`` embedding them; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, fig_data in enumerate(figures):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        for s in fig_data.series:
            ax.plot(s.xs, s.ys, marker="." if len(s.xs) < 30 else None, label=s.label)
        ax.set_title(fig_data.title)
        ax.set_xlabel(fig_data.x)
        ax.set_ylabel(fig_data.y)
        if fig_data.series:
            ax.legend(fontsize="small")
        fig.tight_layout()
        png = out / f"{i:02d}-{_slug(fig_data.title)}.png"
        fig.savefig(png)
        plt.close(fig)
        written.append(png)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for fig_data, png in zip(figures, written, strict=True):
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(fig_data.title)}</h2>")
        parts.append(
            f"<img alt='{html.escape(fig_data.title)}' src='data:image/png;base64,{data}'>"
        )
    page = out / "index.html"
    page.write_text("\n".join(parts) + "\n")
    written.append(page)
    return written


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60] or "plot"


def metric_figures(
    histories: Mapping[str, Mapping[str, list[tuple[Any, float, float]]]],
) -> list[Figure]:
    """One figure per metric logged at more than one step, with a line per run."""
    keys = sorted(
        {k for per_run in histories.values() for k, pts in per_run.items() if len(pts) > 1}
    )
    figures = []
    for key in keys:
        series = []
        for run, per_run in histories.items():
            points = per_run.get(key, [])
            if len(points) < 2:
                continue
            xs = [float(step if step is not None else i) for i, (step, _, _) in enumerate(points)]
            series.append(Series(run, xs, [value for _, value, _ in points]))
        figures.append(Figure(key, "step", key, series))
    return figures
