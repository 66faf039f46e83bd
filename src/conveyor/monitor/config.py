"""The ``monitor:`` section of conveyor.yaml: what to watch in an environment's live traffic,
and what to do when it goes wrong.

    monitor:
      production:                             # an environment of deploy:
        reference: data/prepared/train.csv    # or alias:production[:PATH], run:ID[:PATH]
        label: malignant                      # the reference's label column (not a feature)
        exclude: [id]                         # other columns that are not features
        window: {every: 1h, min_rows: 500}    # or {rows: 10000}
        drift: {method: auto, threshold: 0.1, share: 0.5}
        quality: {metric: accuracy, min: 0.9, slice_by: size, min_labels: 200}
        estimate: true                        # label-free accuracy until labels come
        schema: schema.yaml                   # the data gate's schema: violations per window
        retention: 1000                       # closed windows kept per version
        alerts:
          - {name: drift, when: "drift.share > 0.5", for: 2 windows, severity: warning,
             notify: [ops]}
          - {name: quality-drop, when: "quality.accuracy < 0.9", for: 1 window,
             severity: critical, notify: [ops], action: retrain}
        notify:
          ops: {webhook: "https://hooks.example/ops", secret_env: OPS_HOOK_SECRET}
        retrain: {cooldown: 1h}

Shapes are pydantic-core schemas; the rules a schema cannot say (a window is ``every`` or
``rows``, an alert's ``when`` and ``for``, a receiver named in ``notify:``) are Python. Every
mistake names ``conveyor.yaml:LINE`` and the key, all in one error. Secrets are never in the file:
``secret_env`` names an environment variable. Whether each environment is one of ``deploy:`` is
checked where both sections are read (:mod:`conveyor.deploy`), above this layer.

Importing this module registers the section with :mod:`conveyor.foundation.project`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from conveyor.foundation import project
from conveyor.foundation.durations import duration
from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.foundation.suggest import did_you_mean
from conveyor.monitor import rules
from conveyor.monitor.rules import Rule

if TYPE_CHECKING:
    from conveyor.foundation.validation import Problem
    from conveyor.foundation.yamlio import Located

SECTION = "monitor"
METHODS = ("auto", "ks", "wasserstein", "psi", "chisquare", "jensenshannon")
EXAMPLE = (
    "monitor:\n  production:\n    reference: data/prepared/train.csv\n"
    "    window: {rows: 1000}\n    alerts:\n"
    '      - {name: drift, when: "drift.share > 0.5", for: 2 windows}'
)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV = re.compile(r"[a-z0-9_-]{1,64}")  # deploy:'s environment names; a folder is named after one
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEMA: Any = None


class UnmonitoredEnvironment(ConveyorError):
    """An environment with no ``monitor:`` entry."""


@dataclass(frozen=True)
class Window:
    every: float | None = 3600.0  # seconds: windows by time, aligned to the epoch
    rows: int | None = None  # or windows of this many rows
    min_rows: int = 100  # fewer: the window's checks are inconclusive

    def __str__(self) -> str:
        return f"{self.rows} rows" if self.rows else f"every {self.every:g}s"


@dataclass(frozen=True)
class Drift:
    method: str = "auto"
    threshold: float | None = None  # the method's own default when None
    share: float = 0.5  # the dataset drifted when this share of features did


@dataclass(frozen=True)
class Quality:
    metric: str = "accuracy"
    min: float | None = None
    slice_by: str | None = None
    min_labels: int = 200


@dataclass(frozen=True)
class Receiver:
    name: str
    webhook: str
    secret_env: str | None = None


@dataclass(frozen=True)
class Monitor:
    env: str
    reference: str
    label: str | None = None
    exclude: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None  # None: every column of the reference but those
    categorical: tuple[str, ...] = ()
    window: Window = Window()
    drift: Drift = Drift()
    quality: Quality | None = None
    estimate: bool = False
    schema: str | None = None
    alerts: tuple[Rule, ...] = ()
    notify: dict[str, Receiver] = field(default_factory=dict)
    cooldown: float = 3600.0  # between two retrains
    interval: float = 10.0  # seconds between two looks at the log
    retention: int = 1000  # closed windows kept per version (files, and the label's places)

    @property
    def rules(self) -> dict[str, Rule]:
        return {r.name: r for r in self.alerts}


REFERENCE_KINDS = ("alias", "run")
REFERENCE_HINT = "reference: data/prepared/train.csv, alias:production[:PATH] or run:RUN[:PATH]"


@dataclass(frozen=True)
class Source:
    """What ``reference:`` says: a project file (``kind`` "file", ``path``), or an alias's or a
    run's recorded table (``name``; ``path`` "" when the training table is to be found)."""

    kind: str
    name: str
    path: str

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix.lower()


def source(text: str) -> Source:
    """``reference:`` parsed (pure). Raises ConfigError for a scheme it does not know.

    >>> source("alias:production")
    Source(kind='alias', name='production', path='')
    >>> source("run:3f2a:data/train.csv").path
    'data/train.csv'
    """
    head, colon, rest = text.partition(":")
    if not colon or "/" in head or "\\" in head:  # data/x:y.csv is a file
        return Source("file", "", text)
    if head not in REFERENCE_KINDS:
        said = f"reference {text!r}: {head!r} is not a kind of reference"
        raise ConfigError(said, hint=REFERENCE_HINT)
    name, _, path = rest.partition(":")
    if not name:
        raise ConfigError(f"reference {text!r}: name the {head}", hint=REFERENCE_HINT)
    return Source(head, name, path)


def monitors(root: Path) -> dict[str, Monitor]:
    """Every monitored environment of the project at ``root`` ({} without ``monitor:``)."""
    return project.section(root, SECTION) or {}


def monitor(root: Path, env: str) -> Monitor:
    known = monitors(root)
    if env in known:
        return known[env]
    hint = did_you_mean(env, known) or (
        f"monitored environments: {', '.join(known)}" if known else f"declare one:\n{EXAMPLE}"
    )
    raise UnmonitoredEnvironment(
        f"environment {env!r} is not monitored: no {env}: under monitor: in conveyor.yaml",
        hint=hint,
    )


# ----------------------------------------------------------------------------------- parsing


def _schema() -> Any:
    global _SCHEMA
    if _SCHEMA is None:  # pydantic-core on first use
        from pydantic_core import SchemaValidator
        from pydantic_core import core_schema as cs

        from conveyor.foundation.validation import field as f

        text = cs.str_schema(strict=True, min_length=1)
        texts = cs.list_schema(text)
        number = cs.union_schema([cs.int_schema(strict=True), cs.float_schema(strict=True)])
        count = cs.int_schema(strict=True, ge=1)
        share = cs.float_schema(ge=0, le=1)
        anything = cs.any_schema()

        def shape(fields: dict[str, Any]) -> Any:
            return cs.typed_dict_schema(fields, extra_behavior="forbid")

        def nested(schema: Any) -> Any:  # optional, its own defaults filled in when absent
            default = cs.with_default_schema(schema, default={}, validate_default=True)
            return cs.typed_dict_field(default, required=False)

        alert = shape(
            {
                "name": f(text, required=True),
                "when": f(text, required=True),
                "for": f(anything, "0s"),
                "severity": f(cs.literal_schema(list(rules.SEVERITIES)), "warning"),
                "notify": f(texts, []),
                "action": f(cs.nullable_schema(cs.literal_schema(list(rules.ACTIONS)))),
            }
        )
        env = shape(
            {
                "reference": f(text, required=True),
                "label": f(cs.nullable_schema(text)),
                "exclude": f(texts, []),
                "features": f(cs.union_schema([cs.literal_schema(["all"]), texts]), "all"),
                "categorical": f(texts, []),
                "window": nested(
                    shape(
                        {
                            "every": f(anything),
                            "rows": f(cs.nullable_schema(count)),
                            "min_rows": f(count, 100),
                        }
                    ),
                ),
                "drift": nested(
                    shape(
                        {
                            "method": f(cs.literal_schema(list(METHODS)), "auto"),
                            "threshold": f(cs.nullable_schema(number)),
                            "share": f(share, 0.5),
                        }
                    ),
                ),
                "quality": f(
                    cs.nullable_schema(
                        shape(
                            {
                                "metric": f(
                                    cs.literal_schema(list(rules.QUALITY_METRICS)), "accuracy"
                                ),
                                "min": f(cs.nullable_schema(number)),
                                "slice_by": f(cs.nullable_schema(text)),
                                "min_labels": f(count, 200),
                            }
                        )
                    )
                ),
                "retention": f(count, 1000),
                "estimate": f(cs.bool_schema(strict=True), False),
                "schema": f(cs.nullable_schema(text)),
                "alerts": f(cs.list_schema(alert), []),
                "notify": f(
                    cs.dict_schema(
                        text,
                        shape(
                            {
                                "webhook": f(text, required=True),
                                "secret_env": f(cs.nullable_schema(text)),
                            }
                        ),
                    ),
                    {},
                ),
                "retrain": nested(shape({"cooldown": f(anything, "1h")})),
                "interval": f(anything, "10s"),
            }
        )
        schema = cs.dict_schema(text, env)
        _SCHEMA = (SchemaValidator(schema), schema)
    return _SCHEMA


def parse(raw: Any, doc: Located, root: Path | None = None) -> dict[str, Monitor]:
    """``monitor:`` as written -> environment name -> :class:`Monitor`; every mistake in the
    section in one ConfigError, in line order."""
    from conveyor.foundation.validation import combine, flatten, validate

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{doc.where(SECTION)}: 'monitor' maps environment names to their settings",
            hint=EXAMPLE,
        )
    validator, schema = _schema()
    try:
        checked = validate(
            validator, schema, raw, lambda keys: doc.where(SECTION, *keys), describe=_describe
        )
    except ConfigError as exc:
        raise combine(sorted(flatten([exc]), key=project.line_of)) from None
    errors: list[ConfigError] = []
    out = {}
    for name, spec in checked.items():
        made = _Reader(doc, str(name), errors).monitor(spec)
        if made is not None:
            out[str(name)] = made
    if errors:
        raise combine(sorted(flatten(errors), key=project.line_of))
    return out


def _describe(problem: Problem, head: str) -> ConfigError | None:
    if problem.type == "literal_error" and problem.key in ("method", "severity", "action"):
        choices = {"method": METHODS, "severity": rules.SEVERITIES, "action": rules.ACTIONS}
        allowed = choices[problem.key]
        return ConfigError(
            f"{head}: {problem.key}: {problem.input!r} is not one of {', '.join(allowed)}",
            hint=did_you_mean(str(problem.input), allowed),
        )
    return None


class _Reader:
    """The rules one environment's entry must follow beyond its shape."""

    def __init__(self, doc: Located, env: str, errors: list[ConfigError]) -> None:
        self.doc = doc
        self.env = env
        self.errors = errors
        self.failed = False

    def error(self, keys: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        self.failed = True
        where = self.doc.where(SECTION, self.env, *(str(k) for k in keys))
        self.errors.append(ConfigError(f"{where}: {message}", hint=hint))

    def seconds(self, value: Any, keys: tuple[str | int, ...], *, positive: bool) -> float:
        try:
            seconds = duration(value)
        except ConfigError as exc:
            self.error(keys, f"{keys[-1]}: {exc.message}", exc.hint)
            return 0.0
        if positive and seconds <= 0:
            self.error(keys, f"{keys[-1]}: must be more than 0, not {value!r}")
        return seconds

    def monitor(self, spec: dict[str, Any]) -> Monitor | None:
        if not _ENV.fullmatch(self.env):  # it names .conveyor/monitor/<env>/: never a path
            self.error((), f"{self.env!r} is not an environment name",
                       "lowercase letters, digits, _ and - (as under deploy:)")  # fmt: skip
        window = self.window(spec["window"])
        features = None if spec["features"] == "all" else tuple(spec["features"])
        quality = Quality(**spec["quality"]) if spec["quality"] is not None else None
        notify = {}
        for name, item in spec["notify"].items():
            if not _NAME.fullmatch(name):
                self.error(("notify", name), f"{name!r} is not a receiver name")
            self.secret(item["secret_env"], ("notify", name, "secret_env"))
            notify[name] = Receiver(name, item["webhook"], item["secret_env"])
        alerts = self.alerts(spec["alerts"], features, notify, quality)
        try:
            source(spec["reference"])
        except ConfigError as exc:
            self.error(("reference",), exc.message, exc.hint)
        made = Monitor(
            env=self.env,
            reference=spec["reference"],
            label=spec["label"],
            exclude=tuple(spec["exclude"]),
            features=features,
            categorical=tuple(spec["categorical"]),
            window=window,
            drift=Drift(**spec["drift"]),
            quality=quality,
            estimate=spec["estimate"],
            schema=spec["schema"],
            alerts=alerts,
            notify=notify,
            cooldown=self.seconds(spec["retrain"]["cooldown"], ("retrain", "cooldown"),
                                  positive=False),
            interval=self.seconds(spec["interval"], ("interval",), positive=True),
            retention=spec["retention"],
        )  # fmt: skip
        return None if self.failed else made

    def window(self, item: dict[str, Any]) -> Window:
        every, rows = item["every"], item["rows"]
        if every is not None and rows is not None:
            self.error(("window",), "window: either every (a duration) or rows, not both")
        if rows is not None:
            return Window(every=None, rows=rows, min_rows=item["min_rows"])
        seconds = 3600.0 if every is None else self.seconds(every, ("window", "every"),
                                                            positive=True)  # fmt: skip
        return Window(every=seconds, min_rows=item["min_rows"])

    def secret(self, name: str | None, keys: tuple[str | int, ...]) -> None:
        if name is not None and not _ENV_VAR.fullmatch(name):
            self.error(keys, f"secret_env: {name!r} is not an environment variable's name",
                       "the secret itself never goes in conveyor.yaml")  # fmt: skip

    def alerts(
        self,
        items: list[dict[str, Any]],
        features: tuple[str, ...] | None,
        notify: dict[str, Receiver],
        quality: Quality | None,
    ) -> tuple[Rule, ...]:
        out: list[Rule] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            keys: tuple[str | int, ...] = ("alerts", i)
            name = item["name"]
            if name in seen:
                self.error(keys, f"alert {name!r} is named twice", "alert names are unique")
            seen.add(name)
            try:
                condition = rules.parse_when(item["when"], features)
                hold = rules.parse_for(item["for"])
            except ConfigError as exc:
                self.error(keys, f"alert {name!r}: {exc.message}", exc.hint)
                continue
            if condition.metric.startswith("quality.") and quality is None:
                self.error(
                    keys,
                    f"alert {name!r}: {condition.metric} needs quality: (how labels are judged)",
                    "like quality: {metric: accuracy}",
                )
            for receiver in item["notify"]:
                if receiver not in notify:
                    self.error(keys, f"alert {name!r}: no receiver {receiver!r} under notify:",
                               did_you_mean(receiver, notify) or
                               "declare it: notify: {ops: {webhook: URL}}")  # fmt: skip
            if hold.windows and not condition.per_window:
                self.error(keys, f"alert {name!r}: {condition.metric} is not per window",
                           'give for: a duration, like "5m"')  # fmt: skip
            out.append(Rule(name, condition, hold, item["severity"], tuple(item["notify"]),
                            item["action"]))  # fmt: skip
        return tuple(out)


project.register(SECTION, parse, owner=__package__ or "")
