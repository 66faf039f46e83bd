"""The server's counters and histograms, and their Prometheus text exposition.

    conveyor_requests_total{model,version,role,endpoint,status}     counter
    conveyor_request_duration_seconds{model,version,role,endpoint}  histogram
    conveyor_batch_size{model,version,role}                         histogram (rows per model call)
    conveyor_requests_in_flight{model}                              gauge
    conveyor_model_reloads_total{model,role,result}                 counter
    conveyor_model_info{model,version,role,uri}                     gauge (1 for a served version)
    conveyor_prediction_log_dropped_total                           counter (records not logged)
    conveyor_prediction_log_pending_bytes                           gauge (records not yet written)
    conveyor_shadow_comparisons_total{model,version,result}         counter (rows of shadow copies)
    conveyor_shadow_dropped_total{model}                            counter (copies not made)
    conveyor_deployment_info{env,model,stable,candidate,status,mode} gauge (1 for the record served)
    conveyor_deployment_weight{env,model}                           gauge (percent to the candidate)
    conveyor_rollout_events_total{env,kind}                         counter (the store's events)
    conveyor_rollout_step{env}                                      gauge (the record's step)
    conveyor_rollout_failures{env}                                  gauge (failed analyses in a row)
    conveyor_rollout_analysis_timestamp_seconds{env}                gauge (the last analysis's time)
    conveyor_rollout_check_value{env,metric,side}                   gauge (the last analysis's)
    conveyor_rollout_check_threshold{env,metric}                    gauge
    conveyor_rollout_check_samples{env,metric,side}                 gauge
    conveyor_rollout_check_verdict{env,metric,verdict}              gauge (1 for the verdict given)
    conveyor_monitor_window_rows{env,model,version,role}            gauge (the monitor's, below)
    conveyor_monitor_window_end_timestamp_seconds{env,model,version,role}   gauge
    conveyor_monitor_drift_share, _drift_count{env,model,version,role}      gauges
    conveyor_monitor_feature_drift, _feature_drifted{...,feature}           gauges
    conveyor_monitor_missing_share{env,model,version,role[,feature]}        gauge
    conveyor_monitor_prediction_drift, _violations_share{env,model,version,role}  gauges
    conveyor_monitor_quality, _estimate{env,model,version,role,metric}      gauges
    conveyor_monitor_quality_labels{env,model,version,role}                 gauge
    conveyor_monitor_alert_firing{env,model,alertname,severity}             gauge

``role`` is the part a version plays for its model: ``stable``, ``candidate`` or ``shadow``
(:data:`conveyor.serve.predictor.ROLES`), so that two versions of one model served side by side
are told apart in every series. Requests in flight are counted by model alone: a queued request
is answered by the version loaded when its batch runs, not when it arrived.

A shadow copy (:mod:`conveyor.serve.router`) is counted in the request series with role
``shadow`` and endpoint ``shadow`` (its latency and its errors are the candidate's side of an
analysis before it answers anyone), and its rows compared with the primary's answer in
``conveyor_shadow_comparisons_total``: ``agree``, ``disagree``, or ``error`` (the copy failed; its
rows counted). The deployment series say which record the server applies, and the share of
requests it sends to the candidate now (0 while the candidate is not loaded).

The rollout series (a server started with ``--env``) are the store's, not the server's own:
``conveyor_rollout_events_total`` counts the environment's events of each kind of
:data:`~conveyor.registry.deployment.EVENT_KINDS` (``rollout.aborted``...), every kind from 0;
the check series are the last ``rollout.analysis`` event's: each check's value on each
``side`` (``stable``, ``candidate``; none when it was not measured), its threshold, its samples,
and its verdict (1 for the one given, 0 for the other two of pass, fail and inconclusive).
They follow the record's revision (:mod:`conveyor.serve.rollout`).

The monitor's series (a server started with ``--env``) are the monitor's last verdicts on the
environment's traffic (:mod:`conveyor.monitor.gauges`: drift, missing values, quality, alerts
firing): the file the monitor writes is read at each scrape and appended as it is, or not at all
when it is missing, too large or not made of ``conveyor_monitor_*`` gauges.

Plain dictionaries keyed by label values: observing a request is a few dictionary operations.
With ``--workers N`` each worker process counts its own requests; a scrape answers the sum over
workers (:func:`merge`, shared by :mod:`conveyor.serve.workers`), except for the counts every
worker reads alike from the store (:data:`STORE_COUNTERS`), which are not summed.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.monitor import gauges
from conveyor.registry.deployment import VERDICTS
from conveyor.serve.rollout import Rollout

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        row = self.counts.get(labels)
        if row is None:  # per bucket (not cumulative), then +Inf, sum
            row = self.counts[labels] = [0] * (len(self.buckets) + 2)
        row[bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def render(self, name: str, names: tuple[str, ...]) -> list[str]:
        lines = []
        for labels, row in sorted(self.counts.items()):
            base = _labels(names, labels)
            running = 0.0
            bounds = [_number(b) for b in self.buckets] + ["+Inf"]
            for le, count in zip(bounds, row[:-1], strict=True):
                running += count
                lines.append(f'{name}_bucket{{{base},le="{le}"}} {_number(running)}')
            lines.append(f"{name}_sum{{{base}}} {_number(row[-1])}")
            lines.append(f"{name}_count{{{base}}} {_number(running)}")
        return lines


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batches = Histogram(BATCH_BUCKETS)
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        self.reloads: defaultdict[tuple[str, ...], int] = defaultdict(int)  # (model, role, result)
        self.models: dict[str, tuple[str, str, str]] = {}  # uri -> (model, version, role)
        self.log_dropped = 0  # the prediction log's, copied at each scrape
        self.log_pending_bytes = 0
        self.shadow: defaultdict[tuple[str, str, str], int] = defaultdict(int)  # (m, v, result)
        self.shadow_dropped: defaultdict[str, int] = defaultdict(int)
        # (env, model, stable, candidate, status, mode) of the record applied, and the weight
        self.deployment: tuple[str, str, str, str, str, str] | None = None
        self.deployment_weight = 0.0
        self.rollout: Rollout | None = None  # an environment's rollout, from the store
        self.monitored: tuple[Path, str] | None = None  # (root, env) whose gauges are appended

    def request(
        self,
        model: str,
        version: str,
        endpoint: str,
        status: int,
        seconds: float,
        role: str = "stable",
    ) -> None:
        self.requests[(model, version, role, endpoint, str(status))] += 1
        self.latency.observe((model, version, role, endpoint), seconds)

    def batch(self, model: str, version: str, rows: int, role: str = "stable") -> None:
        self.batches.observe((model, version, role), rows)

    def serving(self, uri: str, model: str, version: str, role: str = "stable") -> None:
        """What the model named by ``uri`` answers with from now on."""
        self.models[uri] = (model, version, role)

    def reload(self, model: str, result: str, role: str = "stable") -> None:
        """An attempt to load another version for a served model: ``loaded`` or ``failed``."""
        self.reloads[(model, role, result)] += 1

    def forget(self, uri: str) -> None:
        """The model named by ``uri`` is served no more (a candidate dropped)."""
        self.models.pop(uri, None)

    def compared(self, model: str, version: str, agreed: int, disagreed: int) -> None:
        """Rows of a shadow copy answered by ``version``, compared with the primary's."""
        if agreed:
            self.shadow[(model, version, "agree")] += agreed
        if disagreed:
            self.shadow[(model, version, "disagree")] += disagreed

    def copy_failed(self, model: str, version: str, rows: int) -> None:
        self.shadow[(model, version, "error")] += rows

    def copy_dropped(self, model: str) -> None:
        """A copy not made: too many were in flight already."""
        self.shadow_dropped[model] += 1

    def deployed(
        self,
        env: str,
        model: str,
        stable: str,
        candidate: str,
        status: str,
        mode: str,
        weight: float,
    ) -> None:
        self.deployment = (env, model, stable, candidate, status, mode)
        self.deployment_weight = weight

    def rolled(self, rollout: Rollout) -> None:
        """The environment's rollout as the store says now (its events, its last analysis)."""
        self.rollout = rollout

    def monitor(self, root: Path, env: str) -> None:
        """Append the monitor's gauges of environment ``env`` of the project at ``root`` to
        every exposition from now on."""
        self.monitored = (root, env)

    def render(self) -> str:
        out = [
            "# HELP conveyor_requests_total Requests answered by model, version, role, endpoint, "
            "status.",
            "# TYPE conveyor_requests_total counter",
        ]
        names = ("model", "version", "role", "endpoint", "status")
        out += [
            f"conveyor_requests_total{{{_labels(names, k)}}} {v}"
            for k, v in sorted(self.requests.items())
        ]
        out += [
            "# HELP conveyor_request_duration_seconds Time from request to response.",
            "# TYPE conveyor_request_duration_seconds histogram",
            *self.latency.render(
                "conveyor_request_duration_seconds", ("model", "version", "role", "endpoint")
            ),
            "# HELP conveyor_batch_size Rows in each call of the model.",
            "# TYPE conveyor_batch_size histogram",
            *self.batches.render("conveyor_batch_size", ("model", "version", "role")),
            "# HELP conveyor_requests_in_flight Requests received and not yet answered.",
            "# TYPE conveyor_requests_in_flight gauge",
        ]
        out += [
            f'conveyor_requests_in_flight{{model="{_escape(m)}"}} {n}'
            for m, n in sorted(self.in_flight.items())
        ]
        out += [
            "# HELP conveyor_model_reloads_total Attempts to load a new version of a served alias.",
            "# TYPE conveyor_model_reloads_total counter",
        ]
        out += [
            f"conveyor_model_reloads_total{{{_labels(('model', 'role', 'result'), k)}}} {v}"
            for k, v in sorted(self.reloads.items())
        ]
        out += [
            "# HELP conveyor_model_info The version each served model answers with.",
            "# TYPE conveyor_model_info gauge",
        ]
        out += [
            f"conveyor_model_info{{{_labels(_INFO, (m, v, r, u))}}} 1"
            for u, (m, v, r) in sorted(self.models.items(), key=lambda item: (item[1], item[0]))
        ]
        out += self._deployment_lines()
        if self.rollout is not None:
            out += _rollout_lines(self.rollout)
        out += [
            "# HELP conveyor_prediction_log_dropped_total Predictions the log could not keep "
            "(it could not write, or its buffer was full).",
            "# TYPE conveyor_prediction_log_dropped_total counter",
            f"conveyor_prediction_log_dropped_total {self.log_dropped}",
            "# HELP conveyor_prediction_log_pending_bytes Predictions waiting to be written.",
            "# TYPE conveyor_prediction_log_pending_bytes gauge",
            f"conveyor_prediction_log_pending_bytes {self.log_pending_bytes}",
        ]
        if self.monitored is not None:
            text = gauges.read(*self.monitored)  # a small file, validated, or ""
            if text:
                out.append(text.rstrip("\n"))
        return "\n".join(out) + "\n"

    def _deployment_lines(self) -> list[str]:
        out = [
            "# HELP conveyor_shadow_comparisons_total Rows of shadow copies compared with the "
            "primary's answer.",
            "# TYPE conveyor_shadow_comparisons_total counter",
        ]
        out += [
            f"conveyor_shadow_comparisons_total{{{_labels(('model', 'version', 'result'), k)}}} {v}"
            for k, v in sorted(self.shadow.items())
        ]
        out += [
            "# HELP conveyor_shadow_dropped_total Shadow copies not made (too many in flight).",
            "# TYPE conveyor_shadow_dropped_total counter",
        ]
        out += [
            f'conveyor_shadow_dropped_total{{model="{_escape(m)}"}} {n}'
            for m, n in sorted(self.shadow_dropped.items())
        ]
        if self.deployment is None:
            return out
        env, model = self.deployment[:2]
        return [
            *out,
            "# HELP conveyor_deployment_info The deployment record this server applies.",
            "# TYPE conveyor_deployment_info gauge",
            f"conveyor_deployment_info{{{_labels(_DEPLOYMENT, self.deployment)}}} 1",
            "# HELP conveyor_deployment_weight Percent of requests sent to the candidate now.",
            "# TYPE conveyor_deployment_weight gauge",
            f"conveyor_deployment_weight{{{_labels(('env', 'model'), (env, model))}}} "
            f"{_number(self.deployment_weight)}",
        ]


def _rollout_lines(r: Rollout) -> list[str]:
    env = _escape(r.env)
    out = [
        "# HELP conveyor_rollout_events_total Events of the environment's rollouts in the "
        "metadata store, by kind.",
        "# TYPE conveyor_rollout_events_total counter",
        *(
            f'conveyor_rollout_events_total{{env="{env}",kind="{_escape(k)}"}} {n}'
            for k, n in r.events
        ),
    ]
    if r.step is not None and r.failures is not None:
        out += _gauge("conveyor_rollout_step", "The step of the strategy the rollout is at.")
        out.append(f'conveyor_rollout_step{{env="{env}"}} {r.step}')
        out += _gauge("conveyor_rollout_failures", "Failed analyses in a row.")
        out.append(f'conveyor_rollout_failures{{env="{env}"}} {r.failures}')
    if r.analysed is None:
        return out
    out += _gauge(
        "conveyor_rollout_analysis_timestamp_seconds",
        "When the last analysis was made (Unix time).",
    )
    out.append(f'conveyor_rollout_analysis_timestamp_seconds{{env="{env}"}} {_number(r.analysed)}')
    values, thresholds, samples, verdicts = [], [], [], []
    for c in r.checks:
        at = f'env="{env}",metric="{_escape(c.metric)}"'
        for side, value in (("stable", c.stable), ("candidate", c.candidate)):
            if value is not None:
                values.append(
                    f'conveyor_rollout_check_value{{{at},side="{side}"}} {_number(value)}'
                )
        if c.threshold is not None:
            thresholds.append(f"conveyor_rollout_check_threshold{{{at}}} {_number(c.threshold)}")
        if c.samples is not None:
            for side, n in zip(("stable", "candidate"), c.samples, strict=True):
                samples.append(f'conveyor_rollout_check_samples{{{at},side="{side}"}} {n}')
        verdicts += [
            f'conveyor_rollout_check_verdict{{{at},verdict="{v}"}} {int(v == c.verdict)}'
            for v in VERDICTS
        ]
    return [
        *out,
        *_gauge("conveyor_rollout_check_value", "Each check's value on each side, last analysis."),
        *values,
        *_gauge("conveyor_rollout_check_threshold", "Each check's limit, last analysis."),
        *thresholds,
        *_gauge(
            "conveyor_rollout_check_samples", "Each check's samples on each side, last analysis."
        ),
        *samples,
        *_gauge(
            "conveyor_rollout_check_verdict", "1 for each check's verdict in the last analysis."
        ),
        *verdicts,
    ]


def _gauge(name: str, doc: str) -> list[str]:
    return [f"# HELP {name} {doc}", f"# TYPE {name} gauge"]


_DEPLOYMENT = ("env", "model", "stable", "candidate", "status", "mode")
_INFO = ("model", "version", "role", "uri")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


# -- snapshots, merged across worker processes ---------------------------------------------------
#
# With ``--workers N`` every worker counts its own requests; :mod:`conveyor.serve.workers` shares
# them through files. What is shared is the exposition itself, cut into samples: a series added
# to :meth:`Metrics.render` is merged with no change here, by the type its ``# TYPE`` line says.

SUMMED_GAUGES = frozenset({"conveyor_requests_in_flight", "conveyor_prediction_log_pending_bytes"})
"""Gauges that are each worker's share of one total; every other gauge is a fact (which version
is served, a deployment's weight) that each worker states, merged as a union."""
STORE_COUNTERS = frozenset({"conveyor_rollout_events_total"})
"""Counters of what the metadata store holds, which every worker reads alike: a sum would count
each event once per worker. Merged as the highest value a running worker states (the one that
read the store last); a worker that stopped states nothing, its count being in the others'."""


@dataclass(frozen=True)
class Family:
    """One metric of an exposition: its samples as ``(series, value)``, where ``series`` is the
    sample's text before its value (``name{label="value",...}``), left as rendered: merging only
    needs it as a key, and every worker renders the same series the same way."""

    name: str
    kind: str  # counter | histogram | gauge | untyped
    help: str
    samples: tuple[tuple[str, float], ...]


def snapshot(metrics: Metrics) -> list[Family]:
    return families(metrics.render())


def families(text: str) -> list[Family]:
    """The families of an exposition :meth:`Metrics.render` wrote (no timestamps)."""
    found: list[Family] = []
    name, kind, doc = "", "untyped", ""
    samples: list[tuple[str, float]] = []

    def close() -> None:
        if name:
            found.append(Family(name, kind, doc, tuple(samples)))

    for line in text.splitlines():
        if line.startswith("# HELP "):
            close()
            name, _, doc = line[7:].partition(" ")
            kind, samples = "untyped", []
        elif line.startswith("# TYPE "):
            typed, _, kind = line[7:].partition(" ")
            if typed != name:  # a TYPE without its HELP starts a family too
                close()
                name, doc, samples = typed, "", []
        elif line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            if not name:
                name, kind, doc, samples = series.partition("{")[0], "untyped", "", []
            samples.append((series, float(value)))
    close()
    return found


def merge(live: Sequence[Sequence[Family]], gone: Sequence[Sequence[Family]] = ()) -> list[Family]:
    """One exposition from the snapshots of several workers.

    ``live`` are the snapshots of running workers, the answering worker's first; ``gone`` those of
    workers that stopped. Counters and histograms are summed over both: a worker that stopped
    answered its requests, and a total that went down would read as a counter reset to anything
    computing a rate. Gauges are the present: taken from ``live`` alone, summed for
    :data:`SUMMED_GAUGES`, else united (the first worker to state a series gives its value).
    :data:`STORE_COUNTERS` are the highest value a live worker states.
    """
    order: dict[str, Family] = {}
    values: dict[str, dict[str, float]] = {}
    for snap, alive in [(s, True) for s in live] + [(s, False) for s in gone]:
        for family in snap:
            known = order.setdefault(family.name, family)
            merged = values.setdefault(family.name, {})
            kind = known.kind
            if family.name in STORE_COUNTERS:
                for series, value in family.samples if alive else ():
                    merged[series] = max(merged.get(series, value), value)
            elif kind in ("counter", "histogram") or (alive and family.name in SUMMED_GAUGES):
                for series, value in family.samples:
                    merged[series] = merged.get(series, 0.0) + value
            elif alive:
                for series, value in family.samples:
                    merged.setdefault(series, value)
    return [
        Family(name, family.kind, family.help, tuple(values[name].items()))
        for name, family in order.items()
    ]


def exposition(merged: Sequence[Family]) -> str:
    out: list[str] = []
    for family in merged:
        if family.help:
            out.append(f"# HELP {family.name} {family.help}")
        out.append(f"# TYPE {family.name} {family.kind}")
        out += [f"{series} {_value(value)}" for series, value in family.samples]
    return "\n".join(out) + "\n"


def _value(value: float) -> str:
    if math.isfinite(value):
        return _number(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
