"""Plots of several runs overlaid: step-wise metric curves and the pipeline's plots files,
written as one PNG per figure and a self-contained HTML page that embeds them all.

Plots files follow DVC's conventions: columns named by ``x``/``y`` per file, several files in
one plot, the ``confusion`` template (a matrix of x against y counts), and image files shown as
they are, one per run.

The data is gathered by the caller; this module only draws (matplotlib, headless).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".gif": "image/gif", ".svg": "image/svg+xml"}  # fmt: skip
CONFUSION = ("confusion", "confusion_normalized")


class Series(NamedTuple):
    label: str  # the run (and the file and column when a plot has several)
    xs: list[Any]  # numbers; for a confusion matrix, the actual classes
    ys: list[Any]  # numbers; for a confusion matrix, the predicted classes


class Figure(NamedTuple):
    title: str
    x: str
    y: str
    series: list[Series]
    kind: str = "line"  # or "confusion"


class Image(NamedTuple):
    title: str  # the plot
    label: str  # the run
    data: bytes
    suffix: str


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def records(data: bytes, name: str) -> list[dict[str, Any]]:
    """The rows of a CSV, TSV or JSON (a list of objects, or one list under a key, as dvclive
    writes ``{"roc": [...]}``) plots file; anything else reads as no rows."""
    text = data.decode(errors="replace")
    if name.endswith(".json"):
        try:
            rows = json.loads(text)
        except (ValueError, RecursionError):
            return []
        if isinstance(rows, Mapping):
            rows = next((v for v in rows.values() if isinstance(v, list)), [])
        return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    delimiter = "\t" if name.endswith(".tsv") else ","
    try:
        return [dict(r) for r in csv.DictReader(io.StringIO(text), delimiter=delimiter)]
    except csv.Error:
        return []


class PlotSpec(Protocol):
    """A declared plot (the pipeline's ``Plot``; this layer may not import it)."""

    @property
    def id(self) -> str: ...
    @property
    def files(self) -> tuple[str, ...]: ...
    @property
    def x(self) -> dict[str, str]: ...
    @property
    def y(self) -> dict[str, list[str]]: ...
    @property
    def template(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def x_label(self) -> str: ...
    @property
    def y_label(self) -> str: ...


def spec_figures(
    specs: Iterable[PlotSpec], readers: Mapping[str, Callable[[str], bytes | None]]
) -> tuple[list[Figure], list[Image]]:
    """Every declared plot across runs (``readers``: run label -> the bytes of one of its plots
    files, None where it has none): a figure per plot that has rows, an image per run and image
    file. ``conveyor plots`` and the pull-request report draw through this one reading."""
    figures: list[Figure] = []
    images: list[Image] = []
    for spec in specs:
        tables: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for label, read in readers.items():
            for file in spec.files:
                data = read(file)
                if not data:
                    continue
                if is_image(file):
                    images.append(Image(spec.id, label, data, Path(file).suffix.lower()))
                else:
                    tables.setdefault(label, {})[file] = records(data, file)
        if tables:
            figures.append(
                spec_figure(
                    spec.title or spec.id,
                    spec.template,
                    spec.x,
                    spec.y,
                    tables,
                    (spec.x_label, spec.y_label),
                )
            )
    return figures, images


def spec_figure(
    title: str,
    template: str,
    x: Mapping[str, str],
    y: Mapping[str, list[str]],
    tables: Mapping[str, Mapping[str, list[dict[str, Any]]]],
    labels: tuple[str, str] = ("", ""),
) -> Figure:
    """One plot across runs (``tables``: run -> file -> rows): a line per run, file and y
    column; an empty x is the first column, no y columns the second."""
    confusion = template in CONFUSION
    several = len(y) > 1 or any(len(c) > 1 for c in y.values())
    series = []
    x_name = y_name = ""
    for run, files in tables.items():
        for file, rows in files.items():
            if not rows:
                continue
            columns = list(rows[0])
            xcol = x.get(file) or (columns[0] if len(columns) > 1 else "")
            ycols = y.get(file) or [c for c in columns if c != xcol][:1]
            for ycol in ycols:
                label = f"{run} {file}:{ycol}" if several else run
                xs, ys = _pairs(rows, xcol, ycol, numeric=not confusion)
                if xs:
                    series.append(Series(label, xs, ys))
                    x_name, y_name = xcol or "step", ycol
    kind = "confusion" if confusion else "line"
    return Figure(title, labels[0] or x_name, labels[1] or y_name, series, kind)


def _pairs(
    rows: list[dict[str, Any]], xcol: str, ycol: str, *, numeric: bool
) -> tuple[list[Any], list[Any]]:
    xs: list[Any] = []
    ys: list[Any] = []
    for i, row in enumerate(rows):
        xv, yv = (row.get(xcol) if xcol else i), row.get(ycol)
        if numeric:
            try:
                xv, yv = float(xv), float(yv)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue  # a row that is not all numbers: skipped
        elif xv is None or yv is None:
            continue
        xs.append(xv)
        ys.append(yv)
    return xs, ys


def table_from(data: bytes, name: str) -> tuple[list[str], list[list[float]]]:
    """Columns and numeric rows of a CSV, TSV or JSON (a list of objects) plots file; a file
    that holds no rows (bad JSON, a list of numbers) reads as none."""
    rows = records(data, name)
    columns = list(rows[0]) if rows else []
    numeric = []
    for row in rows:
        try:
            numeric.append([float(row.get(c)) for c in columns])  # type: ignore[arg-type]
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


def render(
    figures: Sequence[Figure], out: Path, title: str, images: Sequence[Image] = ()
) -> list[Path]:
    """A PNG per figure, each image file as it is, and ``index.html`` embedding them all;
    returns the files written (the page last)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, fig_data in enumerate(figures):
        if fig_data.kind == "confusion":
            fig = _confusion(plt, fig_data)
        else:
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
    shown: list[Path] = []
    for j, image in enumerate(images, start=len(figures)):
        path = out / f"{j:02d}-{_slug(image.title)}-{_slug(image.label)}{image.suffix}"
        path.write_bytes(image.data)
        shown.append(path)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for fig_data, png in zip(figures, written, strict=True):
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(fig_data.title)}</h2>")
        parts.append(
            f"<img alt='{html.escape(fig_data.title)}' src='data:image/png;base64,{data}'>"
        )
    for image in images:
        data = base64.b64encode(image.data).decode()
        mime = IMAGE_SUFFIXES.get(image.suffix, "image/png")
        parts.append(f"<h2>{html.escape(image.title)} ({html.escape(image.label)})</h2>")
        parts.append(f"<img alt='{html.escape(image.title)}' src='data:{mime};base64,{data}'>")
    written.extend(shown)
    page = out / "index.html"
    page.write_text("\n".join(parts) + "\n")
    written.append(page)
    return written


def _confusion(plt: Any, fig_data: Figure) -> Any:
    """One matrix per series (run and file): counts of each (actual, predicted) pair."""
    count = max(len(fig_data.series), 1)
    fig, axes = plt.subplots(1, count, figsize=(4 * count, 4), dpi=100, squeeze=False)
    for ax, s in zip(axes[0], fig_data.series, strict=False):
        classes = sorted({str(v) for v in (*s.xs, *s.ys)})
        index = {c: i for i, c in enumerate(classes)}
        matrix = [[0] * len(classes) for _ in classes]
        for actual, predicted in zip(s.xs, s.ys, strict=True):
            matrix[index[str(actual)]][index[str(predicted)]] += 1
        ax.imshow(matrix, cmap="Blues")
        top = max(max(row) for row in matrix) if matrix else 0
        for r, row in enumerate(matrix):
            for c, n in enumerate(row):
                colour = "white" if n > top / 2 else "black"  # readable on dark cells
                ax.text(c, r, str(n), ha="center", va="center", color=colour)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel(fig_data.y or "predicted")
        ax.set_ylabel(fig_data.x or "actual")
        ax.set_title(s.label, fontsize="small")
    fig.suptitle(fig_data.title)
    return fig


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
