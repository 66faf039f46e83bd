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
# A stage's plots entry may carry DVC's plot properties beside the flags (checked by plot()).
_PLOT_FLAGS = cs.typed_dict_schema(
    {
        **_FLAGS["fields"],
        **{
            k: _field(cs.any_schema())
            for k in ("x", "y", "template", "title", "x_label", "y_label")
        },
    },
    extra_behavior="forbid",
)
_PLOTS = cs.list_schema(
    cs.union_schema(
        [cs.str_schema(), cs.dict_schema(cs.str_schema(), cs.nullable_schema(_PLOT_FLAGS))]
    )
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
        "plots": _field(_PLOTS, []),
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
PLOT_FLAG_KEYS = tuple(_PLOT_FLAGS["fields"])
_VALIDATOR = SchemaValidator(_STAGE)


def validate(
    body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str
) -> dict[str, Any]:
    """``body`` (already interpolated) with defaults filled in; errors name file, line and key."""
    try:
        return dict(_VALIDATOR.validate_python(body))
    except ValidationError as exc:
        # One error per key (per item of a list): a union reports one per member, of which an
        # unknown key is the one that helps most.
        by_place: dict[tuple[int | str, ...], Any] = {}
        for error in exc.errors():
            place = tuple(_real_loc(error["loc"], body)[:2])
            if place not in by_place or error["type"] == "extra_forbidden":
                by_place[place] = error
        errors = [_translate(e, body, doc, keys, name) for e in by_place.values()]
        raise combine(errors) from None


def combine(errors: list[ConfigError]) -> ConfigError:
    """Several errors as one, each on its own lines as the CLI prints an error and its hint."""
    if len(errors) == 1:
        return errors[0]
    unique = list({str(e): e for e in errors}.values())
    if len(unique) > _SHOWN:  # a matrix repeats one mistake per stage: the first ones say it
        more = ConfigError(f"... and {len(unique) - _SHOWN} more errors", hint=None)
        unique = [*unique[:_SHOWN], more]
    text = "\nerror: ".join([*(str(e) for e in unique[:-1]), unique[-1].message])
    return ConfigError(text, hint=unique[-1].hint)


_SHOWN = 20


def _translate(
    error: Any, body: dict[str, Any], doc: Located, keys: tuple[str, ...], name: str
) -> ConfigError:
    loc = _real_loc(error["loc"], body)
    where = doc.where(*keys, *[str(p) for p in loc if isinstance(p, str)])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) == 1:
            choices: tuple[str, ...] = STAGE_KEYS + EXPANSION_KEYS
        else:
            choices = PLOT_FLAG_KEYS if loc[0] == "plots" else FLAG_KEYS
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
    return {*STAGE_KEYS, *PLOT_FLAG_KEYS}


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
