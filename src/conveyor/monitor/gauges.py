"""The monitor's last verdicts as Prometheus gauges: what it measured in each served version's
last window, and which of its alerts fire.

    conveyor_monitor_window_rows{env,model,version,role}                rows in the last window
    conveyor_monitor_window_end_timestamp_seconds{env,model,version,role}  when it closed
    conveyor_monitor_drift_share{env,model,version,role}                share of features drifted
    conveyor_monitor_drift_count{env,model,version,role}                features drifted
    conveyor_monitor_feature_drift{env,model,version,role,feature}      each feature's score
    conveyor_monitor_feature_drifted{env,model,version,role,feature}    1 if it drifted
    conveyor_monitor_missing_share{env,model,version,role[,feature]}    values missing (no
                                                                        feature: all features)
    conveyor_monitor_prediction_drift{env,model,version,role}           the predictions' score
    conveyor_monitor_violations_share{env,model,version,role}           rows breaking the schema
    conveyor_monitor_quality{env,model,version,role,metric}             measured from labels
    conveyor_monitor_quality_labels{env,model,version,role}             labels it was measured on
    conveyor_monitor_estimate{env,model,version,role,metric}            estimated without labels
    conveyor_monitor_alert_firing{env,model,alertname,severity}         1 while the alert fires

The monitor fills a :class:`Gauges` after each evaluation (:func:`from_values` makes a version's
from its window's values by rule metric name) and :func:`write` puts it, rendered,
in ``.conveyor/monitor/<env>/gauges.prom``; ``conveyor serve --env ENV`` appends that file to
``/metrics`` at every scrape (:func:`read`), so that the Prometheus already scraping the server
gets the monitor's view with no exporter of its own. A value of None was not measured (too few
rows or labels): it has no sample, rather than a made-up one.

The file sits on a disk anyone with access to the project can write: :func:`read` returns it
only whole, under :data:`MAX_BYTES`, and only made of ``conveyor_monitor_*`` gauges, so that a
damaged file never breaks ``/metrics``. Label sets are bounded: at most :data:`MAX_FEATURES`
features (the monitor passes the configuration's), the roles of
:data:`ROLES`, the quality metrics of :data:`~conveyor.monitor.rules.QUALITY_METRICS`.

Pure but for :func:`write` and :func:`read`; imports nothing beyond the standard library and
:mod:`conveyor.foundation`, since every server scrape reads through it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.foundation.atomic import write_bytes
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.monitor.rules import QUALITY_METRICS

__all__ = [
    "MAX_BYTES",
    "MAX_FEATURES",
    "NAMES",
    "AlertGauge",
    "FeatureGauges",
    "Gauges",
    "VersionGauges",
    "from_values",
    "path",
    "read",
    "render",
    "write",
]

ROLES = ("stable", "candidate", "shadow")
MAX_FEATURES = 200
MAX_VERSIONS = 8
MAX_ALERTS = 100
MAX_BYTES = 1 << 20  # a larger file is not read
FILE = "gauges.prom"

# name -> help, in the order rendered
NAMES: dict[str, str] = {
    "conveyor_monitor_window_rows": "Rows in the last window the monitor evaluated.",
    "conveyor_monitor_window_end_timestamp_seconds": "When the last window evaluated closed "
    "(Unix time).",
    "conveyor_monitor_drift_share": "Share of the features that drifted in the last window.",
    "conveyor_monitor_drift_count": "Features that drifted in the last window.",
    "conveyor_monitor_feature_drift": "Each feature's drift score in the last window.",
    "conveyor_monitor_feature_drifted": "1 for each feature that drifted in the last window.",
    "conveyor_monitor_missing_share": "Share of values missing in the last window, by feature "
    "(without feature: over all features).",
    "conveyor_monitor_prediction_drift": "Drift score of the predictions in the last window.",
    "conveyor_monitor_violations_share": "Share of rows breaking the schema in the last window.",
    "conveyor_monitor_quality": "Model quality measured from feedback labels.",
    "conveyor_monitor_quality_labels": "Labels the quality was measured on.",
    "conveyor_monitor_estimate": "Model quality estimated without labels.",
    "conveyor_monitor_alert_firing": "1 while the monitor's alert fires.",
}


@dataclass(frozen=True)
class FeatureGauges:
    name: str
    drift: float | None = None  # the drift score (the method's statistic)
    drifted: bool | None = None
    missing: float | None = None  # share of its values missing


@dataclass(frozen=True)
class VersionGauges:
    """One served version's last window."""

    version: str
    role: str  # stable | candidate | shadow
    rows: int
    window_end: float | None = None  # Unix time the window closed
    drift_share: float | None = None
    drift_count: int | None = None
    features: tuple[FeatureGauges, ...] = ()
    missing_share: float | None = None  # over every feature
    prediction_drift: float | None = None
    violations_share: float | None = None
    quality: Mapping[str, float] = field(default_factory=dict)  # metric -> value
    quality_labels: int | None = None
    estimate: Mapping[str, float] = field(default_factory=dict)  # metric -> value


@dataclass(frozen=True)
class AlertGauge:
    name: str
    severity: str
    firing: bool


@dataclass(frozen=True)
class Gauges:
    """What the monitor of one environment knows after an evaluation."""

    env: str
    model: str
    versions: tuple[VersionGauges, ...] = ()
    alerts: tuple[AlertGauge, ...] = ()


def from_values(
    version: str,
    role: str,
    values: Mapping[str, float | None],
    *,
    window_end: float | None = None,
    drifted: Iterable[str] = (),
    quality_labels: int | None = None,
) -> VersionGauges:
    """One version's gauges from its window's values named as alert rules name them
    (``rows``, ``drift.share``, ``drift.<feature>``, ``missing.<feature>``,
    ``quality.accuracy``...: a window's checks by name); ``drifted``: the features that drifted.

    >>> v = from_values("3", "stable", {"rows": 500, "drift.share": 0.5, "drift.age": 0.3},
    ...                 drifted=["age"])
    >>> v.rows, v.drift_share, v.features
    (500, 0.5, (FeatureGauges(name='age', drift=0.3, drifted=True, missing=None),))
    """
    plain = {"drift.share", "drift.count", "missing.share", "violations.share", "rows"}
    drift: dict[str, float | None] = {}
    missing: dict[str, float | None] = {}
    quality: dict[str, float] = {}
    estimate: dict[str, float] = {}
    for name, value in values.items():
        head, _, tail = name.partition(".")
        if name in plain or not tail:
            continue
        if head == "drift":
            drift[tail] = value
        elif head == "missing":
            missing[tail] = value
        elif head in ("quality", "estimate") and value is not None:
            (quality if head == "quality" else estimate)[tail] = value
    flagged = set(drifted)
    names = sorted(drift.keys() | missing.keys() | flagged)
    count = values.get("drift.count")
    rows = values.get("rows")
    return VersionGauges(
        version=version,
        role=role,
        rows=int(rows) if rows is not None else 0,
        window_end=window_end,
        drift_share=values.get("drift.share"),
        drift_count=int(count) if count is not None else None,
        features=tuple(
            FeatureGauges(f, drift.get(f), (f in flagged) if f in drift else None, missing.get(f))
            for f in names
        ),
        missing_share=values.get("missing.share"),
        prediction_drift=values.get("prediction_drift"),
        violations_share=values.get("violations.share"),
        quality=quality,
        quality_labels=quality_labels,
        estimate=estimate,
    )


def render(gauges: Gauges) -> str:
    """``gauges`` in the Prometheus text exposition format (version 0.0.4).

    >>> print(render(Gauges("prod", "clf", (VersionGauges("3", "stable", 500),))), end="")
    # HELP conveyor_monitor_window_rows Rows in the last window the monitor evaluated.
    # TYPE conveyor_monitor_window_rows gauge
    conveyor_monitor_window_rows{env="prod",model="clf",version="3",role="stable"} 500
    """
    samples: dict[str, list[str]] = {name: [] for name in NAMES}

    def add(name: str, base: str, value: float | None, **extra: str) -> None:
        if value is None:
            return
        labels = base + "".join(f',{k}="{_escape(v)}"' for k, v in extra.items())
        samples[name].append(f"{name}{{{labels}}} {_number(value)}")

    env, model = _escape(gauges.env), _escape(gauges.model)
    versions = [v for v in gauges.versions if v.role in ROLES][:MAX_VERSIONS]
    for v in versions:
        base = f'env="{env}",model="{model}",version="{_escape(v.version)}",role="{v.role}"'
        add("conveyor_monitor_window_rows", base, v.rows)
        add("conveyor_monitor_window_end_timestamp_seconds", base, v.window_end)
        add("conveyor_monitor_drift_share", base, v.drift_share)
        add("conveyor_monitor_drift_count", base, v.drift_count)
        add("conveyor_monitor_missing_share", base, v.missing_share)
        for f in sorted(v.features, key=lambda f: f.name)[:MAX_FEATURES]:
            add("conveyor_monitor_feature_drift", base, f.drift, feature=f.name)
            drifted = None if f.drifted is None else int(f.drifted)
            add("conveyor_monitor_feature_drifted", base, drifted, feature=f.name)
            add("conveyor_monitor_missing_share", base, f.missing, feature=f.name)
        add("conveyor_monitor_prediction_drift", base, v.prediction_drift)
        add("conveyor_monitor_violations_share", base, v.violations_share)
        for metric in QUALITY_METRICS:
            add("conveyor_monitor_quality", base, v.quality.get(metric), metric=metric)
        add("conveyor_monitor_quality_labels", base, v.quality_labels)
        for metric in QUALITY_METRICS:
            add("conveyor_monitor_estimate", base, v.estimate.get(metric), metric=metric)
    for a in sorted(gauges.alerts, key=lambda a: a.name)[:MAX_ALERTS]:
        base = f'env="{env}",model="{model}"'
        add("conveyor_monitor_alert_firing", base, int(a.firing), alertname=a.name,
            severity=a.severity)  # fmt: skip
    out: list[str] = []
    for name, lines in samples.items():
        if lines:
            out += [f"# HELP {name} {NAMES[name]}", f"# TYPE {name} gauge", *lines]
    return "".join(line + "\n" for line in out)


def path(root: Path, env: str) -> Path:
    """Where the gauges of environment ``env`` of the project at ``root`` are kept."""
    if not _ENV.fullmatch(env) or env in (".", ".."):
        raise ConfigError(f"{env!r} is not an environment's name (letters, digits, ._-)")
    return root / CONTROL_DIR / "monitor" / env / FILE


def write(root: Path, gauges: Gauges) -> Path:
    """Replace the environment's gauges file with ``gauges``, whole or not at all; its path."""
    target = path(root, gauges.env)
    write_bytes(target, render(gauges).encode(), parents=True)
    return target


def read(root: Path, env: str) -> str:
    """The environment's gauges as the server appends them to ``/metrics``: the file's text,
    or "" when it is missing, larger than :data:`MAX_BYTES`, or not made of
    ``conveyor_monitor_*`` gauges line by line. A file unchanged since the last call (same
    inode, time and size: :func:`write` renames a new file in) is not read again."""
    try:
        target = path(root, env)
        with open(target, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > MAX_BYTES:
                return ""
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            known = _READ.get(target)
            if known is not None and known[0] == key:
                return known[1]
            data = f.read(MAX_BYTES + 1)
    except (OSError, ConfigError):
        return ""
    text = ""
    if len(data) <= MAX_BYTES:
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            decoded = ""
        text = decoded if valid(decoded) else ""
    if len(_READ) >= 64:  # one entry per environment a process serves; bounded all the same
        _READ.clear()
    _READ[target] = (key, text)
    return text


# path -> ((device, inode, mtime, size), the text read): validating a large file costs ~10 ms
_READ: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


def valid(text: str) -> bool:
    """Whether ``text`` is an exposition of ``conveyor_monitor_*`` gauges only, each line
    whole (the last one ended), every sample's family declared gauge before it."""
    if text and not text.endswith("\n"):
        return False
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            if not _HELP.fullmatch(line):
                return False
        elif line.startswith("# TYPE "):
            found = _TYPE.fullmatch(line)
            if found is None:
                return False
            typed.add(found.group(1))
        else:
            sample = _SAMPLE.fullmatch(line)
            if sample is None or sample.group(1) not in typed:
                return False
    return True


_ENV = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME = r"(conveyor_monitor_[a-z_]{1,64})"
_HELP = re.compile(rf"# HELP {_NAME} [^\n]*")
_TYPE = re.compile(rf"# TYPE {_NAME} gauge")
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]{0,63}="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf"
_SAMPLE = re.compile(rf"{_NAME}(?:\{{{_LABEL}(?:,{_LABEL})*\}})? (?:{_VALUE})")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
