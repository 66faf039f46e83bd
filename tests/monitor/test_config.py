"""The monitor: section: what a user writes, and every mistake named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.monitor import config

GOOD = """\
deploy:
  production: {model: classifier}
monitor:
  production:
    reference: data/train.csv
    label: y
    exclude: [id]
    window: {rows: 200, min_rows: 50}
    drift: {method: jensenshannon, threshold: 0.2, share: 0.3}
    quality: {metric: accuracy, min: 0.9, slice_by: size, min_labels: 40}
    estimate: true
    alerts:
      - {name: drift, when: "drift.share > 0.3", for: 2 windows, notify: [ops]}
      - {name: quality-drop, when: "quality.accuracy < 0.9", severity: critical, action: retrain}
      - {name: errors, when: "error_rate > 0.05", for: 5m, action: rollback}
    notify:
      ops: {webhook: "http://127.0.0.1:9/hook", secret_env: OPS_SECRET}
    retrain: {cooldown: 30m}
    interval: 2s
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "conveyor.yaml").write_text(text)
    return tmp_path


def test_reads_every_key(tmp_path: Path) -> None:
    spec = config.monitor(write(tmp_path, GOOD), "production")
    assert spec.window == config.Window(every=None, rows=200, min_rows=50)
    assert spec.drift == config.Drift("jensenshannon", 0.2, 0.3)
    assert spec.quality == config.Quality("accuracy", 0.9, "size", 40)
    assert spec.estimate and spec.label == "y" and spec.exclude == ("id",)
    assert [r.name for r in spec.alerts] == ["drift", "quality-drop", "errors"]
    assert spec.rules["drift"].hold.windows == 2 and spec.rules["errors"].hold.seconds == 300
    assert spec.rules["quality-drop"].action == "retrain"
    assert spec.notify["ops"] == config.Receiver("ops", "http://127.0.0.1:9/hook", "OPS_SECRET")
    assert spec.cooldown == 1800 and spec.interval == 2


def test_defaults(tmp_path: Path) -> None:
    spec = config.monitor(write(tmp_path, "monitor:\n  p:\n    reference: x.csv\n"), "p")
    assert spec.window == config.Window(every=3600.0, rows=None, min_rows=100)
    assert spec.drift == config.Drift() and spec.quality is None and spec.alerts == ()


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("method: jensenshannon", "method: jensen", "conveyor.yaml:9: method: 'jensen' is not"),
        ("rows: 200", "rows: 200, every: 1h", "conveyor.yaml:8: window: either every"),
        ("notify: [ops]", "notify: [opz]", "conveyor.yaml:13: alert 'drift': no receiver 'opz'"),
        ("for: 5m", "for: 2 windows", "alert 'errors': error_rate is not per window"),
        ("drift.share > 0.3", "drift.share >> 0.3", "alert 'drift': when: "),
        ("secret_env: OPS_SECRET", "secret_env: s3cr3t value", "not an environment variable"),
        ("min_labels: 40", "min_labels: 0", "conveyor.yaml:10"),
        ("reference: data/train.csv", "referenc: data/train.csv", "unknown key 'referenc'"),
        ("interval: 2s", "interval: soon", "conveyor.yaml:19: interval:"),
    ],
)
def test_mistakes_name_the_line(tmp_path: Path, old: str, new: str, says: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        config.monitor(write(tmp_path, GOOD.replace(old, new)), "production")


def test_quality_alert_needs_quality(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    quality: {metric: accuracy, min: 0.9, slice_by: size, min_labels: 40}\n", ""
    )
    with pytest.raises(ConfigError, match="needs quality:"):
        config.monitor(write(tmp_path, text), "production")


def test_unmonitored_environment_names_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(config.UnmonitoredEnvironment) as caught:
        config.monitor(write(tmp_path, GOOD), "productoin")
    assert caught.value.hint == "did you mean 'production'?"


@pytest.mark.parametrize("name", ["../../.git/hooks", "a/b", "..", "Prod"])
def test_an_environment_name_that_is_a_path_is_refused(tmp_path: Path, name: str) -> None:
    """The name becomes .conveyor/monitor/<env>/: a hostile one must never leave that folder."""
    text = f'monitor:\n  "{name}":\n    reference: x.csv\n'
    with pytest.raises(ConfigError, match="is not an environment name"):
        config.monitors(write(tmp_path, text))
    assert not (tmp_path / ".git").exists()
