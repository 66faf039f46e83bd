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
from typing import Any

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

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
    path = root / "conveyor.yaml"
    if not path.exists():
        return Gates()
    doc = yamlio.load_file(path, "conveyor.yaml")
    data = doc.data if isinstance(doc.data, dict) else {}
    return parse(data.get("gates"), doc)


def parse(section: Any, doc: yamlio.Located) -> Gates:
    if section is None:
        return Gates()
    base: tuple[str, ...] = ("gates",)
    top: dict[str, Any] = {}
    if isinstance(section, dict):
        _no_unknown(section, _TOP, doc, base, "the gates section")
        top, items = section, section.get("checks") or []
        base = ("gates", "checks")
    else:
        items = section
    if not isinstance(items, list):
        raise ConfigError(f"{doc.where(*base)}: the checks are a list", hint=_EXAMPLE)
    checks, names = [], set()
    for i, item in enumerate(items):
        check = _check(item, doc, (*base, str(i)), top)
        if check.name in names:
            raise ConfigError(f"{check.where}: two checks are named {check.name!r}")
        names.add(check.name)
        checks.append(check)
    defaults: dict[str, Any] = {k: top[k] for k in ("confidence", "resamples") if k in top}

    def bad_top(key: str, message: str) -> ConfigError:
        return ConfigError(f"{doc.where('gates', key)}: gates.{key}: {message}")

    _level(defaults.get("confidence"), bad_top)
    resamples = defaults.get("resamples")
    if resamples is not None and (not isinstance(resamples, int) or resamples < 1):
        raise bad_top("resamples", f"a whole number from 1, not {resamples!r}")
    model, predictions = top.get("model"), top.get("predictions")
    for key, value in (("model", model), ("predictions", predictions)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{doc.where('gates', key)}: gates.{key} is a name, not {value!r}")
    return Gates(tuple(checks), model, predictions, defaults)


def _check(item: Any, doc: yamlio.Located, at: tuple[str, ...], top: dict[str, Any]) -> Check:
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
    _no_unknown(item, (*_KEYS[kind], *_COMMON), doc, at, f"a {kind} check")
    severity = item.get("severity", "block")
    if severity not in ("block", "warn"):
        raise ConfigError(
            f"{doc.where(*at, 'severity')}: severity is block or warn, not {severity!r}"
        )
    spec = {k: v for k, v in item.items() if k not in _COMMON}
    _validate(kind, spec, doc, at)
    name = item.get("name") or _default_name(kind, spec)
    return Check(kind, str(name), severity, spec, where)


def _validate(kind: str, spec: dict[str, Any], doc: yamlio.Located, at: tuple[str, ...]) -> None:
    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{doc.where(*at, key)}: {key}: {message}")

    def number(key: str) -> None:
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad(key, f"a number, not {value!r}")

    if kind == "metric":
        if not isinstance(spec["metric"], str):
            raise bad("metric", "a metric name, like eval.auc")
        for key in ("min", "max", "min_change", "max_change"):
            number(key)
        for key in ("min_size", "resamples", "min_examples"):
            value = spec.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise bad(key, f"a whole number from 1, not {value!r}")
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
