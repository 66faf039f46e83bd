"""The monitoring report: made from a monitor fed a real prediction log (tests.monitor.test_watch's
Project), read back as HTML with html.parser, its images decoded as PNGs; the shapes drawn
(densities, shares) checked as numbers; and ``conveyor monitor report`` in a project folder."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conveyor.cli.main import main
from conveyor.monitor import profiles, report
from conveyor.monitor.config import Monitor
from conveyor.monitor.watch import Watch
from conveyor.monitor.windows import Window, evaluate
from tests.monitor.test_watch import WINDOW, Project

pytestmark = pytest.mark.timeout(180)

PNG = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr"}


class Page(HTMLParser):
    """A page's tags checked for nesting as they come; its images, links and captions kept."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.open: list[str] = []
        self.problems: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.captions: list[str] = []
        self.feed(text)
        self.close()

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "figcaption":
            self.captions.append("")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> while {self.open[-1:]} is open")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "figcaption":
            self.captions[-1] += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parsed(text: str) -> Page:
    """The page, checked: well nested, a document with a head and a body, nothing to fetch."""
    page = Page(text)
    assert page.problems == [] and page.open == []
    assert page.doctype.lower() == "doctype html"
    names = [name for name, _ in page.tags]
    assert names[:2] == ["html", "head"] and "body" in names and "title" in names
    assert "script" not in names and "link" not in names
    for _, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http://", "https://", "//")), value
    assert "http://" not in text and "https://" not in text and "url(" not in text
    return page


def pngs(page: Page) -> dict[str, bytes]:
    """Each image's alt -> its bytes, decoded as an image to prove it is one."""
    from matplotlib.image import imread

    out = {}
    for attrs in page.all("img"):
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.partition(",")[2], validate=True)
        assert data.startswith(PNG)
        assert imread(io.BytesIO(data), format="png").ndim == 3
        out[attrs["alt"] or ""] = data
    return out


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A window like the reference (labelled), then one with x1 shifted by one std."""
    project = Project(tmp_path_factory.mktemp("report"))
    watch = project.watch()
    project.serve(WINDOW)
    project.label()
    watch.tick()
    project.serve(WINDOW, shift=1.0)
    watch.tick()
    yield project


@pytest.fixture
def watch(fed: Project) -> Watch:
    return fed.watch()


def test_the_shifted_feature_comes_first_marked_drifted(watch: Watch) -> None:
    data = report.gather(watch, now=1.8e9)
    assert data.window == "1:1" and data.rows == WINDOW and data.watched == "1"
    assert data.versions == {"1": "stable"}
    first, *others = data.features
    assert first.name == "x1" and first.drifted and first.check is not None
    assert first.check.verdict == "alert"
    assert not any(d.drifted for d in others)
    page = parsed(report.render(data))
    figures = page.all("figure")
    assert figures[0]["class"] == "alert" and figures[1]["class"] == "ok"
    assert page.captions[0].startswith("x1: ") and page.captions[0].endswith("drifted")
    assert sorted(pngs(page)) == sorted(["x1", "x2", "x3", "colour", "quality", "drift share",
                                         "predictions"])  # fmt: skip
    sections = [attrs.get("id") for attrs in page.all("section")]
    assert sections == ["summary", "features", "history", "predictions"]


def test_the_summary_holds_the_checks_the_alerts_and_their_events(watch: Watch) -> None:
    data = report.gather(watch)
    names = [c.name for c in data.checks]
    assert names[:2] == ["rows", "drift.share"] and "quality.accuracy" in names
    text = report.render(data, images=False)
    parsed(text)
    assert "<td>drift.x1</td>" in text and "<td class='v v-alert'>alert</td>" in text
    assert "<td>drift</td><td class='v v-firing'>firing</td>" in text  # drift.share >= 0.25
    assert "<td>x1-moved</td><td class='v v-pending'>pending</td>" in text
    assert [e["alert"] for e in data.events] == ["drift"]
    assert "data/train.csv (4000 rows)" in text and "1 (stable)" in text


def test_history_has_quality_with_enough_labels_the_estimate_and_drift_share(
    watch: Watch,
) -> None:
    first, second = report.gather(watch).history
    assert (first.key, first.labels, first.accuracy) == ("1:0", WINDOW, 1.0)
    assert (second.labels, second.accuracy) == (0, None)  # its labels have not come
    assert first.estimate is not None and second.estimate is not None
    assert first.drift_share == 0.0 and second.drift_share == 0.25


def test_window_all_merges_every_closed_window_and_checks_it_again(watch: Watch) -> None:
    data = report.gather(watch, "all")
    assert data.rows == 2 * WINDOW and data.window.startswith("all 2 closed windows")
    checks = {c.name: c for c in data.checks}
    assert checks["rows"].value == 2 * WINDOW
    assert checks["quality.accuracy"].detail.startswith(f"{WINDOW} labels")
    latest = {c.name: c for c in report.gather(watch).checks}
    x1_all, x1_latest = checks["drift.x1"].value, latest["drift.x1"].value
    assert x1_all is not None and x1_latest is not None and 0 < x1_all < x1_latest  # half moved
    assert data.features[0].name == "x1"
    parsed(report.render(data, images=False))


def test_a_window_by_its_key_and_an_unknown_key_named(watch: Watch) -> None:
    data = report.gather(watch, "1:0")
    assert data.window == "1:0" and not any(d.drifted for d in data.features)
    with pytest.raises(report.NoSuchWindow, match="no closed window 1:99") as caught:
        report.gather(watch, "1:99")
    assert "1:0, 1:1" in (caught.value.hint or "")


def test_a_monitor_with_no_window_closed_shows_the_reference(tmp_path: Path) -> None:
    watch = Project(tmp_path).watch()
    data = report.gather(watch)
    assert data.window == "no window closed yet" and data.checks == [] and data.history == []
    assert all(d.window is None and d.check is None for d in data.features)
    page = parsed(report.render(data, images=False))
    assert "No window closed yet" in report.render(data, images=False)
    assert [a.get("id") for a in page.all("section")][:2] == ["summary", "features"]
    with pytest.raises(report.NoSuchWindow, match="version 1 has none"):
        report.gather(watch, "1:0")


# --------------------------------------------------------------------------------- pure


def made(columns: dict[str, Any], window: dict[str, Any]) -> report.Data:
    """A report's data from a reference and one window's rows, without a monitor."""
    bins, ref = profiles.reference(columns)
    spec = Monitor(env="production", reference="ref.csv")
    w = Window("2", 7, 1.7e9, 1.7e9 + 60, rows=len(next(iter(window.values()))))
    w.features = profiles.profile(window, bins)
    checks = evaluate(spec, bins, ref, w)
    features = [
        report.Distribution(
            name, bins.features[name], ref.features[name], w.features.features[name],
            next(c for c in checks if c.name == f"drift.{name}"),
        )
        for name in bins.features
    ]  # fmt: skip
    return report.Data(
        env="production", model="clf", versions={"2": "stable"}, watched="2",
        reference="ref.csv", reference_rows=ref.rows, window=w.key, first=w.first,
        last=w.last, rows=w.rows, made=1.7e9, checks=checks,
        features=report.drifted_first(features),
    )  # fmt: skip


def test_names_from_outside_are_escaped_everywhere() -> None:
    rng = np.random.default_rng(1)
    evil = "<script>alert('x')</script>"
    data = made(
        {evil: rng.normal(0, 1, 2000), "city": rng.choice(["<b>a", "b&c"], 2000)},
        {evil: rng.normal(2, 1, 500), "city": rng.choice(["<b>a", "b&c"], 500)},
    )
    text = report.render(data)
    page = parsed(text)
    assert "<script" not in text and "&lt;script&gt;" in text
    assert page.captions[0].startswith(evil)  # drifted, first; shown as text, not run
    assert sorted(pngs(page)) == sorted([evil, "city"])  # no history, no predictions yet
    assert "<b>" not in text


def test_a_names_dollar_signs_are_drawn_as_text() -> None:
    rng = np.random.default_rng(2)
    data = made({"price $": rng.normal(0, 1, 1000)}, {"price $": rng.normal(0, 1, 300)})
    assert report.grid_png(data.features).startswith(PNG)


def test_densities_integrate_to_one_with_the_tails_outside_the_reference() -> None:
    rng = np.random.default_rng(3)
    bins, ref = profiles.reference({"x": rng.normal(0, 1, 5000)})
    window = profiles.profile({"x": rng.normal(3, 1, 800)}, bins)
    nb, r, w = bins.features["x"], ref.features["x"], window.features["x"]
    assert isinstance(nb, profiles.NumericBins)
    assert isinstance(r, profiles.NumericSummary) and isinstance(w, profiles.NumericSummary)
    edges, dr, dw = report.densities(nb, r, w, most=30)
    widths = np.diff(edges)
    assert (widths > 0).all() and len(widths) <= 30 + 1  # the high tail: a bin of its own
    assert edges[0] == nb.edges[0] and w.max is not None and edges[-1] == w.max
    assert np.dot(dr, widths) == pytest.approx(1.0) and np.dot(dw, widths) == pytest.approx(1.0)
    assert dr[-1] == 0 and dw[-1] > 0  # only the window reaches past the reference
    alone, dr2, dw2 = report.densities(nb, r, None)
    assert alone[-1] == nb.edges[-1] and dw2 == [0.0] * (len(alone) - 1)
    assert np.dot(dr2, np.diff(alone)) == pytest.approx(1.0)


def test_shares_pool_the_rare_categories_and_show_unseen_only_when_seen() -> None:
    names = [f"c{i:02d}" for i in range(30)]
    values = [n for i, n in enumerate(names) for _ in range(40 - i)]
    bins, ref = profiles.reference({"c": values}, categorical=["c"])
    cb, r = bins.features["c"], ref.features["c"]
    assert isinstance(cb, profiles.CategoricalBins) and isinstance(r, profiles.CategoricalSummary)
    labels, rs, ws = report.shares(cb, r, None, most=5)
    assert labels == ["c00", "c01", "c02", "c03", "c04", profiles.OTHER]
    assert sum(rs) == pytest.approx(1.0) and ws == [0.0] * 6
    window = profiles.profile({"c": ["c00", "new", "new", "c29"]}, bins).features["c"]
    assert isinstance(window, profiles.CategoricalSummary)
    labels, _, ws = report.shares(cb, r, window, most=5)
    assert labels[-2:] == [profiles.OTHER, profiles.UNSEEN]
    assert ws[0] == ws[-2] == 0.25 and ws[-1] == 0.5


# ----------------------------------------------------------------------------------- CLI


def test_the_command_writes_the_page_and_the_figures(
    fed: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = fed.root / "conveyor.yaml"
    text = config.read_text()
    if "deploy:" not in text:
        config.write_text(text + "deploy:\n  production:\n    model: clf\n")
    state = (fed.root / ".conveyor/monitor/production/state.json").read_bytes()
    monkeypatch.chdir(fed.root)
    assert main(["monitor", "report", "--window", "all", "--png", "reports"]) == 0
    out = capsys.readouterr().out
    assert "wrote reports/monitor-production.html" in out
    assert "wrote reports/monitor-production-features.png" in out
    page = parsed((fed.root / "reports/monitor-production.html").read_text())
    assert len(pngs(page)) == 7 and page.captions[0].startswith("x1: ")
    assert (fed.root / "reports/monitor-production-features.png").read_bytes().startswith(PNG)
    # read only: the monitor's state is as the last tick left it
    assert (fed.root / ".conveyor/monitor/production/state.json").read_bytes() == state
    assert main(["monitor", "report", "production", "--window", "9:9", "--out", "x.html"]) == 2
    err = capsys.readouterr().err
    assert "no closed window 9:9" in err and "Traceback" not in err
    assert not (fed.root / "x.html").exists()


def test_figures_are_drawn_from_plain_arrays() -> None:
    edges, reference, window = [0.0, 1.0, 2.0, 4.0], [0.5, 0.3, 0.1], [0.1, 0.3, 0.3]
    title = "x: 0.4 (wasserstein >= 0.1) drifted"
    assert report.histogram_png(title, edges, reference, window).startswith(PNG)
    assert report.bars_png("c", ["a", "<unseen>"], [1.0, 0.0], [0.5, 0.5]).startswith(PNG)
