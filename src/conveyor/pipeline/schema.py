"""The user-facing schema of a stage in ``conveyor.yaml`` (pydantic-core), and its error messages.

Imported only when ``conveyor.yaml`` or a params file changed since the last compile: a no-op
run or status never pays for pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.yamlio import Located

EXPANSION_KEYS = ("foreach", "do", "matrix")


def _field(schema: cs.CoreSchema, default: Any = None, *, required: bool = False) -> Any:
    if required:
        return cs.typed_dict_field(schema, required=True)
    return cs.typed_dict_field(cs.with_default_schema(schema, default=default), required=False)


# The schema is written in pydantic-core's own terms rather than as pydantic models: validation
# is identical, and compiling a pipeline does not pay ~150 ms to import pydantic's model layer.
_FLAGS = cs.typed_dict_schema(
    {"cache": _field(cs.bool_schema(), True), "persist": _field(cs.bool_schema(), False)},
    extra_behavior="forbid",
)
_PATHS = cs.list_schema(
    cs.union_schema([cs.str_schema(), cs.dict_schema(cs.str_schema(), cs.nullable_schema(_FLAGS))])
)
_PARAMS = cs.list_schema(
    cs.union_schema(
        [
            cs.str_schema(),
            cs.dict_schema(cs.str_schema(), cs.nullable_schema(cs.list_schema(cs.str_schema()))),
        ]
    )
)
_SCALAR = cs.union_schema(
    [cs.str_schema(strict=True), cs.bool_schema(strict=True), cs.int_schema(), cs.float_schema()]
)
_STAGE = cs.typed_dict_schema(
    {
        "cmd": _field(
            cs.union_schema([cs.str_schema(), cs.list_schema(cs.str_schema())]), required=True
        ),
        "deps": _field(cs.list_schema(cs.str_schema()), []),
        "params": _field(_PARAMS, []),
        "outs": _field(_PATHS, []),
        "metrics": _field(_PATHS, []),
        "plots": _field(_PATHS, []),
        "wdir": _field(cs.str_schema(), "."),
        "env": _field(cs.dict_schema(cs.str_schema(), _SCALAR), {}),
        "frozen": _field(cs.bool_schema(), False),
        "always_changed": _field(cs.bool_schema(), False),
        "desc": _field(cs.str_schema(), ""),
    },
    extra_behavior="forbid",
)
STAGE_KEYS = tuple(_STAGE["fields"])
FLAG_KEYS = tuple(_FLAGS["fields"])
_VALIDATOR = SchemaValidator(_STAGE)


def validate(
    body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str
) -> dict[str, Any]:
    """``body`` (already interpolated) with defaults filled in; errors name file, line and key."""
    try:
        return dict(_VALIDATOR.validate_python(body))
    except ValidationError as exc:
        raise _translate(exc, body, doc, keys, name) from None


def _translate(
    exc: ValidationError, body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str
) -> ConfigError:
    errors = exc.errors()
    # A union reports one error per member; an unknown key is the one that helps most.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _real_loc(error["loc"], body)
    where = doc.where(*keys, *[str(p) for p in loc if isinstance(p, str)])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) == 1:
            choices: tuple[str, ...] = STAGE_KEYS + EXPANSION_KEYS
        else:
            choices = FLAG_KEYS
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
    return {*STAGE_KEYS, *FLAG_KEYS}


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
