"""The ``gates:`` section of conveyor.yaml, read into plain checks.

    gates:
      model: classifier                  # the registered model `vs:` aliases belong to
      predictions: eval/predictions.csv  # id, label, score and/or prediction, slice columns
      checks:
        - metric: eval.auc               # a threshold
          min: 0.9
        - metric: eval.f1                # against a baseline, with significance
          vs: production
          min_change: -0.01
          confidence: 0.95
        - data: data/prepared/test.csv   # data validation
          schema: schema.yaml
        - tests: pytest -q tests/        # the project's own tests

``gates:`` may also be the list of checks alone. Every check takes ``name`` and ``severity``
(``block``, the default, or ``warn``). Each error names ``conveyor.yaml:LINE`` and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation import project, yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.validation import common_message

if TYPE_CHECKING:
    from conveyor.foundation.validation import Problem

KINDS = ("metric", "data", "drift", "invariance", "directional", "examples", "budget", "tests")
_COMMON = ("name", "severity")
_KEYS = {
    "metric": (
        "metric", "min", "max", "vs", "min_change", "max_change", "relative", "confidence",
        "resamples", "predictions", "slice_by", "min_size", "score", "min_examples",
    ),
    "data": ("data", "schema"),
    "drift": ("drift",),
    "invariance": ("invariance",),
    "directional": ("directional",),
    "examples": ("examples",),
    "budget": ("budget",),
    "tests": ("tests", "junit"),
}  # fmt: skip
SECTION = "gates"
_TOP = ("model", "predictions", "checks", "confidence", "resamples")


@dataclass(frozen=True)
class Check:
    kind: str
    name: str
    severity: str
    spec: dict[str, Any]  # the check's own keys, validated
    where: str  # conveyor.yaml:LINE


@dataclass(frozen=True)
class Gates:
    checks: tuple[Check, ...] = ()
    model: str | None = None
    predictions: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)


def load(root: Path) -> Gates:
    """The gates of the project at ``root`` (none when conveyor.yaml has no ``gates:``)."""
    gates: Gates | None = project.section(root, SECTION)
    return gates or Gates()


def parse(section: Any, doc: yamlio.Located) -> Gates:
    """``gates:`` as written -> :class:`Gates`; every mistake in the section in one error."""
    if section is None:
        return Gates()
    base: tuple[str, ...] = (SECTION,)
    top: dict[str, Any] = {}
    errors: list[ConfigError] = []
    if isinstance(section, dict):
        try:
            _shape(_TOP_SCHEMA, section, doc, base, "the gates section")
        except ConfigError as exc:
            errors.append(exc)
        top, items = section, section.get("checks") or []
        base = (SECTION, "checks")
    else:
        items = section
    if not isinstance(items, list):
        errors.append(ConfigError(f"{doc.where(*base)}: the checks are a list", hint=_EXAMPLE))
        items = []
    checks, names = [], set()
    for i, item in enumerate(items):
        try:
            check = _check(item, doc, (*base, str(i)))
        except ConfigError as exc:
            errors.append(exc)
            continue
        if check.name in names:
            errors.append(ConfigError(f"{check.where}: two checks are named {check.name!r}"))
        names.add(check.name)
        checks.append(check)
    defaults: dict[str, Any] = {k: top[k] for k in ("confidence", "resamples") if k in top}

    def bad_top(key: str, message: str) -> ConfigError:
        return ConfigError(f"{doc.where(SECTION, key)}: gates.{key}: {message}")

    try:
        _level(defaults.get("confidence"), bad_top)
    except ConfigError as exc:
        errors.append(exc)
    model, predictions = top.get("model"), top.get("predictions")
    if errors:
        from conveyor.foundation.validation import combine, flatten

        raise combine(sorted(flatten(errors), key=project.line_of))
    return Gates(tuple(checks), model, predictions, defaults)


def _check(item: Any, doc: yamlio.Located, at: tuple[str, ...]) -> Check:
    where = doc.where(*at)
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a check is a mapping, like `metric: eval.auc`", hint=_EXAMPLE)
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        unknown = [k for k in item if k not in _COMMON]
        hint = did_you_mean(unknown[0], KINDS) if unknown and not kinds else None
        said = f"it has {', '.join(kinds)}" if kinds else "it has none"
        raise ConfigError(
            f"{where}: a check has exactly one of {', '.join(KINDS)}; {said}",
            hint=hint or _EXAMPLE,
        )
    (kind,) = kinds
    _shape(kind, item, doc, at, f"a {kind} check")
    severity = item.get("severity", "block")
    spec = {k: v for k, v in item.items() if k not in _COMMON}
    _validate(kind, spec, doc, at)
    name = item.get("name") or _default_name(kind, spec)
    return Check(kind, str(name), severity, spec, where)


# The shapes, as pydantic-core schemas: built on first use (a command without gates skips them).
_SCHEMAS: dict[str, tuple[Any, Any]] = {}
_TOP_SCHEMA = "(top)"


def _schema(name: str) -> tuple[Any, Any]:
    if name not in _SCHEMAS:
        from pydantic_core import SchemaValidator
        from pydantic_core import core_schema as cs

        from conveyor.foundation.validation import field

        number = cs.float_schema(strict=True)
        whole = cs.int_schema(strict=True, ge=1)
        types: dict[str, Any] = {
            "min": number, "max": number, "min_change": number, "max_change": number,
            "resamples": whole, "min_size": whole, "min_examples": whole,
            "model": cs.str_schema(strict=True), "predictions": cs.str_schema(strict=True),
            "severity": cs.literal_schema(["block", "warn"]),
        }  # fmt: skip
        keys = _TOP if name == _TOP_SCHEMA else (*_KEYS[name], *_COMMON)
        schema = cs.typed_dict_schema(
            {k: field(types.get(k, cs.any_schema())) for k in keys}, extra_behavior="forbid"
        )
        _SCHEMAS[name] = (SchemaValidator(schema), schema)
    return _SCHEMAS[name]


def _shape(
    name: str, item: dict[str, Any], doc: yamlio.Located, at: tuple[str, ...], what: str
) -> None:
    from conveyor.foundation.validation import validate

    validator, schema = _schema(name)
    prefix = "gates." if name == _TOP_SCHEMA else ""

    def describe(problem: Problem, head: str) -> ConfigError | None:
        key, given = problem.key, problem.input
        if problem.type == "extra_forbidden":
            return ConfigError(
                f"{head}: {what} has no key {key!r}",
                hint=did_you_mean(key, problem.choices) or f"keys: {', '.join(problem.choices)}",
            )
        if problem.type == "literal_error":
            return ConfigError(f"{head}: {key} is block or warn, not {given!r}")
        if problem.type.startswith("int") or problem.type == "greater_than_equal":
            return ConfigError(f"{head}: {prefix}{key}: a whole number from 1, not {given!r}")
        if problem.type.startswith("str"):
            return ConfigError(f"{head}: {prefix}{key} is a name, not {given!r}")
        return ConfigError(f"{head}: {prefix}{key}: {common_message(problem)}")

    validate(validator, schema, item, lambda keys: doc.where(*at, *keys), describe=describe)


def _validate(kind: str, spec: dict[str, Any], doc: yamlio.Located, at: tuple[str, ...]) -> None:
    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{doc.where(*at, key)}: {key}: {message}")

    if kind == "metric":
        if not isinstance(spec["metric"], str):
            raise bad("metric", "a metric name, like eval.auc")
        _level(spec.get("confidence"), bad)
        changes = "min_change" in spec or "max_change" in spec
        if changes and "vs" not in spec:
            raise bad("min_change" if "min_change" in spec else "max_change", "needs vs: BASELINE")
        if "vs" in spec and not changes:
            raise bad("vs", "needs min_change or max_change (e.g. min_change: 0 = no worse)")
        if not changes and "min" not in spec and "max" not in spec:
            raise ConfigError(
                f"{doc.where(*at)}: metric {spec['metric']!r} has nothing to check",
                hint="give min:, max:, or vs: with min_change:/max_change:",
            )
        if "confidence" in spec and "vs" not in spec:
            raise bad("confidence", "compares with a baseline: add vs: and min_change:")
        slices = spec.get("slice_by")
        if slices is not None:
            if isinstance(slices, str):
                spec["slice_by"] = [slices]
            elif not (isinstance(slices, list) and all(isinstance(s, str) for s in slices)):
                raise bad("slice_by", "a column name or a list of them")
    elif kind == "data":
        if not isinstance(spec["data"], str) or not isinstance(spec.get("schema"), str):
            raise ConfigError(
                f"{doc.where(*at)}: a data check needs data: PATH and schema: PATH",
                hint="conveyor schema infer DATA -o schema.yaml writes one",
            )
    elif kind == "tests":
        if not isinstance(spec["tests"], str) or not spec["tests"].strip():
            raise bad("tests", "the command that runs the tests, like `pytest -q tests/`")
    elif kind == "examples":
        if not isinstance(spec["examples"], str | dict):
            raise bad("examples", "a file of examples (JSON) or {file: ..., model: ...}")
    elif not isinstance(spec[kind], dict):
        raise bad(kind, f"a mapping of the {kind} check's settings")


def _level(conf: Any, bad: Any) -> None:
    if conf is not None and (not isinstance(conf, float) or not 0.5 <= conf < 1):
        raise bad("confidence", f"a level between 0.5 and 1, like 0.95; not {conf!r}")


def _default_name(kind: str, spec: dict[str, Any]) -> str:
    if kind == "metric":
        parts = [spec["metric"]]
        if "min" in spec:
            parts.append(f">= {spec['min']}")
        if "max" in spec:
            parts.append(f"<= {spec['max']}")
        if "vs" in spec:
            parts.append(f"vs {spec['vs']}")
        if spec.get("slice_by"):
            parts.append(f"by {', '.join(spec['slice_by'])}")
        return " ".join(parts)
    if kind == "data":
        return f"data {spec['data']}"
    if kind == "tests":
        return "tests"
    if kind == "examples":
        target = spec["examples"]
        return f"examples {target if isinstance(target, str) else target.get('file', '')}"
    if kind == "drift":
        inner = spec["drift"]
        return f"drift {inner.get('reference', '?')} -> {inner.get('current', '?')}"
    inner = spec[kind]
    return f"{kind} {inner.get('column', '')}".strip()


def _no_unknown(
    item: dict[str, Any],
    allowed: tuple[str, ...],
    doc: yamlio.Located,
    at: tuple[str, ...],
    what: str,
) -> None:
    for key in item:
        if key not in allowed:
            raise ConfigError(
                f"{doc.where(*at, str(key))}: {what} has no key {key!r}",
                hint=did_you_mean(str(key), allowed) or f"keys: {', '.join(allowed)}",
            )


_EXAMPLE = "gates:\n  checks:\n    - metric: eval.auc\n      min: 0.9"


project.register(SECTION, lambda raw, doc, root: parse(raw, doc), owner=__package__ or "")
