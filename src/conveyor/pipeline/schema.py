"""The user-facing schema of a stage in ``conveyor.yaml`` (pydantic), and its error messages.

Imported only when ``conveyor.yaml`` or a params file changed since the last compile: a no-op
run or status never pays for pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.yamlio import Located

TOP_KEYS = ("stages", "vars", "tune", "gates", "models", "deploy", "monitor")
EXPANSION_KEYS = ("foreach", "do", "matrix")


class OutFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cache: bool = True
    persist: bool = False


PathList = list[str | dict[str, OutFlags | None]]


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cmd: str | list[str]
    deps: list[str] = Field(default_factory=list)
    params: list[str | dict[str, list[str] | None]] = Field(default_factory=list)
    outs: PathList = Field(default_factory=list)
    metrics: PathList = Field(default_factory=list)
    plots: PathList = Field(default_factory=list)
    wdir: str = "."
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    frozen: bool = False
    always_changed: bool = False
    desc: str = ""


STAGE_KEYS = tuple(StageSpec.model_fields)


def validate(body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str) -> StageSpec:
    """``body`` (already interpolated) as a StageSpec; errors name the file, line and key."""
    try:
        return StageSpec.model_validate(body)
    except ValidationError as exc:
        raise _translate(exc, body, doc, keys, name) from None


def _translate(
    exc: ValidationError, body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str
) -> ConfigError:
    error = exc.errors()[0]
    loc = _real_loc(error["loc"], body)
    where = doc.where(*keys, *[str(p) for p in loc if isinstance(p, str)])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) == 1:
            choices: tuple[str, ...] = STAGE_KEYS + EXPANSION_KEYS
        else:
            choices = tuple(OutFlags.model_fields)
        return ConfigError(
            f"{where}: stage {name!r}: unknown key {key!r}",
            hint=did_you_mean(key, choices) or f"valid keys: {', '.join(choices)}",
        )
    if kind == "missing":
        missing = str(error["loc"][-1])
        return ConfigError(
            f"{where}: stage {name!r} has no {missing!r}",
            hint="every stage needs a 'cmd': the command that produces its outs",
        )
    path = ".".join(str(p) for p in loc) or "(stage)"
    return ConfigError(f"{where}: stage {name!r}: {path}: {_message(error, path)}")


def _real_loc(loc: tuple[int | str, ...], body: Any) -> list[int | str]:
    """The part of pydantic's location that exists in the data (drops union member tags)."""
    out: list[int | str] = []
    node = body
    for part in loc:
        indexable = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if indexable or (isinstance(node, dict) and part in node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in _all_keys():
            pass  # a key pydantic expected but the data lacks
        else:
            continue
        out.append(part)
    return out


def _all_keys() -> set[str]:
    return {*STAGE_KEYS, *OutFlags.model_fields}


def _message(error: Any, path: str) -> str:
    kind = error["type"]
    if path.startswith(("outs", "metrics", "plots")):
        return "expected a path, or {path: {cache: BOOL, persist: BOOL}}"
    if path.startswith("params"):
        return "expected a param key (train.lr), or {params-file: [keys]}"
    if kind.startswith("bool"):
        return "expected true or false"
    if path.startswith("cmd"):
        return "expected a command, or a list of commands run one after another"
    return str(error["msg"]).lower()
