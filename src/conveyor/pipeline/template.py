"""Templating in ``conveyor.yaml``: ``${...}`` interpolation, ``foreach:`` and ``matrix:``.

Names resolve, in order, from the expansion's item (``${item}``, ``${item.lr}``, ``${key}``),
from ``vars:``, and from the default params file (``${train.lr}``, or explicitly
``${params.train.lr}``). A string that is exactly one ``${...}`` keeps the value's type (a list
stays a list); inside a longer string the value is formatted. ``\\${`` is a literal ``${``.
Every name taken from the params file is reported back so that the stage depends on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.pipeline import params as params_mod

_REF = re.compile(r"(\\)?\$\{\s*([^{}]*?)\s*\}")
# One definition may stand for this many stages at most: every stage is validated, hashed and
# planned, so a matrix of 10^6 combinations (three axes of 100) would hang compiling.
MAX_EXPANSIONS = 1000
# And a whole pipeline this many: compiling costs ~0.3 ms a stage, planning more.
MAX_STAGES = 10_000
_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")


class Context:
    """What ``${...}`` can name: an expansion's item, vars, and the default params file."""

    def __init__(
        self,
        variables: Mapping[str, Any],
        params: Mapping[str, Any],
        local: Mapping[str, Any] | None = None,
    ) -> None:
        self.variables = variables
        self.params = params
        self.local = local or {}
        self.used_params: set[str] = set()

    def child(self, local: Mapping[str, Any]) -> Context:
        ctx = Context(self.variables, self.params, {**self.local, **local})
        ctx.used_params = self.used_params
        return ctx

    def resolve(self, name: str, where: str) -> Any:
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: ${{{name}}} is not a name", hint="write ${section.key}")
        for source in (self.local, self.variables):
            value = params_mod.lookup(source, name)
            if value is not params_mod.MISSING:
                return value
        key = name.removeprefix("params.")
        value = params_mod.lookup(self.params, key)
        if value is not params_mod.MISSING:
            self.used_params.add(key)
            return value
        known = [
            *params_mod.keys(self.local),
            *params_mod.keys(self.variables),
            *params_mod.keys(self.params),
        ]
        raise ConfigError(
            f"{where}: ${{{name}}} names nothing in vars, params or the expansion's item",
            hint=did_you_mean(name, known),
        )

    def render(self, value: Any, where: str) -> Any:
        """Interpolate every string inside ``value`` (lists and mappings walked)."""
        if isinstance(value, str):
            return self._render_str(value, where)
        if isinstance(value, list):
            return [self.render(v, where) for v in value]
        if isinstance(value, dict):
            return {self.render(k, where): self.render(v, where) for k, v in value.items()}
        return value

    def _render_str(self, text: str, where: str) -> Any:
        if "${" not in text:
            return text
        whole = _REF.fullmatch(text)
        if whole and not whole.group(1):
            return self.resolve(whole.group(2), where)

        def sub(match: re.Match[str]) -> str:
            if match.group(1):
                return match.group(0)[1:]
            value = self.resolve(match.group(2), where)
            if isinstance(value, dict | list):
                raise ConfigError(
                    f"{where}: ${{{match.group(2)}}} is a {type(value).__name__}, "
                    "which cannot be part of a longer string"
                )
            return _format(value)

        return _REF.sub(sub, text)


class Expansion(NamedTuple):
    name: str  # "train@lr-0.1"
    body: dict[str, Any]
    local: dict[str, Any]  # what ${item...} / ${key} name inside this expansion


def expand(name: str, raw: Mapping[str, Any], ctx: Context, where: str) -> Iterator[Expansion]:
    """One stage definition -> the stages it stands for (one, or one per item / combination)."""
    if "foreach" in raw:
        extra = set(raw) - {"foreach", "do"}
        if extra or "do" not in raw:
            raise ConfigError(
                f"{where}: stage {name!r}: a foreach stage holds only 'foreach' and 'do'",
                hint=f"move {sorted(extra)[0]!r} under 'do:'" if extra else "add a 'do:' body",
            )
        body = raw["do"]
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: stage {name!r}: 'do' must be a mapping of stage keys")
        items = ctx.render(raw["foreach"], f"{where}: stage {name!r}")
        if isinstance(items, dict | list):
            _bound(len(items), name, where, "foreach")
        if isinstance(items, dict):
            for key, item in items.items():
                yield Expansion(f"{name}@{key}", body, {"item": item, "key": key})
        elif isinstance(items, list):
            for index, item in enumerate(items):
                label = _format(item) if _scalar(item) else str(index)
                yield Expansion(f"{name}@{label}", body, {"item": item, "key": index})
        else:
            raise ConfigError(f"{where}: stage {name!r}: 'foreach' must be a list or a mapping")
        return
    if "matrix" in raw:
        axes = ctx.render(raw["matrix"], f"{where}: stage {name!r}")
        if not isinstance(axes, dict) or not axes:
            raise ConfigError(f"{where}: stage {name!r}: 'matrix' maps names to lists of values")
        for axis, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"{where}: stage {name!r}: matrix axis {axis!r} must be a non-empty list"
                )
        combinations = 1
        for values in axes.values():
            combinations *= len(values)
        _bound(combinations, name, where, "matrix")
        body = {k: v for k, v in raw.items() if k != "matrix"}
        for combo in _product(list(axes.items())):
            label = "-".join(
                f"{axis}-{_format(v) if _scalar(v) else i}" for axis, (i, v) in combo.items()
            )
            item = {axis: v for axis, (_, v) in combo.items()}
            yield Expansion(f"{name}@{label}", body, {"item": item})
        return
    yield Expansion(name, dict(raw), {})


def _bound(count: int, name: str, where: str, what: str) -> None:
    if count > MAX_EXPANSIONS:
        raise ConfigError(
            f"{where}: stage {name!r}: '{what}' makes {count} stages (at most {MAX_EXPANSIONS})",
            hint="split it into several stages, or tune the values with `conveyor tune`",
        )


def _product(axes: list[tuple[str, list[Any]]]) -> Iterator[dict[str, tuple[int, Any]]]:
    if not axes:
        yield {}
        return
    (axis, values), rest = axes[0], axes[1:]
    for i, value in enumerate(values):
        for tail in _product(rest):
            yield {axis: (i, value), **tail}


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)
