"""What the rollout controller sees of a server's traffic: its ``/metrics``, read twice.

    text = scrape(url)                       # the server's exposition (summed over its workers)
    samples = parse(text)                    # {(name, labels): value}
    changed = delta(before, after)           # what happened between two scrapes
    stable, candidate, agreement = sides(changed, "clf")

Analysis compares the two versions on the same interval, so it works on differences between
two scrapes, never on totals since the server started. A total that went down is a counter
reset (the server restarted): the new total is then all that happened since. A histogram is
judged whole: when any of its series (a bucket, ``_sum``, ``_count``) went down, all of them
restarted, so that its buckets never disagree with its count.

The split by side follows the ``role`` label: ``stable`` answers for the stable side;
``candidate`` (canary, A/B) and ``shadow`` (the copies a shadow rollout sends) for the
candidate side. Only the prediction endpoints count (metadata and readiness probes are not the
model's traffic); a 5xx answer is an error of the version that answered. Agreement counts the
shadow copies compared: an error of the copy is compared and did not agree.

The parser reads what :mod:`conveyor.serve.metrics` writes (counters, gauges, histograms with
``le``, escaped label values), which is Prometheus' text format without timestamps or exemplars.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping

from conveyor.deploy.analysis import Observations, Side
from conveyor.foundation.errors import ConveyorError

__all__ = [
    "PREDICTION_ENDPOINTS",
    "Observations",
    "ScrapeError",
    "Series",
    "Side",
    "delta",
    "parse",
    "scrape",
    "series",
    "sides",
]

Series = tuple[str, tuple[tuple[str, str], ...]]  # (name, labels sorted by name)
Samples = dict[Series, float]

# The endpoints whose requests are predictions: the protocols', a shadow's copies (answered by
# the candidate, compared, never returned) and a candidate's failovers (a request its process
# was gone for: an error of the candidate's, answered by stable)
PREDICTION_ENDPOINTS = frozenset({"infer", "invocations", "shadow", "failover"})
SIDE_OF_ROLE = {"stable": "stable", "candidate": "candidate", "shadow": "candidate"}

REQUESTS = "conveyor_requests_total"
LATENCY = "conveyor_request_duration_seconds_bucket"
COMPARISONS = "conveyor_shadow_comparisons_total"
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


class ScrapeError(ConveyorError):
    """The server's metrics could not be read, or are not Prometheus' text format."""


def scrape(url: str, timeout: float = 5.0) -> str:
    """The exposition of the server at ``url`` (its address, or its metrics endpoint)."""
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    hint = "is the server running there? (`conveyor serve --env ENV` starts it)"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw: bytes = resp.read()
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"{url} answered {exc.code} {exc.reason}", hint=hint) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"cannot read the metrics at {url}: {reason}", hint=hint) from exc
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ScrapeError(f"{url} did not answer text", hint=hint) from exc


def parse(text: str) -> Samples:
    """Every sample of an exposition, by series."""
    samples: Samples = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            series, value = _sample(line)
        except ValueError as exc:
            raise ScrapeError(
                f"line {number} of the metrics is not a Prometheus sample: {exc}: {line[:120]!r}",
                hint="point the controller at a conveyor server's /metrics",
            ) from None
        samples[series] = value
    return samples


def series(name: str, **labels: str) -> Series:
    """The key of a sample: ``series("conveyor_requests_total", model="clf", ...)``."""
    return name, tuple(sorted(labels.items()))


def delta(before: Mapping[Series, float], after: Mapping[Series, float]) -> Samples:
    """What each counter (and histogram) of ``after`` counted since ``before``; a series that
    is new, or restarted, counts its whole ``after`` value."""
    restarted = {
        _group(series) for series, value in after.items() if value < before.get(series, 0.0)
    }
    return {
        series: value if _group(series) in restarted else value - before.get(series, 0.0)
        for series, value in after.items()
    }


def sides(
    changed: Mapping[Series, float],
    model: str,
    *,
    endpoints: frozenset[str] = PREDICTION_ENDPOINTS,
) -> tuple[Side, Side, tuple[int, int]]:
    """The stable and candidate sides of ``model`` in a :func:`delta`, and the shadow copies'
    (agreed, compared)."""
    requests: defaultdict[str, float] = defaultdict(float)
    errors: defaultdict[str, float] = defaultdict(float)
    cumulative: dict[str, defaultdict[float, float]] = {
        "stable": defaultdict(float),
        "candidate": defaultdict(float),
    }
    agreed = compared = 0.0
    for (name, pairs), value in changed.items():
        if name not in (REQUESTS, LATENCY, COMPARISONS):
            continue
        labels = dict(pairs)
        if labels.get("model") != model:
            continue
        if name == COMPARISONS:
            compared += value
            agreed += value if labels.get("result") == "agree" else 0.0
            continue
        side = SIDE_OF_ROLE.get(labels.get("role", ""))
        if side is None or labels.get("endpoint") not in endpoints:
            continue
        if name == REQUESTS:
            requests[side] += value
            errors[side] += value if labels.get("status", "").startswith("5") else 0.0
        else:
            cumulative[side][float(labels["le"])] += value
    stable, candidate = (
        Side(
            requests=round(requests[side]),
            errors=round(errors[side]),
            latency_buckets=_per_bucket(cumulative[side]),
        )
        for side in ("stable", "candidate")
    )
    return stable, candidate, (round(agreed), round(compared))


def _per_bucket(cumulative: Mapping[float, float]) -> tuple[tuple[float, float], ...]:
    """Prometheus' cumulative ``le`` counts as counts per bucket, +Inf last."""
    out: list[tuple[float, float]] = []
    below = 0.0
    for upper in sorted(cumulative):
        out.append((upper, cumulative[upper] - below))
        below = cumulative[upper]
    if out and not math.isinf(out[-1][0]):
        out.append((math.inf, 0.0))
    return tuple(out)


def _group(series: Series) -> Series:
    """The series that restart together: a histogram's buckets, sum and count."""
    name, labels = series
    for part in _HISTOGRAM_PARTS:
        if name.endswith(part):
            return name[: -len(part)], tuple(kv for kv in labels if kv[0] != "le")
    return series


def _sample(line: str) -> tuple[Series, float]:
    brace = line.find("{")
    space = line.find(" ")
    labels: list[tuple[str, str]] = []
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], _labels(line, brace + 1, labels)
    elif space != -1:
        name, rest = line[:space], line[space:]
    else:
        raise ValueError("no value")
    if not name or not all(c.isalnum() or c in "_:" for c in name):
        raise ValueError(f"bad metric name {name!r}")
    fields = rest.split()
    if not 1 <= len(fields) <= 2:  # a value, and optionally a timestamp
        raise ValueError("expected a value after the series")
    return (name, tuple(sorted(labels))), float(fields[0])


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(line: str, i: int, out: list[tuple[str, str]]) -> str:
    """Read ``name="value",...}`` from ``line[i:]`` into ``out``; the text after the brace."""
    while True:
        while i < len(line) and line[i] in " ,":
            i += 1
        if i < len(line) and line[i] == "}":
            return line[i + 1 :]
        equals = line.find("=", i)
        if equals == -1 or equals + 1 >= len(line) or line[equals + 1] != '"':
            raise ValueError('a label needs name="value"')
        key = line[i:equals].strip()
        value: list[str] = []
        i = equals + 2
        while True:
            if i >= len(line):
                raise ValueError("a label value is not closed")
            char = line[i]
            if char == "\\":
                escaped = line[i + 1 : i + 2]
                value.append(_ESCAPES.get(escaped, "\\" + escaped))
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                value.append(char)
                i += 1
        out.append((key, "".join(value)))
