"""The shapes of the ``deploy:`` section (pydantic-core schemas, one per level) and the wording
of their mistakes: ``conveyor.yaml:LINE``, the key, the nearest valid key or value.

:mod:`conveyor.deploy.config` reads the section with them and keeps the rules a schema cannot
say. The schemas are built on first use, so a command that reads no ``deploy:`` never imports
pydantic-core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.validation import common_message

if TYPE_CHECKING:
    from conveyor.foundation.validation import Problem

Kind = Literal["canary", "ab", "shadow", "blue_green"]
# Where a rollout's candidate answers: a process of its own, the workers' (inline), or auto
CANDIDATE_PLACES = ("auto", "process", "inline")
Metric = Literal[
    "error_rate", "latency_p50", "latency_p99", "accuracy", "prediction_drift", "agreement"
]
KINDS: tuple[Kind, ...] = ("canary", "ab", "shadow", "blue_green")
METRICS: tuple[Metric, ...] = (
    "error_rate", "latency_p50", "latency_p99", "accuracy", "prediction_drift", "agreement",
)  # fmt: skip
# The threshold each check metric takes: exactly this one.
THRESHOLD: dict[str, str] = {
    "error_rate": "max_increase",
    "latency_p50": "max_ratio",
    "latency_p99": "max_ratio",
    "accuracy": "min_change",
    "prediction_drift": "max_psi",
    "agreement": "min",
}
AB_METRICS = ("accuracy", "error_rate")
# Webhook event names: the event kinds without their "rollout." prefix.
EVENTS = (
    "started", "step", "analysis", "paused", "resumed", "promoted", "aborted", "rolled_back",
    "verdict",
)  # fmt: skip
TARGETS = ("local", "kubernetes")
DEFAULT_EVENTS = ("started", "promoted", "aborted", "rolled_back")
EXAMPLE = (
    "deploy:\n  production:\n    model: classifier\n    strategy:\n      canary:\n"
    "        steps: [{weight: 10}, {pause: 30s}, {weight: 100}]"
)


def typos_over_missing(error: ConfigError) -> list[ConfigError]:
    """The parts of ``error``, less "needs 'model'" where "no key 'modle'" says it better."""
    from conveyor.foundation.validation import flatten

    parts = flatten([error])
    meant = {p.hint for p in parts if p.hint and p.hint.startswith("did you mean")}
    return [
        p
        for p in parts
        if not _needs(p.message) or f"did you mean {_needs(p.message)}?" not in meant
    ]


def _needs(message: str) -> str:
    """The key quoted in "... needs 'model'", or ""."""
    _, found, key = message.rpartition(" needs ")
    return key if found and key.startswith("'") else ""


CHECK_HINT = {
    "error_rate": "like {metric: error_rate, max_increase: 0.01}: at most 1 point more errors",
    "latency_p50": "like {metric: latency_p50, max_ratio: 1.25}: at most 25 % slower",
    "latency_p99": "like {metric: latency_p99, max_ratio: 1.25}: at most 25 % slower",
    "accuracy": "like {metric: accuracy, min_change: -0.02}: at most 2 points worse",
    "prediction_drift": "like {metric: prediction_drift, max_psi: 0.2}",
    "agreement": "like {metric: agreement, min: 0.95}: the share of equal answers",
}


def describe(problem: Problem, head: str, what: str, part: str) -> ConfigError:
    key, given = problem.key, problem.input
    if problem.type == "extra_forbidden":
        hint = did_you_mean(key, problem.choices)
        if key in ("secret", "token", "password"):
            hint = "secrets never go in conveyor.yaml: name an environment variable with secret_env"
        return ConfigError(
            f"{head}: {what} has no key {key!r}",
            hint=hint or f"keys: {', '.join(problem.choices)}",
        )
    if problem.type == "missing":
        return ConfigError(f"{head}: {what} needs {key!r}", hint=EXAMPLE)
    if problem.type == "literal_error":
        choices = _CHOICES.get((part, key), ())
        shown = given if isinstance(given, str) else repr(given)
        return ConfigError(
            f"{head}: {key}: {shown!r} is not one of {', '.join(choices)}",
            hint=did_you_mean(str(given), choices) or f"one of {', '.join(choices)}",
        )
    if problem.type.startswith("str"):
        return ConfigError(f"{head}: {key}: expected text, not {given!r}")
    bound = _BOUNDS.get(problem.type)
    if bound is not None:  # pydantic shows a float bound as 100.0
        word, ctx_key = bound
        return ConfigError(f"{head}: {key}: {word} {problem.ctx.get(ctx_key):g}, not {given!r}")
    return ConfigError(f"{head}: {key}: {common_message(problem)}")


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("above", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("below", "lt"),
}
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("check", "metric"): METRICS,
    ("ab", "metric"): AB_METRICS,
    ("environment", "target"): TARGETS,
    ("serve", "candidate"): CANDIDATE_PLACES,
    ("analysis", "on_deadline"): ("abort", "promote"),
}

# The shapes, as pydantic-core schemas: built on first use (a command without deploy: skips them)
_SCHEMAS: dict[str, tuple[Any, Any]] = {}


def schema(part: str) -> tuple[Any, Any]:
    if part not in _SCHEMAS:
        from pydantic_core import SchemaValidator
        from pydantic_core import core_schema as cs

        from conveyor.foundation.validation import field

        def number(**bounds: Any) -> Any:
            return cs.float_schema(strict=True, allow_inf_nan=False, **bounds)

        def whole(**bounds: Any) -> Any:
            return cs.int_schema(strict=True, **bounds)

        text = cs.str_schema(strict=True)
        flag = cs.bool_schema(strict=True)
        fraction = number(ge=0, le=1)
        level = number(ge=0.5, lt=1)
        fields: dict[str, dict[str, Any]] = {
            "environment": {
                "model": field(text, required=True),
                "target": field(cs.literal_schema(list(TARGETS)), "local"),
                "serve": field(cs.any_schema()),
                "strategy": field(cs.any_schema()),
                "analysis": field(cs.any_schema()),
                "webhooks": field(cs.any_schema()),
                "kubernetes": field(cs.any_schema()),
            },
            "serve": {
                "host": field(text, "127.0.0.1"),
                "port": field(whole(ge=1, le=65535), 8080),
                "workers": field(whole(ge=1, le=256), 1),
                "candidate": field(cs.literal_schema(list(CANDIDATE_PLACES)), "auto"),
            },
            "strategy": {
                **{k: field(cs.any_schema()) for k in KINDS},
                "kserve": field(flag, False),
            },
            "canary": {"steps": field(cs.any_schema(), required=True)},
            "step": {"weight": field(number(ge=0, le=100)), "pause": field(cs.any_schema())},
            "ab": {
                "split": field(number(gt=0, lt=100), 50.0),
                "sticky": field(text, ""),
                "metric": field(cs.literal_schema(list(AB_METRICS)), "accuracy"),
                "confidence": field(level, 0.95),
                "min_samples": field(whole(ge=1), 500),
            },
            "shadow": {
                "fraction": field(number(gt=0, le=1), 1.0),
                "min_agreement": field(fraction, 0.98),
                "duration": field(cs.any_schema(), "10m"),
            },
            "blue_green": {},
            "analysis": {
                "interval": field(cs.any_schema(), "1s"),
                "failure_limit": field(whole(ge=1), 1),
                "deadline": field(cs.any_schema(), "10m"),
                "on_deadline": field(cs.literal_schema(["abort", "promote"]), "abort"),
                "checks": field(cs.any_schema()),
            },
            "check": {
                "metric": field(cs.literal_schema(list(METRICS)), required=True),
                "max_increase": field(number(ge=-1, le=1)),
                "max_ratio": field(number(gt=0)),
                "min_change": field(number(ge=-1, le=1)),
                "max_psi": field(number(ge=0)),
                "min": field(fraction),
                "confidence": field(level, 0.95),
                "min_samples": field(whole(ge=1), 100),
            },
            "webhook": {
                "url": field(text, required=True),
                "events": field(cs.any_schema(), list(DEFAULT_EVENTS)),
                "secret_env": field(text, ""),
            },
            "kubernetes": {
                "namespace": field(text, "default"),
                "name": field(text, ""),
                "image": field(text, ""),
                "replicas": field(whole(ge=1, le=1000), 2),
                "resources": field(cs.any_schema()),
                "autoscale": field(cs.any_schema()),
                "service_monitor": field(flag, True),
                "read_only_root": field(flag, True),
                "argo": field(flag, True),
                "env": field(cs.any_schema()),
                "secret": field(text, ""),
                "secret_env": field(cs.any_schema()),
                "analysis_url": field(text, ""),
            },
            "resources": {
                "cpu": field(cs.any_schema(), "500m"),
                "memory": field(cs.any_schema(), "1Gi"),
            },
            "autoscale": {
                "min": field(whole(ge=1, le=1000), 2),
                "max": field(whole(ge=1, le=1000), 10),
                "cpu_percent": field(whole(ge=1, le=1000), 70),
            },
        }
        schema = cs.typed_dict_schema(fields[part], extra_behavior="forbid")
        _SCHEMAS[part] = (SchemaValidator(schema), schema)
    return _SCHEMAS[part]
