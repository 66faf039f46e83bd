"""The ``models:`` section of conveyor.yaml: the models a pipeline writes, by name.

    models:
      classifier:
        path: models/classifier     # a package folder the pipeline writes
        desc: the churn classifier  # optional

Registered with :mod:`conveyor.foundation.project` when imported; :func:`declared` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from conveyor.foundation.validation import Problem
    from conveyor.foundation.yamlio import Located

SECTION = "models"
KEYS = ("path", "desc")
_EXAMPLE = "models:\n  classifier:\n    path: models/classifier"
_SCHEMA: Any = None


def _schema() -> Any:
    global _SCHEMA
    if _SCHEMA is None:  # pydantic-core on first use: a command that reads no models skips it
        from pydantic_core import SchemaValidator
        from pydantic_core import core_schema as cs

        from conveyor.foundation.validation import field

        model = cs.typed_dict_schema(
            {
                "path": field(cs.str_schema(strict=True), required=True),
                "desc": field(cs.str_schema()),
            },
            extra_behavior="forbid",
        )
        schema = cs.dict_schema(cs.str_schema(), model)
        _SCHEMA = (SchemaValidator(schema), schema)
    return _SCHEMA


def parse(raw: Any, doc: Located, root: Path | None = None) -> dict[str, str]:
    """Model name -> package path; every mistake in the section in one ConfigError."""
    from conveyor.foundation.validation import combine, flatten, validate
    from conveyor.registry.uris import check_name

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{doc.where(SECTION)}: 'models' maps model names to {{path: ...}}", hint=_EXAMPLE
        )
    errors: list[ConfigError] = []
    for name in raw:
        try:
            check_name(str(name))
        except ConfigError as exc:
            errors.append(
                ConfigError(f"{doc.where(SECTION, str(name))}: {exc.message}", hint=exc.hint)
            )
    validator, schema = _schema()
    try:
        validate(validator, schema, raw, lambda keys: doc.where(SECTION, *keys), describe=_describe)
    except ConfigError as exc:
        errors.append(exc)
    if errors:
        raise combine(sorted(flatten(errors), key=project.line_of))
    return {str(name): spec["path"] for name, spec in raw.items()}


def _describe(problem: Problem, head: str) -> ConfigError | None:
    if len(problem.loc) == 1 or problem.loc[1:] == ("path",):  # not a mapping, or no text path
        return ConfigError(f"{head}: model {str(problem.loc[0])!r} needs a path", hint=_EXAMPLE)
    if problem.type == "extra_forbidden":
        return ConfigError(
            f"{head}: model {str(problem.loc[0])!r}: unknown key {problem.key!r}",
            hint=did_you_mean(problem.key, KEYS) or f"valid keys: {', '.join(KEYS)}",
        )
    return ConfigError(f"{head}: model {str(problem.loc[0])!r}: {problem.path}: expected text")


def declared(root: Path) -> dict[str, str]:
    """The ``models:`` section of the project at ``root``: model name -> package path."""
    return project.section(root, SECTION) or {}


project.register(SECTION, parse, owner=__package__ or "")
