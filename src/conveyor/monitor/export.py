"""The monitor's alerts as a Prometheus rule file, their promtool unit tests, and a Grafana
dashboard: for a team whose alerting already runs on Prometheus and Alertmanager.

    prometheus_rules(monitors)       -> the rule file: recording rules, one alert per alerts: entry
    rule_tests(monitors)             -> promtool unit tests: each alert fires after its for:, and
                                        stays quiet on values that do not meet its when:
    grafana_dashboard(monitor, env)  -> a dashboard (Grafana's JSON model)
    write_prometheus(out, monitors)  -> out/conveyor-rules.yml, out/conveyor-rules.test.yml

An alert's ``when:`` is PromQL over the gauges of :mod:`conveyor.monitor.gauges` (per-window
metrics) or over the recording rules below (the server's own metrics: ``error_rate``,
``latency_p50``, ``latency_p99``, ``requests_per_second``); see :func:`when`. Its ``for:``
(:func:`hold`): a duration is kept; ``N windows`` of time is (N - 1) windows' time, since the
gauges change once per window and Prometheus counts from the first window that met the
condition; ``N windows`` of rows (which close at the traffic's pace, on no clock Prometheus
knows) is the monitor's own verdict, ``conveyor_monitor_alert_firing``, joined to the condition.

The server's series have no ``env`` label: the recording rules take it from
``conveyor_deployment_info`` of the same target (``job``, ``instance``), which a server started
with ``--env`` exports.

Pure: plain values in, dictionaries out; :func:`write_prometheus` and :func:`write_grafana`
write them. The Grafana dashboard is :mod:`conveyor.monitor.dashboard`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.foundation.atomic import write_bytes
from conveyor.monitor.config import Monitor, Window
from conveyor.monitor.dashboard import grafana_dashboard
from conveyor.monitor.rules import Condition, Rule

__all__ = [
    "LATENCY_BUCKETS",
    "RECORDED",
    "RULES_FILE",
    "TESTS_FILE",
    "grafana_dashboard",
    "hold",
    "prom_duration",
    "prometheus_rules",
    "rule_tests",
    "when",
    "write_grafana",
    "write_prometheus",
]

RULES_FILE = "conveyor-rules.yml"
TESTS_FILE = "conveyor-rules.test.yml"
DASHBOARD_FILE = "conveyor-dashboard.json"
# The server's latency buckets (conveyor.serve.metrics, which this layer does not import; a test
# checks that they agree): the rule tests build histograms from them.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

BY = "env, model, version, role"
# Each server series times 1, with the env of the deployment the same target serves.
_ENV_OF = (
    "* on (job, instance, model) group_left (env) "
    "group by (job, instance, model, env) (conveyor_deployment_info)"
)
RECORDED: dict[str, str] = {
    "conveyor:requests:rate5m": f"sum by ({BY}) (rate(conveyor_requests_total[5m]) {_ENV_OF})",
    "conveyor:errors:rate5m": (
        f'sum by ({BY}) (rate(conveyor_requests_total{{status=~"5.."}}[5m]) {_ENV_OF})'
    ),
    "conveyor:error_rate:ratio_rate5m": (
        "(conveyor:errors:rate5m or conveyor:requests:rate5m * 0) / conveyor:requests:rate5m"
    ),
    "conveyor:request_duration_seconds_bucket:rate5m": (
        f"sum by ({BY}, le) (rate(conveyor_request_duration_seconds_bucket[5m]) {_ENV_OF})"
    ),
    "conveyor:latency_p50:seconds5m": (
        "histogram_quantile(0.5, conveyor:request_duration_seconds_bucket:rate5m)"
    ),
    "conveyor:latency_p99:seconds5m": (
        "histogram_quantile(0.99, conveyor:request_duration_seconds_bucket:rate5m)"
    ),
}
"""Recording rules: name -> PromQL, in evaluation order (later ones read earlier ones)."""

_SERIES = {
    "drift.share": "conveyor_monitor_drift_share",
    "drift.count": "conveyor_monitor_drift_count",
    "prediction_drift": "conveyor_monitor_prediction_drift",
    "missing.share": "conveyor_monitor_missing_share",
    "violations.share": "conveyor_monitor_violations_share",
    "rows": "conveyor_monitor_window_rows",
    "error_rate": "conveyor:error_rate:ratio_rate5m",
    "latency_p50": "conveyor:latency_p50:seconds5m",
    "latency_p99": "conveyor:latency_p99:seconds5m",
    "requests_per_second": "conveyor:requests:rate5m",
}
_PREFIXED = {  # a metric's head -> (series, the label its tail names)
    "drift": ("conveyor_monitor_feature_drift", "feature"),
    "missing": ("conveyor_monitor_missing_share", "feature"),
    "quality": ("conveyor_monitor_quality", "metric"),
    "estimate": ("conveyor_monitor_estimate", "metric"),
}


@dataclass(frozen=True)
class Selector:
    """A series and the labels it is selected by (beyond ``env``)."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def promql(self, env: str) -> str:
        pairs = (("env", env), *self.labels)
        return f"{self.name}{{{','.join(f'{k}={_quote(v)}' for k, v in pairs)}}}"


def selector(metric: str) -> Selector:
    """The series a rule's metric is watched on.

    >>> selector("drift.age").promql("production")
    'conveyor_monitor_feature_drift{env="production",feature="age"}'
    """
    if metric in _SERIES:
        # missing.share is the sample without a feature label (feature="" selects it)
        labels = (("feature", ""),) if metric == "missing.share" else ()
        return Selector(_SERIES[metric], labels)
    head, _, tail = metric.partition(".")
    name, label = _PREFIXED[head]
    return Selector(name, ((label, tail),))


def when(condition: Condition, env: str) -> str:
    """A ``when:`` as PromQL over the series of environment ``env``.

    >>> from conveyor.monitor.rules import parse_when
    >>> when(parse_when("drift.share > 0.5"), "production")
    'conveyor_monitor_drift_share{env="production"} > 0.5'
    """
    return f"{selector(condition.metric).promql(env)} {condition.op} {_float(condition.value)}"


def hold(rule: Rule, window: Window) -> tuple[float, bool]:
    """An alert's ``for:`` in seconds for Prometheus, and whether its expression must also ask
    the monitor (``N windows`` of rows, N > 1)."""
    if not rule.hold.windows:
        return rule.hold.seconds, False
    if window.every is None:
        return 0.0, rule.hold.windows > 1
    return (rule.hold.windows - 1) * window.every, False


def prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration (milliseconds at most).

    >>> prom_duration(5400), prom_duration(0), prom_duration(1.5)
    ('1h30m', '0s', '1s500ms')
    """
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        n, ms = divmod(ms, size)
        out += f"{n}{unit}" if n else ""
    return out + (f"{ms}ms" if ms else "")


def prometheus_rules(
    monitors: Mapping[str, Monitor], models: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Prometheus rule file: the recording rules, then one group of alerts per monitored
    environment. ``models`` (env -> model, from ``deploy:``) adds a ``model`` label."""
    models = models or {}
    groups: list[dict[str, Any]] = [
        {
            "name": "conveyor-recording",
            "rules": [{"record": name, "expr": expr} for name, expr in RECORDED.items()],
        }
    ]
    for env, monitor in monitors.items():
        rules = [alert(rule, monitor, models.get(env)) for rule in monitor.alerts]
        if rules:
            groups.append({"name": f"conveyor-monitor-{env}", "rules": rules})
    return {"groups": groups}


def alert(rule: Rule, monitor: Monitor, model: str | None = None) -> dict[str, Any]:
    """One alerting rule."""
    env = monitor.env
    expr = when(rule.condition, env)
    seconds, ask_monitor = hold(rule, monitor.window)
    if ask_monitor:
        firing = Selector(
            "conveyor_monitor_alert_firing", (("alertname", rule.name),)
        ).promql(env)  # fmt: skip
        expr = f"{expr} and on (env, model) ({firing} == 1)"
    labels = {"severity": rule.severity, "env": env}
    if model is not None:
        labels["model"] = model
    made: dict[str, Any] = {"alert": rule.name, "expr": expr}
    if seconds:
        made["for"] = prom_duration(seconds)
    made["labels"] = labels
    made["annotations"] = describe(rule, monitor)
    return made


def describe(rule: Rule, monitor: Monitor) -> dict[str, str]:
    """Summary and description, with Prometheus's templates for the value and the version."""
    c = rule.condition
    env, name = _text(monitor.env), _text(rule.name)
    condition = _text(f"{c.metric} {c.op} {_float(c.value)}")
    out = {
        "summary": f"{env}: {condition} ({name})",
        "description": (
            f"{_text(c.metric)} is {{{{ $value }}}} for {{{{ $labels.model }}}} "
            f"version {{{{ $labels.version }}}} ({{{{ $labels.role }}}}) in {env}; "
            f"{name} fires when {condition} holds for {rule.hold}."
        ),
    }
    if rule.action:
        out["action"] = f"conveyor's monitor runs {rule.action}"
    return out


def write_prometheus(
    out: Path, monitors: Mapping[str, Monitor], models: Mapping[str, str] | None = None
) -> list[Path]:
    """Write the rule file and its unit tests into folder ``out``; their paths."""
    import yaml

    header = "# Generated by `conveyor monitor export prometheus`: edit conveyor.yaml instead.\n"
    made = []
    for name, doc in (
        (RULES_FILE, prometheus_rules(monitors, models)),
        (TESTS_FILE, rule_tests(monitors, models)),
    ):
        text = yaml.safe_dump(doc, sort_keys=False, width=1 << 16, allow_unicode=True)
        write_bytes(out / name, (header + text).encode(), parents=True)
        made.append(out / name)
    return made


def write_grafana(out: Path, monitor: Monitor | None, env: str) -> Path:
    target = out / DASHBOARD_FILE
    doc = grafana_dashboard(monitor, env)
    write_bytes(target, (json.dumps(doc, indent=2) + "\n").encode(), parents=True)
    return target


# --------------------------------------------------------------------------- promtool tests

STEP = 60  # the tests' sample and evaluation interval, in seconds
STEADY = 360  # from then on a 5m rate sees 6 samples: its value is exact, not extrapolated
TARGET = {"job": "conveyor", "instance": "127.0.0.1:8080"}


@dataclass(frozen=True)
class Scenario:
    """Input series that make a metric ``value`` (exactly, once steady)."""

    value: float
    series: tuple[tuple[str, str], ...]  # (series, values in promtool's notation)


def rule_tests(
    monitors: Mapping[str, Monitor], models: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """promtool unit tests of :func:`prometheus_rules`'s alerts: for each, input series that
    make it fire once its ``for:`` has passed (and not a step before), and series that keep it
    quiet. An alert that no series can fire (or keep quiet) gets the test it can have."""
    models = models or {}
    tests = []
    for env, monitor in monitors.items():
        for rule in monitor.alerts:
            tests += _tests(rule, monitor, models.get(env))
    return {
        "rule_files": [RULES_FILE],
        "evaluation_interval": prom_duration(STEP),
        "tests": tests,
    }


def _tests(rule: Rule, monitor: Monitor, model: str | None) -> list[dict[str, Any]]:
    env = monitor.env
    base = {"env": env, "model": model or "model", "version": "1", "role": "stable"}
    seconds, ask_monitor = hold(rule, monitor.window)
    fire_at = math.ceil(seconds / STEP) * STEP
    tick = not rule.condition.per_window
    at = fire_at + STEADY if tick else fire_at
    steps = at // STEP + 1
    candidates = _scenarios(rule.condition.metric, rule.condition.value, base, steps)
    # The scenarios nearest the threshold: a wrong threshold or operator fails a test.
    value = rule.condition.value
    holding = [s for s in candidates if rule.condition.holds(s.value)]
    others = [s for s in candidates if not rule.condition.holds(s.value)]
    firing = min(holding, key=lambda s: abs(s.value - value), default=None)
    quiet = min(others, key=lambda s: abs(s.value - value), default=None)
    said = {"env": env, "model": base["model"], "alertname": rule.name, "severity": rule.severity}
    monitor_says = (_series("conveyor_monitor_alert_firing", said), f"1x{steps}")
    labels = {**base, **dict(selector(rule.condition.metric).labels)}
    labels = {k: v for k, v in labels.items() if v}
    expected = {**labels, "severity": rule.severity, "env": env}
    if model is not None:
        expected["model"] = model
    named = f"{env}: {rule.name}"
    out = []
    if firing is not None:
        checks = [
            {
                "eval_time": prom_duration(at),
                "alertname": rule.name,
                "exp_alerts": [
                    {
                        "exp_labels": expected,
                        "exp_annotations": _expanded(rule, monitor, firing, base["model"]),
                    }
                ],
            }
        ]
        if fire_at and not tick:
            checks.insert(0, {"eval_time": prom_duration(at - STEP), "alertname": rule.name,
                              "exp_alerts": []})  # fmt: skip
        inputs = [*firing.series, *([monitor_says] if ask_monitor else [])]
        out.append(_test(f"{named} fires after {prom_duration(seconds)}", inputs, checks))
    if quiet is not None:
        inputs = [*quiet.series, *([monitor_says] if ask_monitor else [])]
        out.append(_test(f"{named} stays quiet at {_float(quiet.value)}", inputs,
                         [{"eval_time": prom_duration(at), "alertname": rule.name,
                           "exp_alerts": []}]))  # fmt: skip
    if ask_monitor and firing is not None:
        inputs = [*firing.series, (monitor_says[0], f"0x{steps}")]
        out.append(_test(f"{named} waits for the monitor's {rule.hold}", inputs,
                         [{"eval_time": prom_duration(at), "alertname": rule.name,
                           "exp_alerts": []}]))  # fmt: skip
    return out


def _test(name: str, inputs: list[tuple[str, str]], checks: list[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "interval": prom_duration(STEP),
        "input_series": [{"series": s, "values": v} for s, v in inputs],
        "alert_rule_test": checks,
    }


def _scenarios(metric: str, v: float, base: dict[str, str], steps: int) -> list[Scenario]:
    """Ways to make ``metric`` take values around ``v``."""
    n = steps
    if metric == "error_rate":
        # 100 requests a minute, of which just over and just under the threshold fail
        near = (math.ceil(100 * v) + 1, math.floor(100 * v) - 1, math.ceil(100 * v),
                math.floor(100 * v), 0, 100, 50)  # fmt: skip
        errors = dict.fromkeys(e for e in near if 0 <= e <= 100)
        return [_requests(base, n, 100 - e, e, rate=False) for e in errors]
    if metric == "requests_per_second":
        counts = {0, 1, math.floor(v), math.floor(v) + 1, math.ceil(v) + 1, math.floor(v) - 1}
        rates = sorted(c for c in counts if c >= 0)
        return [_requests(base, n, 60 * k, 0, rate=True) for k in rates]
    if metric in ("latency_p50", "latency_p99"):
        q = 0.5 if metric == "latency_p50" else 0.99
        return [_latency(base, n, q, i) for i in range(len(LATENCY_BUCKETS) + 1)]
    found = selector(metric)
    labels = {**base, **dict(found.labels)}
    series = _series(found.name, {k: x for k, x in labels.items() if x})
    values = [v, (v + 1) / 2, v / 2, v + 1, v - 1, 2 * v, v + abs(v) + 1, v - abs(v) - 1]
    return [Scenario(x, ((series, f"{_float(x)}x{n}"),)) for x in values]


def _requests(base: dict[str, str], n: int, ok: int, errors: int, *, rate: bool) -> Scenario:
    """``ok`` and ``errors`` requests a minute; read as requests/s (``rate``) or as the error
    rate, exact once steady."""
    series = [_deployment(base, n)]
    labels = {k: base[k] for k in ("model", "version", "role")}
    for status, per_minute in (("200", ok), ("500", errors)):
        if per_minute or status == "200":  # a server that answered none still counts 0
            at = {**labels, "endpoint": "invocations", "status": status, **TARGET}
            series.append((_series("conveyor_requests_total", at), f"0+{per_minute}x{n}"))
    ok_rate, errors_rate = _rate(ok), _rate(errors)
    total = ok_rate + errors_rate
    value = total if rate else errors_rate / total
    return Scenario(value, tuple(series))


def _deployment(base: dict[str, str], n: int) -> tuple[str, str]:
    """The series a server following the environment exports, which gives the env label."""
    info = {"env": base["env"], "model": base["model"], "stable": base["version"],
            "candidate": "", "status": "idle", "mode": "canary", **TARGET}  # fmt: skip
    return _series("conveyor_deployment_info", info), f"1x{n}"


def _latency(base: dict[str, str], n: int, q: float, bucket: int) -> Scenario:
    """One request a second, every one in ``bucket`` (its index; past the last: +Inf)."""
    series = [_deployment(base, n)]
    labels = {k: base[k] for k in ("model", "version", "role")}
    bounds = [*(_float(b) for b in LATENCY_BUCKETS), "+Inf"]
    for i, le in enumerate(bounds):
        at = {**labels, "endpoint": "invocations", "le": le, **TARGET}
        values = f"0+60x{n}" if i >= bucket else f"0x{n}"
        series.append((_series("conveyor_request_duration_seconds_bucket", at), values))
    if bucket == len(LATENCY_BUCKETS):
        value = LATENCY_BUCKETS[-1]  # Prometheus answers the highest finite bound
    else:  # histogram_quantile's interpolation, as Prometheus computes it
        start = LATENCY_BUCKETS[bucket - 1] if bucket else 0.0
        end = LATENCY_BUCKETS[bucket]
        count = _rate(60)
        value = start + (end - start) * ((q * count) / count)
    return Scenario(value, tuple(series))


def _rate(per_minute: int) -> float:
    """rate(...[5m]) of a counter growing by ``per_minute`` each minute, as Prometheus 2
    computes it once steady: 6 samples over [t - 5m, t], nothing to extrapolate."""
    increase = 5 * per_minute
    factor = (300 / 300) / 300  # (extrapolated / sampled interval) / the range's seconds
    return increase * factor


def _expanded(rule: Rule, monitor: Monitor, scenario: Scenario, model: str) -> dict[str, str]:
    """The annotations as Prometheus expands them for version 1 of ``model``, stable, at the
    scenario's value."""
    out = {}
    for key, text in describe(rule, monitor).items():
        for placeholder, value in (
            ("{{ $value }}", go_float(scenario.value)),
            ("{{ $labels.model }}", model),
            ("{{ $labels.version }}", "1"),
            ("{{ $labels.role }}", "stable"),
        ):
            text = text.replace(placeholder, value)
        out[key] = text
    return out


def go_float(value: float) -> str:
    """``value`` as Go's ``%v`` prints a float64 (Prometheus's templates): the shortest
    digits that read back, in exponent form below 1e-4 or from 1e6.

    >>> go_float(0.5), go_float(1e-05), go_float(123456.0), go_float(1234567.0)
    ('0.5', '1e-05', '123456', '1.234567e+06')
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    digits, exponent = _shortest(value)
    sign = "-" if value < 0 else ""
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest(value: float) -> tuple[str, int]:
    """The shortest decimal digits of ``|value|`` and its exponent (d.ddd x 10^exponent)."""
    text = f"{abs(value)!r}"
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    frac = "" if frac == "0" else frac
    digits = (whole + frac).lstrip("0")
    exponent = len(whole) - 1 + int(exp or 0) if whole != "0" else 0
    if whole == "0":
        exponent = -(len(frac) - len(frac.lstrip("0"))) - 1 + int(exp or 0)
    return digits.rstrip("0") or "0", exponent


def _series(name: str, labels: Mapping[str, str]) -> str:
    return f"{name}{{{','.join(f'{k}={_quote(v)}' for k, v in labels.items())}}}"


def _quote(value: str) -> str:
    """A PromQL string literal (also the series notation of promtool's tests)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _float(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _text(value: str) -> str:
    """User text placed in an annotation, kept from reading as a template."""
    return value.replace("{{", "{ {").replace("}}", "} }")
