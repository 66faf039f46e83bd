"""The user-facing schema of a stage in ``conveyor.yaml`` (pydantic-core), and its wording of
errors (the translation into file, line and key is :mod:`conveyor.foundation.validation`'s).

Imported only when ``conveyor.yaml`` or a params file changed since the last compile: a no-op
run or status never pays for pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from conveyor.foundation import validation
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import Problem, field
from conveyor.foundation.yamlio import Located

EXPANSION_KEYS = ("foreach", "do", "matrix")


# The schema is written in pydantic-core's own terms rather than as pydantic models: validation
# is identical, and compiling a pipeline does not pay ~150 ms to import pydantic's model layer.
_FLAGS = cs.typed_dict_schema(
    {"cache": field(cs.bool_schema(), True), "persist": field(cs.bool_schema(), False)},
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
            k: field(cs.any_schema()) for k in ("x", "y", "template", "title", "x_label", "y_label")
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
        "cmd": field(
            cs.union_schema([cs.str_schema(), cs.list_schema(cs.str_schema())]), required=True
        ),
        "deps": field(cs.list_schema(cs.str_schema()), []),
        "params": field(_PARAMS, []),
        "outs": field(_PATHS, []),
        "metrics": field(_PATHS, []),
        "plots": field(_PLOTS, []),
        "wdir": field(cs.str_schema(), "."),
        "env": field(cs.dict_schema(cs.str_schema(), _SCALAR), {}),
        "frozen": field(cs.bool_schema(), False),
        "always_changed": field(cs.bool_schema(), False),
        "desc": field(cs.str_schema(), ""),
        # Checked key by key in resources.parse(), each mistake with its own message.
        "resources": field(cs.dict_schema(cs.str_schema(), cs.any_schema()), {}),
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
    return dict(
        validation.validate(
            _VALIDATOR,
            _STAGE,
            body,
            lambda path: doc.where(*keys, *path),
            label=f"stage {name!r}",
            describe=_describe,
            extra_keys=EXPANSION_KEYS,
        )
    )


def _describe(problem: Problem, head: str) -> ConfigError | None:
    if problem.type == "extra_forbidden":
        return None
    if problem.type == "missing":
        return ConfigError(
            f"{head} has no {problem.key!r}",
            hint="every stage needs a 'cmd': the command that produces its outs",
        )
    path = problem.path or "(stage)"
    return ConfigError(f"{head}: {path}: {_message(problem, path)}")


def _message(problem: Problem, path: str) -> str:
    if path.startswith(("outs", "metrics", "plots")):
        return "expected a path, or {path: {cache: BOOL, persist: BOOL}}"
    if path.startswith("params"):
        return "expected a param key (train.lr), or {params-file: [keys]}"
    if problem.type.startswith("bool"):
        return "expected true or false"
    if path.startswith("resources"):
        return "expected a mapping such as {cpus: 2, gpus: 1, memory: 4GiB}"
    if path.startswith("cmd"):
        return "expected a command, or a list of commands run one after another"
    return problem.msg.lower()
