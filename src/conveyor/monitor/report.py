"""The monitoring report: one self-contained HTML page of what an environment's monitor knows,
for a person to read (``conveyor monitor report``), like a drift report of Evidently.

    data = gather(watch, "latest")        # the one function that reads: a Watch's kept state
    page = render(data)                   # pure: plain values in, one HTML string out
    png = grid_png(data.features)         # every feature's figure in one image

The page holds the environment, model, versions and reference; the chosen window's checks and
the alerts; one figure per feature (reference against window, drifted features first); quality
and drift share over the watched version's windows; and the predictions against the reference's
label. Figures are drawn from profiles (counts per bin of the reference's bins), never from raw
rows, so a report of a month of traffic costs what a report of an hour does. Everything is
inline (PNGs as base64, CSS in the head, no script): the file can be mailed, archived or
attached to a CI run and opens offline. Every text from outside (feature names, categories,
versions) is escaped.

matplotlib is imported inside the drawing functions: a monitor that never reports never pays
for it. Drawing goes through :class:`matplotlib.figure.Figure` (no pyplot, no global state).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.monitor.profiles import (
    OTHER,
    UNSEEN,
    CategoricalBins,
    CategoricalSummary,
    NumericBins,
    NumericSummary,
)
from conveyor.monitor.reference import MonitorError
from conveyor.monitor.rules import AlertState
from conveyor.monitor.windows import PREDICTION, Check, Quality, evaluate, merged, quality_check

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from conveyor.monitor.watch import Watch
    from conveyor.monitor.windows import Window

__all__ = [
    "Data",
    "Distribution",
    "NoSuchWindow",
    "Point",
    "bars_png",
    "caption",
    "densities",
    "distribution_png",
    "drift_png",
    "drifted_first",
    "features_html",
    "gather",
    "grid_png",
    "header_html",
    "histogram_png",
    "history_html",
    "predictions_html",
    "quality_png",
    "render",
    "shares",
    "summary_html",
]

MOST_BINS = 30  # a numeric feature's reference bins shown, at most (neighbours pooled)
MOST_CATEGORIES = 20  # categories shown one by one; the rest pooled as OTHER
LAST_EVENTS = 10
COLOURS = {"ok": "#1a7f37", "alert": "#cf222e", "inconclusive": "#9a6700", "info": "#57606a"}
REFERENCE, WINDOW = "#8c959f", "#cf222e"  # the reference in grey, the window in red

Summary = NumericSummary | CategoricalSummary


class NoSuchWindow(MonitorError):
    """The window asked for is not one the monitor has closed."""

    exit_code = 2


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Distribution:
    """One feature (or the predictions) of the reference and of the window, on the reference's
    bins, with its drift check (None: not checked, e.g. too few rows)."""

    name: str
    bins: NumericBins | CategoricalBins
    reference: Summary
    window: Summary | None
    check: Check | None = None

    @property
    def drifted(self) -> bool:
        return self.check is not None and self.check.verdict == "alert"


@dataclass(frozen=True)
class Point:
    """One closed window of the watched version, for the charts over time."""

    key: str
    number: int
    first: float
    last: float
    rows: int
    labels: int = 0
    accuracy: float | None = None  # from labels: only with at least min_labels of them
    estimate: float | None = None  # the label-free estimate (mean top class probability)
    drift_share: float | None = None


@dataclass(frozen=True)
class Data:
    """What a report shows, as plain values (see :func:`gather`)."""

    env: str
    model: str
    versions: Mapping[str, str]  # version -> role ("" without one), every version seen
    watched: str | None
    reference: str  # its file
    reference_rows: int
    window: str  # which window: its key, or a description of the windows merged
    first: float | None  # the period the window covers
    last: float | None
    rows: int
    made: float
    checks: Sequence[Check] = ()
    alerts: Mapping[str, AlertState] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()
    features: Sequence[Distribution] = ()  # drifted first
    history: Sequence[Point] = ()
    predictions: Distribution | None = None
    quality_min: float | None = None  # the quality threshold, as an accuracy
    min_labels: int = 0
    drift_share: float | None = None  # the share of drifted features that alerts


# --------------------------------------------------------------------------------- reading


def gather(watch: Watch, window: str = "latest", *, now: float | None = None) -> Data:
    """The report's data from a monitor's kept state (its closed windows, labels, alerts and
    events), without a tick: nothing is read from the prediction log, nothing is written.

    ``window``: ``latest`` (the watched version's last closed window), ``all`` (all its closed
    windows merged, their checks computed again on the merge) or a window's key (``3:12``).
    :class:`NoSuchWindow` names the keys there are when ``window`` is none of them."""
    spec = watch.spec
    versions = _versions(watch)
    watched = _watched(watch, versions)
    if window not in ("latest", "all"):
        watched = window.rpartition(":")[0] or watched
    closed = watch.windows_of(watched) if watched is not None else []
    tallies = watch.quality_by_window(watched) if watched and spec.quality else {}
    chosen, checks, label = _choose(watch, window, watched, closed, tallies)
    ref = watch.reference_of(chosen) if chosen is not None else watch.reference
    features = [
        Distribution(
            name,
            ref.bins.features[name],
            ref.profile.features[name],
            chosen.features.features.get(name) if chosen and chosen.features else None,
            _drift_check(checks, name),
        )
        for name in ref.features
    ]
    predictions = None
    if ref.label_bins is not None and ref.label_profile is not None:
        said = chosen.predictions if chosen is not None else None
        predictions = Distribution(
            f"prediction vs {spec.label}",
            ref.label_bins.features[PREDICTION],
            ref.label_profile.features[PREDICTION],
            said.features.get(PREDICTION) if said is not None else None,
            next((c for c in checks if c.name == "prediction_drift"), None),
        )
    q = spec.quality
    limit = None if q is None or q.min is None else (q.min if q.metric == "accuracy" else 1 - q.min)
    return Data(
        env=spec.env,
        model=watch.model,
        versions=versions,
        watched=watched,
        reference=spec.reference,
        reference_rows=ref.profile.rows,
        window=label,
        first=chosen.first if chosen else None,
        last=chosen.last if chosen else None,
        rows=chosen.rows if chosen else 0,
        made=time.time() if now is None else now,
        checks=checks,
        alerts=dict(watch.alerts),
        events=watch.events()[-LAST_EVENTS:],
        features=drifted_first(features),
        history=[_point(w, c, tallies, q.min_labels if q else 0) for w, c in closed],
        predictions=predictions,
        quality_min=limit,
        min_labels=q.min_labels if q else 0,
        drift_share=spec.drift.share,
    )


def _choose(
    watch: Watch,
    window: str,
    version: str | None,
    closed: list[tuple[Window, list[Check]]],
    tallies: Mapping[str, Quality],
) -> tuple[Window | None, list[Check], str]:
    """The window asked for, its checks (with its quality from labels) and how to name it."""
    spec = watch.spec
    if window == "all" and closed:
        # the windows on the latest one's reference: profiles on other bins do not merge
        closed = [(w, c) for w, c in closed if w.reference == closed[-1][0].reference]
        ref = watch.reference_of(closed[-1][0])
        chosen = merged(w for w, _ in closed)
        assert chosen is not None
        checks = evaluate(
            spec, ref.bins, ref.profile, chosen,
            label_bins=ref.label_bins, label_reference=ref.label_profile,
        )  # fmt: skip
        label = f"all {len(closed)} closed windows of version {version} merged"
        labelled = sum(q.labelled for q in tallies.values())
        total = Quality(labelled, sum(q.correct for q in tallies.values()))
        return chosen, checks + ([quality_check(spec, label, total)] if spec.quality else []), label
    found = [(w, c) for w, c in closed if window in ("latest", w.key)]
    if found:
        chosen, checks = found[-1]
        tally = tallies.get(chosen.key, Quality(0, 0))
        quality = [quality_check(spec, chosen.key, tally)] if spec.quality else []
        return chosen, [*checks, *quality], chosen.key
    if window in ("latest", "all"):
        return None, [], "no window closed yet"
    if closed:
        keys = ", ".join(w.key for w, _ in closed[-5:])
        raise NoSuchWindow(
            f"monitor {spec.env}: no closed window {window}",
            hint=f"latest, all, or a window's key: the last ones are {keys}",
        )
    seen = ", ".join(_versions(watch)) or "none yet"
    raise NoSuchWindow(
        f"monitor {spec.env}: no closed window {window}: version {version} has none",
        hint=f"latest, all, or a window's key (VERSION:NUMBER); versions seen: {seen}",
    )


def drifted_first(features: Sequence[Distribution]) -> list[Distribution]:
    """Drifted features first, then by drift score, highest first (stable: ties keep order)."""

    def rank(d: Distribution) -> tuple[int, float]:
        score = d.check.value if d.check is not None and d.check.value is not None else 0.0
        return (0 if d.drifted else 1, -score)

    return sorted(features, key=rank)


def _versions(watch: Watch) -> dict[str, str]:
    roles = {str(v): r for v, r in watch.roles().items()}
    seen = [p.name for p in sorted((watch.folder / "windows").glob("*")) if p.is_dir()]
    return {v: roles.get(v, "") for v in dict.fromkeys([*roles, *seen, *watch.windows.open])}


def _watched(watch: Watch, versions: Mapping[str, str]) -> str | None:
    """The version the alerts watch: the stable one, else the one with the most windows."""
    stable = [v for v, role in versions.items() if role == "stable"]
    if stable:
        return stable[0]
    folder = watch.folder / "windows"
    return max(versions, key=lambda v: len(list((folder / v).glob("*.json"))), default=None)


def _drift_check(checks: Sequence[Check], feature: str) -> Check | None:
    # the last of that name: a feature called "share" comes after the dataset's drift.share
    found = [c for c in checks if c.name == f"drift.{feature}"]
    return found[-1] if found else None


def _point(
    window: Window, checks: list[Check], tallies: Mapping[str, Quality], least: int
) -> Point:
    tally = tallies.get(window.key, Quality(0, 0))
    share = next((c.value for c in checks if c.name == "drift.share"), None)
    return Point(
        window.key,
        window.number,
        window.first,
        window.last,
        window.rows,
        tally.labelled,
        tally.accuracy if tally.labelled >= max(least, 1) else None,
        window.confidence / window.scored if window.scored else None,
        share,
    )


# ---------------------------------------------------------------------------------- shapes


def densities(
    bins: NumericBins, reference: NumericSummary, window: NumericSummary | None,
    most: int = MOST_BINS,
) -> tuple[list[float], list[float], list[float]]:  # fmt: skip
    """Display edges and the densities of the reference and of the window on them: the
    reference's bins, neighbours pooled to at most ``most``, plus a bin for each tail where a
    value fell outside the reference's range (from the lowest or up to the highest value)."""
    edges = list(bins.edges)
    if len(edges) < 2:  # a constant reference: one bin around it
        edges = [edges[0] - 0.5, edges[0] + 0.5]
    inner = len(edges) - 1

    def inside(s: NumericSummary) -> list[int]:
        c = list(s.counts[1 : 2 + inner]) if len(bins.edges) > 1 else [s.counts[1]]
        return [c[0] + c[1], *c[2:]] if len(c) > 1 else c  # exactly the lowest edge: first bin

    cut = _equal_mass(inside(reference), most)

    def counts(s: NumericSummary) -> list[int]:
        c = inside(s)
        pooled = [sum(c[a:b]) for a, b in itertools.pairwise(cut)]
        return [s.counts[0], *pooled, s.counts[-1]]

    shown = [edges[i] for i in cut]
    present = [s for s in (reference, window) if s is not None]
    lows = [s.min for s in present if s.min is not None and s.min < bins.edges[0]]
    highs = [s.max for s in present if s.max is not None and s.max > bins.edges[-1]]
    margin = 0.02 * (shown[-1] - shown[0])  # a tail bin is never empty of width
    left = [min(*lows, shown[0] - margin)] if lows else []
    right = [max(*highs, shown[-1] + margin)] if highs else []
    out = left + shown + right
    widths = [b - a for a, b in itertools.pairwise(out)]

    def density(s: NumericSummary | None) -> list[float]:
        if s is None or not s.count:
            return [0.0] * len(widths)
        c = counts(s)
        c = c[(0 if left else 1) : len(c) - (0 if right else 1)]
        return [n / s.count / w for n, w in zip(c, widths, strict=True)]

    return out, density(reference), density(window)


def _equal_mass(counts: Sequence[int], most: int) -> list[int]:
    """Indices of the edges that pool neighbouring bins into at most ``most`` bins of about
    equal reference mass (the reference's bins are quantiles, but its outer ones are split
    finer: shown alone, their few rows would make spikes)."""
    total = sum(counts)
    if not total or len(counts) <= most:
        return list(range(len(counts) + 1))
    cut, seen, goal = [0], 0, 1
    for i, n in enumerate(counts[:-1]):
        seen += n
        if seen * most >= goal * total:
            cut.append(i + 1)
            goal = math.floor(seen * most / total) + 1
    return [*cut, len(counts)]


def shares(
    bins: CategoricalBins, reference: CategoricalSummary, window: CategoricalSummary | None,
    most: int = MOST_CATEGORIES,
) -> tuple[list[str], list[float], list[float]]:  # fmt: skip
    """Categories (commonest in the reference first, beyond ``most`` pooled with OTHER) and
    the share of the reference's and the window's values in each; OTHER and UNSEEN only when
    a value fell there."""
    names = [str(c) for c in bins.categories]
    keep = min(most, len(names))

    def fold(s: CategoricalSummary | None) -> list[float]:
        if s is None:
            return [0.0] * (keep + 2)
        c = list(s.counts)
        total = sum(c) or 1
        kept = c[:keep]
        return [n / total for n in [*kept, sum(c[keep:-1]), c[-1]]]

    labels = [*names[:keep], OTHER, UNSEEN]
    ref, win = fold(reference), fold(window)
    used = [i for i in range(len(labels)) if i < keep or ref[i] or win[i]]
    return [labels[i] for i in used], [ref[i] for i in used], [win[i] for i in used]


# --------------------------------------------------------------------------------- drawing


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def histogram_png(
    title: str, edges: Sequence[float], reference: Sequence[float], window: Sequence[float]
) -> bytes:
    """The reference's and the window's densities on shared bin edges, overlaid."""
    fig = _figure(5.0, 3.2)
    _histogram(fig.add_subplot(), title, edges, reference, window)
    return _png(fig)


def _histogram(
    ax: Axes, title: str, edges: Sequence[float], ref: Sequence[float], win: Sequence[float]
) -> None:
    ax.stairs(ref, edges, fill=True, color=REFERENCE, alpha=0.55, label="reference")
    ax.stairs(win, edges, color=WINDOW, linewidth=1.5, label="window")
    ax.set_title(title, fontsize="medium", parse_math=False)  # "$" in a name is a "$"
    ax.set_ylabel("density")
    ax.legend(fontsize="small")


def bars_png(
    title: str, labels: Sequence[str], reference: Sequence[float], window: Sequence[float]
) -> bytes:
    """Side-by-side bars of the reference's and the window's share per category."""
    fig = _figure(max(5.0, 0.45 * len(labels) + 2), 3.2)
    _bars(fig.add_subplot(), title, labels, reference, window)
    return _png(fig)


def _bars(
    ax: Axes, title: str, labels: Sequence[str], ref: Sequence[float], win: Sequence[float]
) -> None:
    at = list(range(len(labels)))
    ax.bar([x - 0.2 for x in at], ref, width=0.4, color=REFERENCE, label="reference")
    ax.bar([x + 0.2 for x in at], win, width=0.4, color=WINDOW, label="window")
    tilted = len(labels) > 6
    ax.set_xticks(
        at,
        labels,
        parse_math=False,
        rotation=30 if tilted else 0,
        ha="right" if tilted else "center",
    )
    ax.set_title(title, fontsize="medium", parse_math=False)  # "$" in a name is a "$"
    ax.set_ylabel("share")
    ax.legend(fontsize="small")


def _draw(ax: Axes, d: Distribution) -> None:
    title = caption(d)
    if isinstance(d.bins, NumericBins) and isinstance(d.reference, NumericSummary):
        window = d.window if isinstance(d.window, NumericSummary) else None
        _histogram(ax, title, *densities(d.bins, d.reference, window))
    elif isinstance(d.bins, CategoricalBins) and isinstance(d.reference, CategoricalSummary):
        window_ = d.window if isinstance(d.window, CategoricalSummary) else None
        _bars(ax, title, *shares(d.bins, d.reference, window_))


def distribution_png(d: Distribution) -> bytes:
    fig = _figure(5.0, 3.2)
    _draw(fig.add_subplot(), d)
    return _png(fig)


def grid_png(features: Sequence[Distribution], columns: int = 3) -> bytes:
    """Every feature's figure in one image, ``columns`` a row (the report's order)."""
    columns = max(1, min(columns, len(features)))
    rows = max(1, math.ceil(len(features) / columns))
    fig = _figure(5.0 * columns, 3.2 * rows)
    for i, d in enumerate(features):
        _draw(fig.add_subplot(rows, columns, i + 1), d)
    return _png(fig)


def caption(d: Distribution) -> str:
    """A figure's title: the feature, its drift score and verdict."""
    c = d.check
    if c is None:
        return f"{d.name}: not checked"
    score = "-" if c.value is None else f"{c.value:.3g}"
    word = {"alert": "drifted", "ok": "no drift"}.get(c.verdict, c.verdict)
    return f"{d.name}: {score} ({c.threshold}) {word}"


def quality_png(history: Sequence[Point], minimum: float | None, min_labels: int) -> bytes:
    """Accuracy from labels (windows with enough of them, their count beside each point) and
    the label-free estimate, per window, with the quality threshold dashed."""
    fig = _figure(9.0, 3.4)
    ax = fig.add_subplot()
    labelled = [(i, p.accuracy, p.labels) for i, p in enumerate(history) if p.accuracy is not None]
    ax.plot(
        [i for i, _, _ in labelled], [a for _, a, _ in labelled], "o-", color="#0969da",
        label=f"accuracy from labels (windows with >= {min_labels})",
    )  # fmt: skip
    if len(labelled) <= 30:
        for i, a, n in labelled:
            ax.annotate(f"n={n}", (i, a), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize="x-small")  # fmt: skip
    estimated = [(i, p.estimate) for i, p in enumerate(history) if p.estimate is not None]
    ax.plot([i for i, _ in estimated], [e for _, e in estimated], "s--",
            color="#8250df", label="estimate without labels")  # fmt: skip
    if minimum is not None:
        ax.axhline(minimum, color=COLOURS["alert"], linestyle="--", linewidth=1,
                   label=f"quality.min {minimum:g}")  # fmt: skip
    _windows_axis(ax, history)
    ax.margins(y=0.2)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize="small", loc="best")
    return _png(fig)


def drift_png(history: Sequence[Point], share: float | None) -> bytes:
    """The share of drifted features per window, with the share that alerts dashed."""
    fig = _figure(9.0, 3.0)
    ax = fig.add_subplot()
    points = [(i, p.drift_share) for i, p in enumerate(history) if p.drift_share is not None]
    ax.plot([i for i, _ in points], [s for _, s in points], "o-", color=WINDOW,
            label="drifted features' share")  # fmt: skip
    if share is not None:
        ax.axhline(share, color=COLOURS["alert"], linestyle="--", linewidth=1,
                   label=f"drift.share {share:g}")  # fmt: skip
    ax.set_ylim(-0.05, 1.05)
    _windows_axis(ax, history)
    ax.set_ylabel("share")
    ax.legend(fontsize="small", loc="upper left")
    return _png(fig)


def _windows_axis(ax: Axes, history: Sequence[Point]) -> None:
    step = max(1, math.ceil(len(history) / 12))
    ticks = list(range(0, len(history), step))
    # a window's number means little (time windows count from the epoch): its end, in UTC;
    # windows of rows may end within a minute of each other: then their numbers
    shown = [time.strftime("%m-%d\n%H:%M", time.gmtime(history[i].last)) for i in ticks]
    by_time = len(set(shown)) == len(shown)
    if not by_time:
        shown = [str(history[i].number) for i in ticks]
    ax.set_xticks(ticks, shown, fontsize="small")
    ax.set_xlim(-0.5, max(len(history) - 0.5, 0.5))
    ax.set_xlabel("window, by its last row (UTC)" if by_time else "window")
    ax.grid(alpha=0.3)


# ------------------------------------------------------------------------------------ html


def render(data: Data, *, images: bool = True) -> str:
    """The whole page. ``images=False`` leaves the figures out (fast: for tests of the text)."""
    sections = [
        header_html(data),
        summary_html(data),
        features_html(data, images=images),
        history_html(data, images=images),
        predictions_html(data, images=images),
    ]
    title = f"monitoring report: {data.env}"
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<footer>made by conveyor monitor report, {_when(data.made)}</footer>\n"
        "</body>\n</html>\n"
    )


def header_html(data: Data) -> str:
    versions = ", ".join(
        f"{_e(v)} ({_e(role)})" if role else _e(v) for v, role in data.versions.items()
    )
    period = f"{_when(data.first)} to {_when(data.last)}" if data.first is not None else "none yet"
    rows = [
        ("environment", _e(data.env)),
        ("model", _e(data.model)),
        ("versions seen", versions or "none yet"),
        ("watched", _e(data.watched or "none")),
        ("reference", f"{_e(data.reference)} ({data.reference_rows} rows)"),
        ("window", f"{_e(data.window)} ({data.rows} rows)"),
        ("period", period),
        ("made", _when(data.made)),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f"<header>\n<h1>Monitoring report: {_e(data.env)}</h1>\n"
        f"<table class='meta'>{body}</table>\n</header>"
    )


def summary_html(data: Data) -> str:
    out = ["<section id='summary'>", "<h2>Checks</h2>"]
    if data.checks:
        rows = "".join(
            f"<tr><td>{_e(c.name)}</td><td class='num'>{_number(c.value)}</td>"
            f"<td>{_e(c.threshold)}</td>{_verdict(c.verdict)}<td>{_e(c.detail)}</td></tr>"
            for c in data.checks
        )
        out.append(
            "<table><tr><th>check</th><th>value</th><th>threshold</th><th>verdict</th>"
            f"<th>detail</th></tr>{rows}</table>"
        )
    else:
        out.append("<p>No window closed yet: nothing checked.</p>")
    out.append("<h2>Alerts</h2>")
    if data.alerts:
        rows = "".join(
            f"<tr><td>{_e(name)}</td>{_status(s.status)}"
            f"<td>{_when(s.since) if s.since and s.status != 'inactive' else '-'}</td>"
            f"<td class='num'>{_number(s.value)}</td></tr>"
            for name, s in data.alerts.items()
        )
        out.append(
            "<table><tr><th>alert</th><th>state</th><th>since</th><th>last value</th></tr>"
            f"{rows}</table>"
        )
    else:
        out.append("<p>No alert declared.</p>")
    out.append("<h2>Last alert events</h2>")
    if data.events:
        rows = "".join(
            f"<tr><td>{_when(ev.get('ts'))}</td><td>{_e(str(ev.get('alert', '')))}</td>"
            f"{_status(str(ev.get('to', '')))}<td class='num'>{_number(ev.get('value'))}</td>"
            f"<td>{_e(str(ev.get('window') or ''))}</td>"
            f"<td>{_e(str(ev.get('action') or ''))}</td></tr>"
            for ev in reversed(data.events)
        )
        out.append(
            "<table><tr><th>when</th><th>alert</th><th>to</th><th>value</th><th>window</th>"
            f"<th>action</th></tr>{rows}</table>"
        )
    else:
        out.append("<p>None.</p>")
    out.append("</section>")
    return "\n".join(out)


def features_html(data: Data, *, images: bool = True) -> str:
    out = ["<section id='features'>", "<h2>Features: reference against the window</h2>"]
    drifted = [d.name for d in data.features if d.drifted]
    said = ", ".join(_e(n) for n in drifted) if drifted else "none"
    out.append(f"<p>{len(drifted)} of {len(data.features)} features drifted: {said}.</p>")
    out.append("<div class='grid'>")
    for d in data.features:
        verdict = d.check.verdict if d.check is not None else "info"
        figure = _img(distribution_png(d), d.name) if images else ""
        out.append(
            f"<figure class='{_e(verdict)}'>{figure}"
            f"<figcaption>{_e(caption(d))}</figcaption></figure>"
        )
    out += ["</div>", "</section>"]
    return "\n".join(out)


def history_html(data: Data, *, images: bool = True) -> str:
    out = ["<section id='history'>", f"<h2>Over time: version {_e(data.watched or '-')}</h2>"]
    if not data.history:
        out += ["<p>No window closed yet.</p>", "</section>"]
        return "\n".join(out)
    first, last = data.history[0], data.history[-1]
    out.append(
        f"<p>{len(data.history)} closed windows, {_when(first.first)} to {_when(last.last)}; "
        "accuracy where a window has at least "
        f"{data.min_labels} labels.</p>"
    )
    if images:
        out.append(_img(quality_png(data.history, data.quality_min, data.min_labels), "quality"))
        out.append(_img(drift_png(data.history, data.drift_share), "drift share"))
    out.append("</section>")
    return "\n".join(out)


def predictions_html(data: Data, *, images: bool = True) -> str:
    d = data.predictions
    if d is None:
        return ""
    figure = _img(distribution_png(d), "predictions") if images else ""
    return (
        "<section id='predictions'>\n<h2>Predictions against the reference's label</h2>\n"
        f"<figure>{figure}<figcaption>{_e(caption(d))}</figcaption></figure>\n</section>"
    )


CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;"
    "max-width:1200px;color:#1f2328;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;font-size:.9em}"
    "th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".meta th{width:9em}"
    ".v{color:#fff;font-weight:600;border-radius:3px}"
    + "".join(f".v-{k}{{background:{c}}}" for k, c in COLOURS.items())
    + ".v-firing{background:#cf222e}.v-pending{background:#9a6700}"
    ".v-inactive,.v-resolved{background:#1a7f37}"
    ".grid{display:flex;flex-wrap:wrap;gap:1em}"
    "figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5em}"
    "figure.alert{border:2px solid #cf222e}"
    "figcaption{font-size:.85em;color:#57606a}img{max-width:100%}"
    "footer{margin-top:2em;color:#57606a;font-size:.8em}"
)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _verdict(verdict: str) -> str:
    return f"<td class='v v-{_e(verdict)}'>{_e(verdict)}</td>"


def _status(status: str) -> str:
    return f"<td class='v v-{_e(status)}'>{_e(status)}</td>"


def _number(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return "-"
    return f"{value:.4g}"


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float) or not math.isfinite(ts) or not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
