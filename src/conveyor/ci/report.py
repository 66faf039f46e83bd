"""The pull-request report: what changed, metrics against the base, gate verdicts, and plots,
as one Markdown file with PNGs next to it and a self-contained HTML page.

:mod:`conveyor.ci.sides` gathers both sides (:class:`Side`); this module only compares, draws and
writes; :mod:`conveyor.ci.pull_request` puts the two together.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.foundation import atomic


@dataclass
class Side:
    label: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    deps: dict[str, str] = field(default_factory=dict)  # path -> hash, from a lock or lineage
    commit: str | None = None
    read: Callable[[str], bytes | None] = lambda _path: None  # an out's bytes on this side


@dataclass
class Report:
    markdown: str
    files: list[Path]


def changed_deps(base: Side, cand: Side) -> list[tuple[str, str, str]]:
    """(path, base hash, candidate hash) of every dep that differs: data and code alike."""
    rows = []
    for path in sorted(set(base.deps) | set(cand.deps)):
        a, b = base.deps.get(path, ""), cand.deps.get(path, "")
        if a != b:
            rows.append((path, a[:12] or "(none)", b[:12] or "(none)"))
    return rows


def confusion(table: Any) -> tuple[list[str], Any] | None:
    """Labels and counts (rows: true label, columns: predicted) of a predictions table."""
    import numpy as np

    if table is None or "label" not in table.columns or "prediction" not in table.columns:
        return None
    labels = sorted(set(table["label"].tolist()) | set(table["prediction"].tolist()))
    index = {v: i for i, v in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(table["label"].tolist(), table["prediction"].tolist(), strict=True):
        counts[index[t], index[p]] += 1
    return [str(v) for v in labels], counts


def draw_confusions(
    tables: dict[str, tuple[list[str], Any]], out: Path, name: str = "confusion.png"
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.4), dpi=100)
    axes = [axes] if len(tables) == 1 else list(axes)
    for ax, (title, (labels, counts)) in zip(axes, tables.items(), strict=True):
        ax.imshow(counts, cmap="Blues")
        ax.set_title(title, fontsize="small")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        top = counts.max() or 1
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if counts[i, j] > top / 2 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(
    base: Side,
    cand: Side,
    *,
    rows: Sequence[Sequence[str]],
    deps: Sequence[tuple[str, str, str]],
    code: str,
    gates_md: str | None,
    images: Sequence[tuple[str, str]],
) -> str:
    """``rows``: (name, base, candidate, change, relative) of params and metrics that differ."""
    from conveyor.ci.comment import MARKER

    lines = [
        MARKER,
        f"## conveyor report: {cand.label} vs {base.label}",
        "",
    ]
    if gates_md:
        lines += [gates_md.rstrip(), ""]
    lines += ["### Params and metrics", ""]
    if rows:
        lines += [
            f"| | {base.label} | {cand.label} | change | relative |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    else:
        lines.append("No param or metric differs.")
    lines += ["", "### Data and code", ""]
    if deps:
        lines += ["| dependency | base | candidate |", "|---|---|---|"]
        lines += [f"| {_md(p)} | `{a}` | `{b}` |" for p, a, b in deps]
    else:
        lines.append("No stage dependency differs.")
    if code.strip():
        lines += ["", "```", code.rstrip(), "```"]
    if images:
        lines += ["", "### Plots", ""]
        lines += [f"![{_md(title)}]({file})" for title, file in images]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_html(text: str, folder: Path, title: str) -> str:
    """The report's Markdown (the subset :func:`markdown` and the gates report write) as one
    HTML page, images embedded."""
    out = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
        "img{max-width:100%}</style>",
    ]
    table: list[list[str]] = []
    code: list[str] | None = None

    def flush() -> None:
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
            out.append("</table>")
            table.clear()

    for line in text.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
            continue
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not all(set(c) <= set("-:") for c in cells):
                table.append([_inline(c) for c in cells])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            found = re.match(r"!\[(.*)\]\((.*)\)", line)
            if found and (folder / found.group(2)).exists():
                data = base64.b64encode((folder / found.group(2)).read_bytes()).decode()
                alt = html.escape(found.group(1))
                out.append(f"<p><img alt='{alt}' src='data:image/png;base64,{data}'></p>")
        elif line.lstrip().startswith("- "):
            depth = (len(line) - len(line.lstrip())) // 2
            out.append(
                f"<div style='margin-left:{depth + 1}em'>• {_inline(line.strip()[2:])}</div>"
            )
        elif line.startswith("<"):
            out.append(line)  # <details>, <summary>, the marker comment
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def write(folder: Path, name: str, text: str, title: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / f"{name}.md"
    page = folder / f"{name}.html"
    atomic.write_text(md, text)
    atomic.write_text(page, to_html(text, folder, title))
    return [md, page]
