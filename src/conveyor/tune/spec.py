"""The ``tune:`` section of ``conveyor.yaml``: what to search, how, and what to optimise.

```yaml
tune:
  objective: {metric: eval.auc, direction: maximize}
  space:
    train.C: {type: float, low: 0.01, high: 10, log: true}
    train.max_iter: {type: int, low: 100, high: 1000, step: 100}
    train.solver: {type: categorical, choices: [lbfgs, liblinear]}
  trials: 20          # per `conveyor tune` (default 20)
  timeout: 600        # seconds, optional
  sampler: tpe        # tpe (default), random, grid, cmaes
  pruner: median      # median, or none (default)
  jobs: 1             # trials at once
  stages: [train, evaluate]   # what each trial runs (default: the whole pipeline)
  study: classifier   # the study's name (default: the project folder's name)
  seed: 7             # the sampler's seed (optional): the same suggestions again
```

Parsing is pure: a mapping in, a :class:`TuneSpec` out, or a ConfigError naming the key.
Importing this module registers the section with :mod:`conveyor.foundation.project`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.validation import Where

SECTION = "tune"
KEYS = (
    "objective",
    "space",
    "trials",
    "timeout",
    "sampler",
    "pruner",
    "jobs",
    "stages",
    "study",
    "seed",
)
SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median")
TYPES = ("float", "int", "categorical")


class Dimension(NamedTuple):
    name: str  # the param, as -S names it: train.C or other.yaml:key
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


class TuneSpec(NamedTuple):
    metric: str
    direction: str  # "maximize" or "minimize"
    space: tuple[Dimension, ...]
    trials: int = 20
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "none"
    jobs: int = 1
    stages: tuple[str, ...] = ()
    study: str = ""
    intermediate: str = ""  # the key a pruner watches, logged with a step (default: metric)
    seed: int | None = None  # the sampler's seed: the same trials again


def parse(raw: Any, where: str | Where, default_study: str) -> TuneSpec:
    """``where`` is the section's ``file:line``, or a function from keys inside the section
    to the ``file:line`` of the deepest one written."""
    at: Where = where if callable(where) else (lambda keys: where)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{at(())}: 'tune' must be a mapping with 'objective' and 'space'")
    _check_keys(raw, "tune", at, ())
    objective = raw.get("objective")
    if not isinstance(objective, Mapping) or "metric" not in objective:
        raise ConfigError(
            f"{at(('objective',))}: tune.objective needs a metric",
            hint="objective: {metric: eval.auc, direction: maximize}",
        )
    _check_keys(objective, "objective", at, ("objective",))
    direction = str(objective.get("direction", "maximize"))
    if direction not in ("maximize", "minimize"):
        raise ConfigError(
            f"{at(('objective', 'direction'))}: tune.objective.direction is maximize or minimize"
        )
    space = raw.get("space")
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"{at(('space',))}: tune.space maps params to ranges", hint=_SPACE_HINT)
    dims = tuple(_dimension(str(k), v, at) for k, v in space.items())
    sampler = str(raw.get("sampler", "tpe"))
    pruner = str(raw.get("pruner", "none"))
    for value, allowed, key in ((sampler, SAMPLERS, "sampler"), (pruner, PRUNERS, "pruner")):
        if value not in allowed:
            raise ConfigError(
                f"{at((key,))}: tune.{key} {value!r} is not one of {', '.join(allowed)}",
                hint=did_you_mean(value, allowed),
            )
    if sampler == "grid" and any(d.type == "float" and d.step is None for d in dims):
        raise ConfigError(f"{at(('sampler',))}: a grid search needs a step for every float param")
    stages = raw.get("stages") or []
    if isinstance(stages, str):
        stages = [stages]
    timeout = raw.get("timeout")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{at(('seed',))}: tune.seed must be a whole number")
    study = str(raw.get("study") or _plain(default_study))
    if not _NAME.fullmatch(study):
        raise ConfigError(
            f"{at(('study',))}: tune.study {study!r} may hold only letters, digits, '_', '-'"
            " and '.'"
        )
    return TuneSpec(
        str(objective["metric"]),
        direction,
        dims,
        _positive(raw.get("trials", 20), at, "trials"),
        None if timeout is None else float(_positive(timeout, at, "timeout")),
        sampler,
        pruner,
        _positive(raw.get("jobs", 1), at, "jobs"),
        tuple(str(s) for s in stages),
        study,
        str(objective.get("intermediate") or ""),
        seed,
    )


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _plain(name: str) -> str:
    """A folder's name as a study name: other characters become '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip(".") or "study"


_SPACE_HINT = "space: {train.C: {type: float, low: 0.01, high: 10, log: true}}"


def _dimension(name: str, raw: Any, at: Where) -> Dimension:
    where = at(("space", name))
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise ConfigError(f"{where}: tune.space.{name} needs a type", hint=_SPACE_HINT)
    kind = str(raw["type"])
    if kind not in TYPES:
        raise ConfigError(
            f"{where}: tune.space.{name}: type {kind!r} is not one of {', '.join(TYPES)}",
            hint=did_you_mean(kind, TYPES),
        )
    if kind == "categorical":
        _check_keys(raw, kind, at, ("space", name))
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: tune.space.{name} needs a non-empty list of choices")
        return Dimension(name, kind, choices=tuple(choices))
    _check_keys(raw, "range", at, ("space", name))
    try:
        low, high = float(raw["low"]), float(raw["high"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: tune.space.{name} needs numbers low and high") from None
    if low >= high:
        raise ConfigError(f"{where}: tune.space.{name}: low must be below high")
    log = bool(raw.get("log", False))
    step = raw.get("step")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: tune.space.{name}: a log range needs low > 0 and no step")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}: tune.space.{name}: an int range needs whole low and high")
    if step is not None:
        try:
            step = float(step)
        except (TypeError, ValueError):
            step = 0.0
        if step <= 0 or (kind == "int" and step != int(step)):
            what = "a whole number above 0" if kind == "int" else "a number above 0"
            raise ConfigError(f"{where}: tune.space.{name}: step must be {what}")
    return Dimension(name, kind, low, high, step, log)


# The keys of each part, as pydantic-core schemas built on first use; the values' types are
# checked in parse(), each with its own message.
_PARTS = {
    "tune": KEYS,
    "objective": ("metric", "direction", "intermediate"),
    "categorical": ("type", "choices"),
    "range": ("type", "low", "high", "step", "log"),
}
_SCHEMAS: dict[str, tuple[Any, Any]] = {}


def _schema(part: str) -> tuple[Any, Any]:
    if part not in _SCHEMAS:
        from pydantic_core import SchemaValidator
        from pydantic_core import core_schema as cs

        from conveyor.foundation.validation import field

        schema = cs.typed_dict_schema(
            {k: field(cs.any_schema()) for k in _PARTS[part]}, extra_behavior="forbid"
        )
        _SCHEMAS[part] = (SchemaValidator(schema), schema)
    return _SCHEMAS[part]


def _check_keys(raw: Mapping[str, Any], part: str, at: Where, keys: tuple[str, ...]) -> None:
    what = ".".join(("tune", *keys))
    from conveyor.foundation.validation import Problem, validate

    def describe(problem: Problem, head: str) -> ConfigError:
        return ConfigError(
            f"{head}: unknown key {problem.key!r} in {what}",
            hint=did_you_mean(problem.key, problem.choices)
            or f"valid keys: {', '.join(problem.choices)}",
        )

    validator, schema = _schema(part)
    validate(validator, schema, dict(raw), lambda inner: at((*keys, *inner)), describe=describe)


def _positive(value: Any, at: Where, key: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{at((key,))}: tune.{key} must be a whole number of 1 or more")
    return number


project.register(
    SECTION,
    lambda raw, doc, root: parse(raw, lambda keys: doc.where(SECTION, *keys), root.name),
    owner="conveyor.tune",
)
