"""The monitor over a real prediction log and feedback folder on disk: windows, drift, quality,
the label-free estimate, alerts with their notifications and actions, and restarts.

The log is written with the server's own segment format (monitor.segments, predlog.record), the
receiver is a real HTTP server on loopback; no server or model is needed otherwise: a test's
"model" is a seeded rule, its probabilities a function given to the monitor.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import pandas as pd
import pytest

from conveyor.monitor import feedback, predlog, webhooks
from conveyor.monitor.config import monitor
from conveyor.monitor.feedback import LATE_AFTER
from conveyor.monitor.reference import MonitorError
from conveyor.monitor.segments import Segment
from conveyor.monitor.watch import Watch

FEATURES = ("x1", "x2", "x3", "colour")
COLOURS = np.array(["red", "green", "blue", "black"])
WINDOW = 400


def rows(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, near: bool = False
) -> pd.DataFrame:
    """Rows like the reference's, x1 shifted by ``shift``; ``near``: on the model's boundary."""
    x3 = rng.uniform(0, 10, n)
    x1 = 1 - 0.2 * x3 + rng.normal(0, 0.2, n) if near else rng.normal(shift, 1.0, n)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": rng.exponential(2.0, n),
            "x3": x3,
            "colour": rng.choice(COLOURS, n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def truth(frame: pd.DataFrame) -> np.ndarray:
    return (frame["x1"] + 0.2 * frame["x3"] > 1.0).astype(int).to_numpy()


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    """A confident model of ``truth``: far from the boundary, sure."""
    margin = frame["x1"].to_numpy(float) + 0.2 * frame["x3"].to_numpy(float) - 1.0
    p = 1 / (1 + np.exp(-4 * margin))
    return np.column_stack([1 - p, p])


CONFIG = """\
monitor:
  production:
    reference: data/train.csv
    label: y
    window: {{rows: {window}, min_rows: 100}}
    drift: {{method: auto, share: 0.5}}
    quality: {{metric: accuracy, min: 0.9, min_labels: 100}}
    estimate: true
    interval: 1s
    alerts:
      - {{name: drift, when: "drift.share >= 0.25", for: 1 window, notify: [ops]}}
      - {{name: x1-moved, when: "drift.x1 > 0.3", for: 2 windows}}
      - name: quality-drop
        when: "quality.accuracy < 0.9"
        severity: critical
        notify: [ops]
        action: retrain
    notify:
      ops: {{webhook: "{hook}", secret_env: OPS_SECRET}}
"""


class Project:
    """A project folder with a reference, a prediction log written like the server's, and
    feedback; ``watch()`` opens a monitor on it."""

    def __init__(self, root: Path, hook: str = "http://127.0.0.1:9/hook") -> None:
        self.root = root
        self.rng = np.random.default_rng(7)
        reference = rows(self.rng, 4000)
        reference["y"] = truth(reference)
        (root / "data").mkdir()
        reference.to_csv(root / "data" / "train.csv", index=False)
        (root / "conveyor.yaml").write_text(CONFIG.format(window=WINDOW, hook=hook))
        self.log = root / ".conveyor" / "predictions"
        self.segment = Segment(predlog.model_folder(self.log, "clf"), records=10**9, seconds=1e9)
        self.sent: list[tuple[str, int]] = []  # (id, true label)
        self.acted: list[str] = []
        self.clock = [time.time()]

    def watch(self, **given: Any) -> Watch:
        spec = monitor(self.root, "production")

        def retrain(notice: Any, announce: Any) -> str:
            self.acted.append(notice.rule.name)
            return "retrain started"

        options: dict[str, Any] = {
            "model": "clf",
            "predictions": self.log,
            "feedback": feedback.folder(self.root),
            "roles": lambda: {"1": "stable"},
            "actions": {"retrain": retrain},
            "columns": lambda version: ("x1", "x2", "x3", "colour"),
            "scorer": lambda version: probabilities,
            "clock": lambda: self.clock[0],
        }
        options.update(given)
        return Watch(self.root, spec, **options)

    def serve(
        self, n: int, *, shift: float = 0.0, near: bool = False, flip: float = 0.0,
        version: str = "1",
    ) -> None:  # fmt: skip
        """``n`` one-row requests answered by ``version``: its prediction is ``truth``, wrong
        on a share ``flip`` of rows (the world changed, the model did not)."""
        frame = rows(self.rng, n, shift=shift, near=near)
        said = truth(frame)
        actual = np.where(self.rng.random(n) < flip, 1 - said, said)
        for i, row in enumerate(frame.itertuples(index=False)):
            rid = f"r{len(self.sent)}"
            self.clock[0] += 0.01
            record = predlog.record(rid, "clf", version, "invocations", [list(row)], [int(said[i])])
            record["ts"] = self.clock[0]
            self.segment.write(orjson.dumps(record) + b"\n")
            self.sent.append((rid, int(actual[i])))

    def label(self, start: int = 0, stop: int | None = None) -> None:
        labels = [feedback.label(rid, y) for rid, y in self.sent[start:stop]]
        feedback.append(self.root, labels)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def check(checks: list[Any], name: str) -> Any:
    (found,) = [c for c in checks if c.name == name]
    return found


def test_traffic_like_the_reference_raises_no_drift_alert(project: Project) -> None:
    watch = project.watch()
    project.serve(WINDOW * 20)
    done = watch.tick()
    assert len(done.closed) == 20 and all(w.rows == WINDOW for w in done.closed)
    windows = watch.windows_of("1")
    shares = [check(c, "drift.share").value for _, c in windows]
    # 4 features at most one-in-twenty false alarms each: a quarter of them drifting in one
    # window of 400 rows from the same distribution should almost never happen.
    assert sum(s >= 0.25 for s in shares) <= 1, shares
    assert watch.alerts["drift"].status == "inactive"
    assert check(done.checks, "rows").verdict == "ok"


def test_a_shifted_feature_is_found_in_the_first_full_window_and_named(project: Project) -> None:
    watch = project.watch()
    project.serve(WINDOW)
    watch.tick()
    project.serve(WINDOW, shift=1.0)
    done = watch.tick()
    assert len(done.closed) == 1
    x1 = check(done.checks, "drift.x1")
    assert x1.verdict == "alert" and x1.value > 0.5  # a normalised Wasserstein of ~1 std
    assert "x1" in check(done.checks, "drift.share").detail
    assert check(done.checks, "drift.x3").verdict == "ok"
    assert [n.rule.name for n in done.notices] == ["drift"]
    assert watch.alerts["x1-moved"].status == "pending"  # for: 2 windows
    project.serve(WINDOW, shift=1.0)
    assert [n.rule.name for n in watch.tick().notices] == ["x1-moved"]


def test_quality_drops_once_labels_arrive_and_the_estimate_moves_first(project: Project) -> None:
    watch = project.watch()
    project.serve(WINDOW)
    project.label()
    first = watch.tick()
    assert check(first.checks, "quality.accuracy").value == 1.0
    good_estimate = check(first.checks, "estimate.accuracy").value
    # the inputs move where the model is unsure, and it is wrong there: the estimate sees it
    # at once, the labels later
    project.serve(WINDOW, near=True, flip=0.3)
    second = watch.tick()
    moved = check(second.checks, "estimate.accuracy").value
    assert moved < good_estimate - 0.1
    assert check(second.checks, "quality.accuracy").window == first.closed[0].key  # no labels yet
    assert watch.alerts["quality-drop"].status == "inactive" and project.acted == []
    project.label(WINDOW)  # the labels of the second window arrive
    third = watch.tick()
    quality = check(third.checks, "quality.accuracy")
    assert quality.window == second.closed[0].key and quality.value < 0.8
    assert quality.verdict == "alert"
    assert [n.rule.name for n in third.notices] == ["quality-drop"]
    assert project.acted == ["quality-drop"]  # its action ran once
    assert third.notices[0].action == "retrain started"
    assert watch.tick().notices == [] and project.acted == ["quality-drop"]  # still firing: once


def test_restart_mid_window_loses_and_doubles_nothing(project: Project) -> None:
    watch = project.watch()
    project.serve(WINDOW + WINDOW // 2)
    assert len(watch.tick().closed) == 1
    assert watch.windows.open["1"].rows == WINDOW // 2
    again = project.watch()  # a restart: from state.json
    assert again.windows.open["1"].rows == WINDOW // 2
    project.serve(WINDOW // 2)
    assert [w.rows for w in again.tick().closed] == [WINDOW]
    assert [w.rows for w, _ in again.windows_of("1")] == [WINDOW, WINDOW]


def test_catching_up_between_looks_makes_the_windows_one_look_makes(tmp_path: Path) -> None:
    """The server's monitor reads the log in small steps between looks: the same windows, the
    same files and the same state as one look over it all; the look reports what the steps
    did; a restart after steps but before a look counts nothing twice."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stepped, whole = Project(tmp_path / "a"), Project(tmp_path / "b")
    for p in (stepped, whole):  # the same traffic at the same times
        p.rng, p.clock = np.random.default_rng(11), [1_700_000_000.0]
    watch = stepped.watch()
    stepped.serve(WINDOW // 2)
    assert watch.catch_up() == WINDOW // 2
    stepped.serve(WINDOW * 2)
    assert watch.catch_up() == WINDOW * 2
    folder = Path(".conveyor") / "monitor" / "production"
    assert sorted(p.name for p in (stepped.root / folder / "windows" / "1").iterdir()) == [
        "0.json",
        "1.json",
    ]  # written as they filled
    assert not (stepped.root / folder / "state.json").exists()  # only a look writes it
    again = stepped.watch()  # a restart before any look: the log read again, nothing twice
    assert [w.key for w in again.tick().closed] == ["1:0", "1:1"]
    done = watch.tick()
    assert done.read == WINDOW * 5 // 2 and [w.key for w in done.closed] == ["1:0", "1:1"]
    assert watch.tick().closed == []  # reported once
    whole.serve(WINDOW // 2)
    whole.serve(WINDOW * 2)
    one = whole.watch().tick()
    assert [w.key for w in one.closed] == ["1:0", "1:1"]
    for name in ("0.json", "1.json"):
        mine = orjson.loads((stepped.root / folder / "windows" / "1" / name).read_bytes())
        theirs = orjson.loads((whole.root / folder / "windows" / "1" / name).read_bytes())
        assert mine == theirs
    assert watch.windows.open["1"].to_json() == whole.watch().windows.open["1"].to_json()


def test_killed_before_its_state_was_written_counts_the_window_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = project.watch()
    project.serve(WINDOW // 2)
    watch.tick()
    project.serve(WINDOW)

    def killed(self: Watch, now: float) -> None:
        raise KeyboardInterrupt("killed after the window's file, before state.json")

    monkeypatch.setattr(Watch, "_save", killed)
    with pytest.raises(KeyboardInterrupt):
        watch.tick()
    monkeypatch.undo()
    assert [w.rows for w, _ in watch.windows_of("1")] == [WINDOW]
    again = project.watch()
    done = again.tick()  # the same lines read again into the same window
    assert [w.rows for w in done.closed] == [WINDOW]
    assert [w.rows for w, _ in again.windows_of("1")] == [WINDOW]
    assert again.windows.open["1"].rows == WINDOW // 2


def test_time_windows_close_after_their_end(project: Project) -> None:
    text = (project.root / "conveyor.yaml").read_text()
    (project.root / "conveyor.yaml").write_text(text.replace(f"rows: {WINDOW}", "every: 10s"))
    project.clock[0] = 1000.0
    watch = project.watch()
    project.serve(300)  # 3 s of traffic from t=1000
    assert watch.tick().closed == []
    project.clock[0] = 1016.0  # the window [1000, 1010) ended 6 s ago
    (window,) = watch.tick().closed
    assert window.rows == 300 and window.key == "1:100"


def test_a_damaged_state_file_is_named(project: Project) -> None:
    project.watch().tick()
    (project.root / ".conveyor/monitor/production/state.json").write_text("{not json")
    with pytest.raises(MonitorError, match=r"state\.json is damaged") as caught:
        project.watch()
    assert "remove" in (caught.value.hint or "")


def test_a_missing_reference_is_named(project: Project) -> None:
    (project.root / "data/train.csv").unlink()
    with pytest.raises(MonitorError, match=r"cannot read the reference data/train\.csv"):
        project.watch()


# -------------------------------------------------------------------------- notifications


class Receiver(http.server.BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.got.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_alerts_reach_a_receiver_as_alertmanager_bodies_signed(
    tmp_path: Path, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.monitor.alerts import Notifier

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    monkeypatch.setenv("OPS_SECRET", secret)
    project = Project(tmp_path, hook=receiver)
    spec = monitor(project.root, "production")
    watch = project.watch(notifier=Notifier(spec))
    project.serve(WINDOW)
    watch.tick()
    project.serve(WINDOW, shift=1.5)
    watch.tick()  # drift fires
    project.serve(WINDOW)
    watch.tick()  # and resolves
    wait_for(lambda: len(Receiver.got) == 2)
    assert watch.notifier is not None
    watch.notifier.close()
    bodies = []
    for headers, body in Receiver.got:
        webhooks.verify(secret, headers, body)  # Standard Webhooks signature
        bodies.append(orjson.loads(body))
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    fired, resolved = (b["alerts"][0] for b in bodies)
    assert fired["labels"] == {
        "alertname": "drift", "severity": "warning", "env": "production", "model": "clf",
    }  # fmt: skip
    assert fired["endsAt"] == "0001-01-01T00:00:00Z" and resolved["endsAt"] != fired["endsAt"]
    assert fired["fingerprint"] == resolved["fingerprint"]
    assert bodies[0]["receiver"] == "ops" and bodies[0]["version"] == "4"
    assert float(fired["annotations"]["value"]) >= 0.25


def test_a_receiver_that_is_down_never_holds_up_a_tick(project: Project) -> None:
    from conveyor.monitor.alerts import Notifier

    spec = monitor(project.root, "production")  # its hook: port 9, nobody listens
    watch = project.watch(notifier=Notifier(spec, environ={"OPS_SECRET": "s"}, timeout=0.5))
    project.serve(WINDOW)
    watch.tick()
    project.serve(WINDOW, shift=1.5)
    started = time.monotonic()
    assert [n.rule.name for n in watch.tick().notices] == ["drift"]
    assert time.monotonic() - started < 1.0
    assert watch.notifier is not None
    watch.notifier.close(timeout=0.1)


def test_a_failing_action_is_reported_and_monitoring_goes_on(project: Project) -> None:
    def broken(notice: Any, announce: Any) -> str:
        raise RuntimeError("the pipeline cannot start")

    watch = project.watch(actions={"retrain": broken})
    project.serve(WINDOW, flip=0.5)
    project.label()
    done = watch.tick()
    (notice,) = [n for n in done.notices if n.rule.name == "quality-drop"]
    assert notice.action == "retrain failed: the pipeline cannot start"
    events = watch.events()
    assert events[-1]["alert"] == "quality-drop" and "failed" in events[-1]["action"]


def test_duplicate_unknown_and_late_labels_are_counted_not_joined(project: Project) -> None:
    watch = project.watch()
    project.serve(WINDOW)
    project.label()
    project.label(0, 50)  # the same ids again, with the same labels
    feedback.append(project.root, [feedback.label(f"nobody-{i}", 1) for i in range(7)])
    project.serve(10)
    late = [feedback.label(rid, y, ts=project.clock[0] + LATE_AFTER + 1) for rid, y in
            project.sent[WINDOW:]]  # fmt: skip
    feedback.append(project.root, late)
    quality = check(watch.tick().checks, "quality.accuracy")
    assert quality.value == 1.0 and quality.detail.startswith(f"{WINDOW} labels")
    assert "50 duplicates" in quality.detail and "7 for unknown ids" in quality.detail
    assert "10 late" in quality.detail


def test_each_look_writes_the_gauges_the_server_exports(project: Project) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from conveyor.monitor import gauges

    watch = project.watch()
    project.serve(WINDOW)
    project.label()
    watch.tick()
    project.serve(WINDOW, shift=1.5)
    watch.tick()
    text = gauges.read(project.root, "production")
    samples = {
        (s.name, s.labels.get("feature", ""), s.labels.get("metric", "")): s
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    share = samples["conveyor_monitor_drift_share", "", ""]
    assert share.labels == {"env": "production", "model": "clf", "version": "1", "role": "stable"}
    assert share.value >= 0.25
    assert samples["conveyor_monitor_feature_drifted", "x1", ""].value == 1
    assert samples["conveyor_monitor_feature_drifted", "x3", ""].value == 0
    assert samples["conveyor_monitor_quality", "", "accuracy"].value == 1.0
    assert samples["conveyor_monitor_quality_labels", "", ""].value == WINDOW
    firing = {
        s.labels["alertname"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "conveyor_monitor_alert_firing"
    }
    assert firing == {"drift": 1, "x1-moved": 0, "quality-drop": 0}


def test_a_new_reference_closes_the_open_windows_and_starts_new_ones(project: Project) -> None:
    """A retrain's pipeline writes new training data: each window stays judged against the
    reference it was profiled on, and the report merges only windows of one reference."""
    from conveyor.monitor.report import gather

    watch = project.watch()
    project.serve(WINDOW + WINDOW // 2)
    watch.tick()
    old = watch.reference.digest
    moved = rows(project.rng, 4000, shift=1.0)
    moved["y"] = truth(moved)
    moved.to_csv(project.root / "data" / "train.csv", index=False)  # the new world's data
    done = watch.tick()
    assert [w.rows for w in done.closed] == [WINDOW // 2]  # the open window, on the old bins
    assert watch.reference.digest != old and done.closed[0].reference == old
    project.serve(WINDOW, shift=1.0)  # traffic like the new reference: no drift against it
    (window,) = watch.tick().closed
    assert window.reference == watch.reference.digest
    assert check(watch.windows_of("1")[-1][1], "drift.x1").verdict == "ok"
    assert gather(watch, "all").rows == WINDOW  # only the new reference's window
    again = project.watch()  # a restart reads every window's own reference back
    assert again.reference_of(again.windows_of("1")[0][0]).digest == old


def test_rows_breaking_the_data_gates_schema_are_counted(project: Project) -> None:
    (project.root / "schema.yaml").write_text(
        "columns:\n"
        "  x1: {type: float, nullable: false, min: -6, max: 6}\n"
        "  colour: {type: string, categories: [red, green, blue, black]}\n"
    )
    text = (project.root / "conveyor.yaml").read_text()
    (project.root / "conveyor.yaml").write_text(
        text.replace("    estimate: true\n", "    estimate: true\n    schema: schema.yaml\n")
    )
    watch = project.watch()
    project.serve(WINDOW)
    clean = check(watch.tick().checks, "violations.share")
    assert clean.value == 0 and clean.verdict == "ok"
    project.serve(WINDOW, shift=6.0)  # about half of x1 now above 6
    broken = check(watch.tick().checks, "violations.share")
    assert 0.3 < broken.value < 0.7 and broken.verdict == "alert"
    assert broken.detail.endswith("rows break schema.yaml")


def test_quality_per_slice(project: Project) -> None:
    text = (project.root / "conveyor.yaml").read_text()
    (project.root / "conveyor.yaml").write_text(
        text.replace("min: 0.9, min_labels: 100}", "min: 0.9, min_labels: 20, slice_by: colour}")
    )
    watch = project.watch()
    project.serve(WINDOW, flip=0.2)
    project.label()
    checks = {c.name: c for c in watch.tick().checks}
    parts = {n: c for n, c in checks.items() if n.startswith("quality.accuracy[")}
    assert set(parts) == {f"quality.accuracy[colour={c}]" for c in COLOURS}
    overall = checks["quality.accuracy"]
    labelled = [int(c.detail.split(" ")[0]) for c in parts.values()]
    assert sum(labelled) == WINDOW and int(overall.detail.split(" ")[0]) == WINDOW
    assert all(0.6 < c.value < 0.95 for c in parts.values() if c.value is not None)


def test_a_numeric_slice_is_the_references_decile(project: Project) -> None:
    text = (project.root / "conveyor.yaml").read_text()
    (project.root / "conveyor.yaml").write_text(
        text.replace("min: 0.9, min_labels: 100}", "min: 0.9, min_labels: 10, slice_by: x3}")
    )
    watch = project.watch()
    project.serve(WINDOW)
    project.label()
    parts = [c.name for c in watch.tick().checks if c.name.startswith("quality.accuracy[")]
    assert len(parts) == 10  # x3 is uniform: every decile has rows
    assert parts[0].startswith("quality.accuracy[x3=") and "-" in parts[0]


def test_a_look_that_fails_part_way_loses_no_window(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = project.watch()
    project.serve(WINDOW * 2 + WINDOW // 2)
    calls = []

    def failing(self: Watch, window: Any) -> None:
        calls.append(window.key)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Watch, "_close", failing)
    with pytest.raises(OSError):
        watch.tick()
    assert calls == ["1:0"]
    monkeypatch.undo()
    done = watch.tick()  # the same lines read again: both windows closed, none lost
    assert [w.rows for w in done.closed] == [WINDOW, WINDOW]
    assert [w.rows for w, _ in watch.windows_of("1")] == [WINDOW, WINDOW]
    assert watch.windows.open["1"].rows == WINDOW // 2


def _logged(project: Project, inputs: Any, ts: float, rid: str) -> None:
    record = predlog.record(rid, "clf", "1", "invocations", inputs, [1])
    record["ts"] = ts
    project.segment.write(orjson.dumps(record) + b"\n")


@pytest.mark.parametrize(
    ("columns", "shape"),
    [
        (("x1", "x2", "x3", "colour"), "rows"),  # the model's columns, rows as lists
        (("x1", "x2", "x3", "colour"), "records"),  # a list of records
        (("x1", "x2", "x3", "colour"), "columns"),  # a mapping of columns
        (("x1", "x2", "x3", "colour"), "one-row columns"),  # ... of one row each (a table's)
        (("x3", "colour", "x1", "x2", "extra"), "rows"),  # the model's own order, one more
        (("input",), "rows"),  # one tensor: its rows are named by the reference's columns
    ],
)
def test_every_shape_of_logged_rows_gives_the_same_window(
    project: Project, columns: tuple[str, ...], shape: str
) -> None:
    frame = rows(project.rng, WINDOW)
    if "extra" in columns:
        frame["extra"] = 7.0
    width = frame.columns if len(columns) != 1 else FEATURES
    ordered = frame[list(columns if len(columns) > 1 else width)]
    per = 1 if shape.startswith("one-row") else 4  # rows per request
    for i in range(0, WINDOW, per):
        part = ordered.iloc[i : i + per]
        inputs = {
            "rows": part.to_numpy().tolist(),
            "records": part.to_dict("records"),
            "columns": part.to_dict("list"),
            "one-row columns": part.to_dict("list"),
        }[shape]
        _logged(project, inputs, project.clock[0] + i, f"r{i}")
    watch = project.watch(columns=lambda version: columns)
    (window,) = watch.tick().closed
    assert window.rows == WINDOW
    assert window.features is not None
    for name in FEATURES:  # every feature counted, none missing
        summary = window.features.features[name]
        assert summary.count == WINDOW and summary.nulls == 0, (name, summary)
    x1 = window.features.features["x1"]
    assert x1.sum == pytest.approx(float(frame["x1"].sum()))


def test_rows_of_another_width_count_their_features_as_missing(project: Project) -> None:
    for i in range(WINDOW):
        _logged(project, [[1.0, 2.0]], project.clock[0] + i, f"r{i}")  # 2 values, 4 wanted
    watch = project.watch()
    (window,) = watch.tick().closed
    assert window.features is not None
    assert window.features.features["x1"].count == WINDOW  # the first values are x1, x2
    assert window.features.features["x3"].nulls == WINDOW


def test_old_windows_go_as_retention_says_and_the_state_stays_bounded(project: Project) -> None:
    text = (project.root / "conveyor.yaml").read_text()
    (project.root / "conveyor.yaml").write_text(
        text.replace("    interval: 1s\n", "    interval: 1s\n    retention: 3\n")
    )
    watch = project.watch()
    project.serve(WINDOW * 6)
    done = watch.tick()
    assert len(done.closed) == 6
    folder = project.root / ".conveyor" / "monitor" / "production" / "windows" / "1"
    assert sorted(int(p.stem) for p in folder.glob("*.json")) == [3, 4, 5]
    assert [w.key for w, _ in watch.windows_of("1")] == ["1:3", "1:4", "1:5"]
    state = orjson.loads((folder.parents[1] / "state.json").read_bytes())
    assert [n for _, n in state["starts"]["1"]] == [3, 4, 5]
    # labels of every window come: those of removed windows count in none
    project.label()
    by_window = watch.quality_by_window("1")
    assert sorted(by_window) == ["1:3", "1:4", "1:5"]
    assert all(q.labelled == WINDOW for q in by_window.values())
    # a monitor started again keeps to the same three, and closes the next one after them
    again = project.watch()
    project.serve(WINDOW)
    assert [w.key for w in again.tick().closed] == ["1:6"]
    assert sorted(int(p.stem) for p in folder.glob("*.json")) == [4, 5, 6]


def test_a_long_column_the_model_has_not_makes_no_rows(project: Project) -> None:
    """A hostile request: one column of a million values the model does not take."""
    inputs = {"x1": [0.1], "x2": [1.0], "x3": [2.0], "colour": ["red"], "junk": [0] * 1_000_000}
    for i in range(WINDOW):
        _logged(project, inputs, project.clock[0] + i, f"r{i}")
    (window,) = project.watch().tick().closed
    assert window.rows == WINDOW and window.features is not None
    assert window.features.features["x1"].nulls == 0


def test_a_window_closed_again_after_a_failed_look_is_counted_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = project.watch()
    project.serve(WINDOW * 6)
    real = Watch._close
    calls = [0]

    def failing_fifth(self: Watch, window: Any) -> None:
        calls[0] += 1
        if calls[0] == 5:
            raise OSError("disk full")
        real(self, window)

    monkeypatch.setattr(Watch, "_close", failing_fifth)
    with pytest.raises(OSError):
        watch.tick()
    monkeypatch.setattr(Watch, "_close", real)
    assert len(watch.tick().closed) == 6
    assert [w.key for w, _ in watch.windows_of("1")] == [f"1:{n}" for n in range(6)]


@pytest.mark.parametrize(
    "inputs",
    [
        {"x1": [0.5], "x2": [1.0], "x3": [2.0], "colour": ["red"]},  # a one-row table's
        {"x1": [0.5], "x2": [1.0], "x3": [2.0], "colour": ["red"], "more": [1, 2]},
        {"x1": 0.5, "x2": [1.0], "x3": [2.0], "colour": ["red"]},  # a value not in a list
        {"x1": [0.5], "x2": [1.0], "x3": [2.0], "colour": "r"},  # one character, not a list
        {"x1": [0.5], "x2": [1.0], "x3": [2.0], "colour": {"k": 1}},  # a mapping of one key
        {"x1": [0.5], "x2": [1.0], "x3": [2.0]},  # a column missing
        {"x1": [0.5, 0.7], "x2": [1.0], "x3": [2.0], "colour": []},  # two rows and none
        {"x1": [[0.5]], "x2": [None], "x3": [2.0], "colour": ["red"]},  # nested, null
    ],
)
def test_a_one_row_request_read_fast_gives_the_rows_of_the_general_reading(
    inputs: dict[str, Any],
) -> None:
    from conveyor.monitor.watch import _Rows, _table

    names = ("x1", "x2", "x3", "colour")
    fast = _Rows("1", names, names, names)
    fast.add(5.0, orjson.loads(orjson.dumps(inputs)), [1])
    expected = _table(inputs, names, names, names)
    assert fast.table == expected
    assert fast.times == [5.0] * len(expected)
    assert fast.said == ([1] if len(expected) == 1 else [None] * len(expected))
