"""Validating a section of conveyor.yaml against a pydantic-core schema, and its errors in the
user's terms: ``conveyor.yaml:LINE``, the key, and the nearest valid key.

Every section (stages, gates, tune, models, and later deploy and monitor) is checked this way:
its owner writes the shape as a pydantic-core schema and keeps only the rules a schema cannot
say (``vs:`` needs ``min_change:``) in Python. pydantic-core is imported by the schemas, never by
this module, so that commands which validate nothing never pay for it.

    >>> from pydantic_core import SchemaValidator, core_schema as cs
    >>> schema = cs.typed_dict_schema({"path": field(cs.str_schema())}, extra_behavior="forbid")
    >>> validate(SchemaValidator(schema), schema, {"pth": "m"}, lambda keys: "conveyor.yaml:3")
    Traceback (most recent call last):
    conveyor.foundation.errors.ConfigError: conveyor.yaml:3: unknown key 'pth'
      hint: did you mean 'path'?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from pydantic_core import SchemaValidator
    from pydantic_core.core_schema import CoreSchema

Loc = tuple[int | str, ...]
# keys inside the section -> "conveyor.yaml:LINE" of the deepest one the file holds
Where = Callable[[tuple[str, ...]], str]


class Problem:
    """One validation error, its location cut down to the keys and items the data holds."""

    def __init__(self, error: Any, loc: Loc, choices: tuple[str, ...]) -> None:
        self.type: str = error["type"]
        self.input: Any = error.get("input")
        self.ctx: dict[str, Any] = dict(error.get("ctx") or {})
        self.msg: str = str(error["msg"])
        self.loc = loc
        self.choices = choices  # the keys allowed where an unknown key was found

    @property
    def key(self) -> str:
        return str(self.loc[-1]) if self.loc else ""

    @property
    def path(self) -> str:
        return ".".join(str(p) for p in self.loc)


# A section's own wording of a problem, given it and the message's start ("conveyor.yaml:4:
# stage 'train'"); None: the common wording.
Describe = Callable[[Problem, str], "ConfigError | None"]


def field(schema: CoreSchema, default: Any = None, *, required: bool = False) -> Any:
    """A typed-dict field: required, or optional with ``default``."""
    from pydantic_core import core_schema as cs

    if required:
        return cs.typed_dict_field(schema, required=True)
    return cs.typed_dict_field(cs.with_default_schema(schema, default=default), required=False)


def validate(
    validator: SchemaValidator,
    schema: CoreSchema,
    data: Any,
    where: Where,
    *,
    label: str = "",
    describe: Describe | None = None,
    extra_keys: Sequence[str] = (),
) -> Any:
    """``data`` validated (defaults filled in), or one ConfigError listing every problem.

    ``label`` starts each message after the location (``stage 'train'``); ``describe`` words a
    problem the section's own way; ``extra_keys`` are valid top-level keys the schema does not
    hold (a stage's ``foreach``), offered as suggestions.
    """
    from pydantic_core import ValidationError

    try:
        return validator.validate_python(data)
    except ValidationError as exc:
        # One problem per key (per item of a list): a union reports one per member, of which an
        # unknown key is the one that helps most.
        by_place: dict[Loc, Problem] = {}
        for error in exc.errors():
            loc, choices = _walk(error["loc"], data, schema)
            if error["type"] == "extra_forbidden" and len(loc) == 1:
                choices = (*choices, *extra_keys)
            problem = Problem(error, loc, choices)
            place = loc[:2]
            if place not in by_place or problem.type == "extra_forbidden":
                by_place[place] = problem
        errors = [_translate(p, where, label, describe) for p in by_place.values()]
        raise combine(errors) from None


def _translate(
    problem: Problem, where: Where, label: str, describe: Describe | None
) -> ConfigError:
    at = where(tuple(str(p) for p in problem.loc if isinstance(p, str)))
    head = f"{at}: {label}" if label else at
    worded = describe(problem, head) if describe is not None else None
    if worded is not None:
        return worded
    if problem.type == "extra_forbidden":
        return ConfigError(
            f"{head}: unknown key {problem.key!r}",
            hint=did_you_mean(problem.key, problem.choices)
            or f"valid keys: {', '.join(problem.choices)}",
        )
    if problem.type == "missing":
        return ConfigError(
            f"{head} has no {problem.key!r}" if label else f"{head}: no {problem.key!r}"
        )
    return ConfigError(f"{head}: {problem.path or '(section)'}: {common_message(problem)}")


def common_message(problem: Problem) -> str:
    """The usual wording of a type or value problem, naming the value given."""
    kind, given = problem.type, problem.input
    if kind.startswith("bool"):
        return "expected true or false"
    if kind.startswith(("float", "int")) and kind.endswith(("type", "parsing")):
        whole = "a whole number" if kind.startswith("int") else "a number"
        return f"{whole}, not {given!r}"
    bound = _BOUNDS.get(kind)
    if bound is not None:
        word, ctx_key = bound
        return f"{word} {problem.ctx.get(ctx_key)}, not {given!r}"
    if kind == "literal_error":
        return f"one of {problem.ctx.get('expected', '')}, not {given!r}"
    if kind.startswith("string"):
        return f"expected text, not {given!r}"
    return problem.msg.lower()


def combine(errors: Iterable[ConfigError]) -> ConfigError:
    """Several errors as one, each on its own lines as the CLI prints an error and its hint;
    the parts stay in :attr:`ConfigErrors.parts`, so that a caller can merge them again."""
    unique = list({str(e): e for e in flatten(errors)}.values())
    if len(unique) == 1:
        return unique[0]
    shown = unique
    if len(unique) > _SHOWN:  # a matrix repeats one mistake per stage: the first ones say it
        more = ConfigError(f"... and {len(unique) - _SHOWN} more errors", hint=None)
        shown = [*unique[:_SHOWN], more]
    text = "\nerror: ".join([*(str(e) for e in shown[:-1]), shown[-1].message])
    return ConfigErrors(text, hint=shown[-1].hint, parts=tuple(unique))


class ConfigErrors(ConfigError):
    """Several mistakes reported as one error; ``parts`` holds each of them."""

    def __init__(self, message: str, *, hint: str | None, parts: tuple[ConfigError, ...]) -> None:
        super().__init__(message, hint=hint)
        self.parts = parts


def flatten(errors: Iterable[ConfigError]) -> list[ConfigError]:
    """Errors, each combined one replaced by its parts."""
    out: list[ConfigError] = []
    for error in errors:
        out.extend(error.parts if isinstance(error, ConfigErrors) else (error,))
    return out


_SHOWN = 20
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("above", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("below", "lt"),
}


def _walk(loc: Loc, data: Any, schema: CoreSchema) -> tuple[Loc, tuple[str, ...]]:
    """The part of pydantic's location that exists in the data or the schema (union member tags
    dropped), and the keys the schema allows where the last part sits."""
    out: list[int | str] = []
    node = data
    schemas = _concrete([schema])
    before = schemas
    for part in loc:
        step: list[Any] = []
        for s in schemas:
            kind = s["type"]
            if kind == "typed-dict" and part in s["fields"]:
                step.append(s["fields"][part]["schema"])
            elif kind == "list" and isinstance(part, int):
                step.append(s.get("items_schema", {"type": "any"}))
            elif kind == "dict" and isinstance(node, dict) and part in node:
                step.append(s.get("values_schema", {"type": "any"}))
        indexable = (isinstance(node, list) and isinstance(part, int) and part < len(node)) or (
            isinstance(node, dict) and part in node
        )
        if not step and not indexable:
            continue  # a union member's tag
        node = node[part] if indexable else None
        out.append(part)
        before, schemas = schemas, _concrete(step)
    choices = tuple(
        dict.fromkeys(k for s in before if s["type"] == "typed-dict" for k in s["fields"])
    )
    return tuple(out), choices


def _concrete(schemas: list[Any]) -> list[Any]:
    """Schemas with their wrappers (defaults, nullables, unions) opened."""
    out: list[Any] = []
    todo = list(schemas)
    while todo:
        s = todo.pop(0)
        kind = s["type"]
        if kind in ("default", "nullable"):
            todo.append(s["schema"])
        elif kind == "union":
            todo.extend(c[0] if isinstance(c, tuple) else c for c in s["choices"])
        elif kind == "tagged-union":
            todo.extend(s["choices"].values())
        else:
            out.append(s)
    return out
