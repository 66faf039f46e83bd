"""The ``deploy:`` section of conveyor.yaml: where models are deployed, and how a new version
reaches the traffic.

    deploy:
      production:
        model: classifier            # its alias named like the environment marks the stable version
        target: local                # local (this release) or kubernetes
        serve: {host: 127.0.0.1, port: 8080, workers: 2, candidate: auto}
        strategy:
          canary:
            steps: [{weight: 10}, {pause: 30s}, {weight: 50}, {pause: 30s}, {weight: 100}]
          # ab:         {split: 50, sticky: header:x-user-id, metric: accuracy, min_samples: 500}
          # shadow:     {fraction: 1.0, min_agreement: 0.98, duration: 10m}
          # blue_green: {}
        analysis:
          interval: 1s
          failure_limit: 1
          deadline: 10m
          on_deadline: abort         # or promote
          checks:
            - {metric: error_rate, max_increase: 0.01}
            - {metric: latency_p99, max_ratio: 1.25}
        webhooks:
          - {url: "https://hooks.example/x", events: [promoted, aborted], secret_env: HOOK_SECRET}

Each level is a pydantic-core schema (:mod:`conveyor.deploy.shapes`); the rules a schema cannot
say (exactly one strategy, one of ``weight``/``pause`` in a step, the threshold each check
metric takes, durations) are Python. Every mistake names ``conveyor.yaml:LINE``, the key and the
nearest valid key or value, and all of them come in one error. Secrets are never in the file:
``secret_env`` names an environment variable. docs/deploy.md explains every key.

Importing this module registers the section with :mod:`conveyor.foundation.project`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from conveyor.deploy import k8s_config
from conveyor.deploy.errors import UnknownEnvironment
from conveyor.deploy.k8s_config import Kubernetes
from conveyor.deploy.shapes import (
    AB_METRICS,
    CHECK_HINT,
    DEFAULT_EVENTS,
    EVENTS,
    EXAMPLE,
    KINDS,
    METRICS,
    TARGETS,
    THRESHOLD,
    Kind,
    Metric,
    describe,
    schema,
    typos_over_missing,
)
from conveyor.foundation import project
from conveyor.foundation.durations import duration as duration
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from conveyor.foundation.validation import Problem
    from conveyor.foundation.yamlio import Located

__all__ = [
    "AB_METRICS", "EVENTS", "KINDS", "METRICS", "SECTION", "TARGETS", "THRESHOLD", "Analysis",
    "Check", "Environment", "Kubernetes", "Step", "Strategy", "Webhook", "duration",
    "environment", "environments", "parse",
]  # fmt: skip

SECTION = "deploy"
_ENV_NAME = re.compile(r"[a-z0-9_-]{1,64}")  # an alias: the environment names <model>@<env>
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Step:
    """One canary step: exactly one of ``weight`` (percent to the candidate) and ``pause``
    (seconds; None = until ``conveyor rollout resume`` or ``promote``)."""

    weight: float | None = None
    pause: float | None = None

    @property
    def waits_for_resume(self) -> bool:
        return self.weight is None and self.pause is None


@dataclass(frozen=True)
class Strategy:
    kind: Kind
    steps: tuple[Step, ...] = ()  # canary
    split: float = 50.0  # ab: percent to candidate
    sticky: str = ""  # ab: "header:x-user-id" | "cookie:uid" | "" (request id hash)
    metric: str = "accuracy"  # ab
    confidence: float = 0.95  # ab
    min_samples: int = 500  # ab: labelled answers per side for the verdict
    fraction: float = 1.0  # shadow: share of requests copied to the candidate
    min_agreement: float = 0.98  # shadow
    duration: float = 600.0  # shadow: seconds of copies before the verdict
    kserve: bool = False  # on Kubernetes, a canary carried out by a KServe InferenceService


@dataclass(frozen=True)
class Check:
    metric: Metric
    max_increase: float | None = None  # candidate - stable (error_rate)
    max_ratio: float | None = None  # candidate / stable (latency)
    min_change: float | None = None  # candidate - stable lower bound (accuracy, with confidence)
    max_psi: float | None = None  # prediction_drift
    min: float | None = None  # agreement
    confidence: float = 0.95
    min_samples: int = 100  # per side; fewer -> inconclusive

    @property
    def threshold(self) -> float:
        value = getattr(self, THRESHOLD[self.metric])
        return float(value) if value is not None else math.nan


DEFAULT_CHECKS = (Check("error_rate", max_increase=0.01), Check("latency_p99", max_ratio=1.25))
# A shadow's copies are batched and compared at a lower priority than the answers: their
# latency says nothing of the candidate's, so a shadow is judged on errors (and agreement)
SHADOW_CHECKS = (Check("error_rate", max_increase=0.01),)


@dataclass(frozen=True)
class Analysis:
    interval: float = 1.0
    failure_limit: int = 1
    deadline: float = 600.0
    on_deadline: Literal["abort", "promote"] = "abort"
    checks: tuple[Check, ...] = DEFAULT_CHECKS


@dataclass(frozen=True)
class Webhook:
    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS
    secret_env: str = ""


DEFAULT_STRATEGY = Strategy(
    "canary", (Step(weight=10), Step(pause=30), Step(weight=50), Step(pause=30), Step(weight=100))
)


@dataclass(frozen=True)
class Environment:
    name: str
    model: str
    target: Literal["local", "kubernetes"] = "local"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    strategy: Strategy = DEFAULT_STRATEGY
    analysis: Analysis = Analysis()
    webhooks: tuple[Webhook, ...] = ()
    candidate: Literal["auto", "process", "inline"] = "auto"  # serve: {candidate: ...}
    kubernetes: Kubernetes = k8s_config.DEFAULT  # how `conveyor k8s render` writes it

    @property
    def isolated(self) -> bool:
        """Whether the candidate answers from a process of its own: asked for (``process``),
        or by default for a shadow, whose answers go to nobody. Inline, a canary's candidate
        answers from the workers' hot processes, as fast as stable and timed alike; in its own
        process it cannot take stable down with it, at the cost of a hop per request."""
        return self.candidate == "process" or (
            self.candidate == "auto" and self.strategy.kind == "shadow"
        )


# ----------------------------------------------------------------------------------- reading


def environments(root: Path) -> dict[str, Environment]:
    """Every environment of the project at ``root`` ({} without a ``deploy:`` section)."""
    return project.section(root, SECTION) or {}


def environment(root: Path, name: str) -> Environment:
    """The environment ``name``; :class:`UnknownEnvironment` (with the nearest name) if none."""
    known = environments(root)
    if name in known:
        return known[name]
    hint = did_you_mean(name, known) or (
        f"environments: {', '.join(known)}" if known else f"declare one:\n{EXAMPLE}"
    )
    raise UnknownEnvironment(f"no environment {name!r} under deploy: in conveyor.yaml", hint=hint)


# ----------------------------------------------------------------------------------- parsing


def parse(raw: Any, doc: Located, root: Path | None = None) -> dict[str, Environment]:
    """``deploy:`` as written -> environment name -> :class:`Environment`; every mistake in
    the section in one ConfigError, in line order."""
    from conveyor.foundation.validation import combine, flatten

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{doc.where(SECTION)}: 'deploy' maps environment names to their settings",
            hint=EXAMPLE,
        )
    out: dict[str, Environment] = {}
    errors: list[ConfigError] = []
    for name, item in raw.items():
        reader = _Reader(doc, errors)
        env = reader.environment(str(name), item)
        if env is not None and not reader.failed:
            out[env.name] = env
    if errors:
        raise combine(sorted(flatten(errors), key=project.line_of))
    return out


Where = tuple[str, ...]


class _Reader:
    """Reads one environment, adding each mistake to ``errors`` and going on, so that one
    run names them all."""

    def __init__(self, doc: Located, errors: list[ConfigError]) -> None:
        self.doc = doc
        self.errors = errors
        self.failed = False
        self.clean = True  # the last shape() fitted its schema

    def error(self, at: Where, message: str, hint: str | None = None) -> None:
        self.failed = True
        self.errors.append(ConfigError(f"{self.doc.where(*at)}: {message}", hint=hint))

    def shape(self, part: str, item: Any, at: Where, what: str) -> dict[str, Any] | None:
        """``item`` checked against the schema of ``part``, defaults filled in. When it does not
        fit, the mistakes are recorded and the nested settings (the untyped keys) come back as
        written, so that their own mistakes are found in the same run; None for no mapping."""
        from conveyor.foundation.validation import validate

        if item is None:
            item = {}
        if not isinstance(item, dict):
            self.error(at, f"{what} is a mapping of its settings, not {item!r}")
            return None
        validator, shape = schema(part)

        def wording(problem: Problem, head: str) -> ConfigError:
            return describe(problem, head, what, part)

        self.clean = True
        try:
            return cast(
                dict[str, Any],
                validate(validator, shape, item, lambda k: self.doc.where(*at, *k),
                         describe=wording),
            )  # fmt: skip
        except ConfigError as exc:
            self.failed = True
            self.errors.extend(typos_over_missing(exc))
        self.clean = False
        fields = shape["fields"]
        return {k: item.get(k, f["schema"].get("default")) for k, f in fields.items()}

    def seconds(self, value: Any, at: Where, key: str, *, positive: bool = False) -> float | None:
        try:
            seconds = duration(value)
        except ConfigError as exc:
            self.error((*at, key), f"{key}: {exc.message}", exc.hint)
            return None
        if positive and seconds <= 0:
            self.error((*at, key), f"{key}: must be more than 0, not {value!r}")
            return None
        return seconds

    # ------------------------------------------------------------------------- environment

    def environment(self, name: str, item: Any) -> Environment | None:
        at = (SECTION, name)
        from conveyor.registry.uris import check_name

        if not _ENV_NAME.fullmatch(name):
            self.error(
                at,
                f"{name!r} is not an environment name",
                "lowercase letters, digits, _ and - (the alias <model>@<env> carries it)",
            )
        if not isinstance(item, dict):
            self.error(at, f"environment {name!r} is a mapping with at least model:", EXAMPLE)
            return None
        spec = self.shape("environment", item, at, f"environment {name!r}")
        if spec is None:
            return None
        if isinstance(spec["model"], str):
            try:
                check_name(spec["model"])
            except ConfigError as exc:
                self.error((*at, "model"), f"model: {exc.message}", exc.hint)
        serve = self.shape("serve", spec["serve"], (*at, "serve"), "serve") or {}
        strategy = self.strategy(spec["strategy"], (*at, "strategy"))
        shadow = strategy is not None and strategy.kind == "shadow"
        analysis = self.analysis(spec["analysis"], (*at, "analysis"), shadow=shadow)
        hooks = self.webhooks(spec["webhooks"], (*at, "webhooks"))
        cluster = k8s_config.read(self, spec["kubernetes"], (*at, "kubernetes"))
        if strategy is None or analysis is None or hooks is None or cluster is None:
            return None
        return Environment(
            name, spec["model"], spec["target"], serve.get("host", "127.0.0.1"),
            serve.get("port", 8080), serve.get("workers", 1), strategy, analysis, hooks,
            serve.get("candidate", "auto"), cluster,
        )  # fmt: skip

    # ---------------------------------------------------------------------------- strategy

    def strategy(self, item: Any, at: Where) -> Strategy | None:
        if item is None:
            return DEFAULT_STRATEGY
        if isinstance(item, str) and item in ("blue_green", "shadow"):
            item = {item: {}}
        spec = self.shape("strategy", item, at, "strategy")
        if spec is None:
            return None
        kinds = [k for k in KINDS if k in item]
        if not kinds and not self.clean:  # a misspelt kind: its error says which
            return None
        if len(kinds) != 1:
            said = f"it has {' and '.join(kinds)}" if kinds else "it has none"
            self.error(at, f"strategy: give exactly one of {', '.join(KINDS)}; {said}", EXAMPLE)
            return None
        kind = kinds[0]
        if spec["kserve"] is True and kind != "canary":
            self.error(
                (*at, "kserve"),
                f"strategy: KServe carries out a canary (canaryTrafficPercent), not {kind}",
                "drop kserve: true, or make the strategy a canary",
            )
            return None
        found = self.kind(kind, item[kind], (*at, kind))
        return replace(found, kserve=True) if found is not None and spec["kserve"] else found

    def kind(self, kind: str, item: Any, at: Where) -> Strategy | None:
        inner = self.shape(kind, item, at, f"the {kind} strategy")
        if inner is None:
            return None
        if kind == "canary":
            return self.canary(inner, at)
        if kind == "ab":
            return self.ab(inner, at)
        if kind == "shadow":
            length = self.seconds(inner["duration"], at, "duration", positive=True)
            return None if length is None else Strategy(
                "shadow", fraction=inner["fraction"], min_agreement=inner["min_agreement"],
                duration=length,
            )  # fmt: skip
        return Strategy("blue_green")

    def canary(self, inner: dict[str, Any], at: Where) -> Strategy | None:
        items = inner["steps"]
        if items is None and not self.clean:  # a misspelt steps: its error says which
            return None
        if not isinstance(items, list) or not items:
            self.error(
                (*at, "steps"),
                "steps: a canary needs a list of steps, like [{weight: 10}, {pause: 30s}]",
            )
            return None
        steps = []
        for i, item in enumerate(items):
            step = self.step(item, (*at, "steps", str(i)), i + 1)
            if step is not None:
                steps.append(step)
        return Strategy("canary", tuple(steps)) if len(steps) == len(items) else None

    def step(self, item: Any, at: Where, number: int) -> Step | None:
        spec = self.shape("step", item, at, f"step {number}")
        if spec is None:
            return None
        keys = [k for k in ("weight", "pause") if k in item]
        if not keys and not self.clean:  # a misspelt key: its error says which
            return None
        if len(keys) != 1:
            said = "it has both" if keys else "it has neither"
            self.error(
                at,
                f"step {number}: give exactly one of weight or pause; {said}",
                "like {weight: 10} (percent to the candidate) or {pause: 30s}",
            )
            return None
        if keys == ["weight"]:
            return Step(weight=spec["weight"])
        pause = spec["pause"]
        if pause is None or pause == {}:  # Argo's `pause: {}`: until resumed
            return Step()
        seconds = self.seconds(pause, at, "pause")
        return None if seconds is None else Step(pause=seconds)

    def ab(self, inner: dict[str, Any], at: Where) -> Strategy | None:
        sticky = inner["sticky"]
        ok = self.clean
        if sticky and isinstance(sticky, str):
            how, _, key = sticky.partition(":")
            if how not in ("header", "cookie") or not key.strip():
                ok = False
                self.error(
                    (*at, "sticky"),
                    f"sticky: {sticky!r} is not a request key",
                    "header:NAME or cookie:NAME (empty: each request by its id)",
                )
        if not ok:
            return None
        return Strategy(
            "ab", split=inner["split"], sticky=sticky, metric=inner["metric"],
            confidence=inner["confidence"], min_samples=inner["min_samples"],
        )  # fmt: skip

    # ---------------------------------------------------------------------------- analysis

    def analysis(self, item: Any, at: Where, *, shadow: bool = False) -> Analysis | None:
        spec = self.shape("analysis", item, at, "analysis")
        if spec is None:
            return None
        interval = self.seconds(spec["interval"], at, "interval", positive=True)
        deadline = self.seconds(spec["deadline"], at, "deadline", positive=True)
        checks: tuple[Check, ...] | None = SHADOW_CHECKS if shadow else DEFAULT_CHECKS
        if spec["checks"] is not None:
            checks = self.checks(spec["checks"], (*at, "checks"))
            timed = [c.metric for c in checks or () if c.metric.startswith("latency")]
            if shadow and timed:
                self.error(
                    (*at, "checks"),
                    f"checks: a shadow cannot be judged on {timed[0]}: its copies are batched "
                    "and compared at a lower priority than the answers, so their latency says "
                    "nothing of the candidate's",
                    "judge latency with a canary; a shadow is judged on error_rate, agreement "
                    "and prediction_drift",
                )
                checks = None
        if interval is None or deadline is None or checks is None:
            return None
        return Analysis(interval, spec["failure_limit"], deadline, spec["on_deadline"], checks)

    def checks(self, items: Any, at: Where) -> tuple[Check, ...] | None:
        if not isinstance(items, list):
            self.error(
                at, "checks: a list of checks, like - {metric: error_rate, max_increase: 0.01}"
            )
            return None
        out: list[Check] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            where = (*at, str(i))
            check = self.check(item, where, i + 1)
            if check is None:
                continue
            if check.metric in seen:
                self.error(
                    where,
                    f"check {i + 1}: {check.metric} is checked twice (check {seen[check.metric]})",
                    "keep one check per metric",
                )
                continue
            seen[check.metric] = i + 1
            out.append(check)
        return tuple(out) if len(out) == len(items) else None

    def check(self, item: Any, at: Where, number: int) -> Check | None:
        what = f"check {number}"
        if isinstance(item, dict) and isinstance(item.get("metric"), str):
            what = f"check {number} ({item['metric']})"
        spec = self.shape("check", item, at, what)
        if spec is None:
            return None
        metric = spec["metric"]
        if metric not in THRESHOLD:
            return None
        wanted = THRESHOLD[metric]
        ok = self.clean
        for key in sorted(set(THRESHOLD.values()) - {wanted}):
            if key in item:
                ok = False
                owners = [m for m, k in THRESHOLD.items() if k == key]
                self.error(
                    (*at, key),
                    f"{what}: {metric} takes {wanted}:, not {key}: "
                    f"({key} is for {' and '.join(owners)})",
                    f"{{metric: {metric}, {wanted}: ...}}",
                )
        if ok and spec[wanted] is None:
            ok = False
            self.error(at, f"{what}: {metric} needs {wanted}:", CHECK_HINT[metric])
        return Check(**{k: v for k, v in spec.items() if v is not None}) if ok else None

    # ---------------------------------------------------------------------------- webhooks

    def webhooks(self, items: Any, at: Where) -> tuple[Webhook, ...] | None:
        if items is None:
            return ()
        if not isinstance(items, list):
            self.error(
                at, "webhooks: a list, like - {url: https://hooks.example/x, events: [aborted]}"
            )
            return None
        out = []
        for i, item in enumerate(items):
            hook = self.webhook(item, (*at, str(i)), i + 1)
            if hook is not None:
                out.append(hook)
        return tuple(out) if len(out) == len(items) else None

    def webhook(self, item: Any, at: Where, number: int) -> Webhook | None:
        from urllib.parse import urlsplit

        spec = self.shape("webhook", item, at, f"webhook {number}")
        if spec is None:
            return None
        ok = self.clean
        url = spec["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            ok = False
            self.error(
                (*at, "url"), f"url: {url!r} is not an http(s) URL", "like https://hooks.example/x"
            )
        events = spec["events"]
        if isinstance(events, str):
            events = [events]
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) for e in events)
        ):
            ok = False
            self.error(
                (*at, "events"), "events: a list of event names", f"events: {', '.join(EVENTS)}"
            )
            events = []
        for event in events:
            if event not in EVENTS:
                ok = False
                self.error(
                    (*at, "events"),
                    f"events: unknown event {event!r}",
                    did_you_mean(event, EVENTS) or f"events: {', '.join(EVENTS)}",
                )
        secret = spec["secret_env"]
        if secret and isinstance(secret, str) and not _ENV_VAR.fullmatch(secret):
            ok = False
            self.error(
                (*at, "secret_env"),
                f"secret_env: {secret!r} is not an environment variable's name",
                "name the variable holding the secret (like DEPLOY_HOOK_SECRET), not the secret",
            )
        if not ok:
            return None
        return Webhook(url, tuple(events), secret)


project.register(SECTION, parse, owner=__package__ or "")
