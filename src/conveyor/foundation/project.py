"""``conveyor.yaml``, the project file: read once, each top-level section validated by its layer.

The file is parsed once per process for each state of its bytes (an edit between two reads is
seen; an unchanged file is never parsed twice), through :mod:`conveyor.foundation.yamlio`, so
every key keeps its line for messages.

The loader owns the top level: which sections a conveyor.yaml may hold (:data:`NAMES`), and the
one error for any other key. The layers own their sections. Each registers a parser when its
config module is imported::

    project.register("gates", parse_gates, owner="conveyor.gates")

A parser takes the section as written, the document (for lines) and the project root, and
returns the section's value or raises a :class:`ConfigError` (several mistakes combined into one,
see :func:`conveyor.foundation.validation.combine`). Parsers validate with pydantic-core schemas
through :mod:`conveyor.foundation.validation`, so every error names ``conveyor.yaml:LINE``, the
key and the nearest valid key.

Registration follows imports, so a process validates the sections of the layers it imports and
no others: a model server, which must not import the pipeline, reads ``models:`` without
compiling ``stages:``; a section whose owner is not imported is accepted as written (its owner
validates it wherever it is used). :data:`NAMES` lists every section, registered here or not, so
that no process calls a valid section unknown. ``deploy:`` came
that way (registered by :mod:`conveyor.deploy.config`); ``monitor:`` is a placeholder, accepted
as written until its layer registers a parser, which needs no change here. A new
section registers under a new name. The CLI imports every layer's config module, so that
``conveyor check`` (through :func:`check`) reports every mistake in the file at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

FILE = "conveyor.yaml"
# metrics, plots and artifacts are DVC's top-level sections, so that dvc.yaml moves over as is.
NAMES = (
    "stages",
    "vars",
    "metrics",
    "plots",
    "artifacts",
    "tune",
    "gates",
    "models",
    "deploy",
    "monitor",
    "executor",
)

# (section as written, the document, the project root) -> the section's value
Parse = Callable[[Any, yamlio.Located, Path], Any]


@dataclass(frozen=True)
class Section:
    name: str
    parse: Parse | None  # None: a placeholder, accepted as written
    owner: str = ""  # the package that registered the parser


_SECTIONS: dict[str, Section] = {name: Section(name, None) for name in NAMES}
# path -> (the bytes last parsed, their document)
_READ: dict[Path, tuple[bytes, yamlio.Located | None]] = {}


def register(name: str, parse: Parse | None, *, owner: str = "") -> None:
    """Make ``parse`` the validator of section ``name`` (a new name becomes a valid section);
    ``parse=None`` accepts the section as written."""
    _SECTIONS[name] = Section(name, parse, owner)


def registered(name: str) -> Section | None:
    return _SECTIONS.get(name)


def names() -> tuple[str, ...]:
    """Every valid top-level key, in the order the docs list them."""
    return tuple(_SECTIONS)


def document(root: Path) -> yamlio.Located | None:
    """The parsed conveyor.yaml of the project at ``root``, or None when there is none.

    Parsed once per state of the file's bytes; callers must not change what it holds."""
    path = root / FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{FILE} cannot be read: {exc}") from exc
    key = path.absolute()
    seen = _READ.get(key)
    if seen is not None and seen[0] == raw:
        return seen[1]
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{FILE} cannot be read: {exc}") from exc
    doc = yamlio.load(text, FILE)
    _READ[key] = (raw, doc)
    return doc


def top(doc: yamlio.Located | None) -> dict[str, Any]:
    """The top-level mapping of ``doc`` ({} for an empty file)."""
    if doc is None or doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{doc.source}: the top level must be a mapping with a 'stages:' section",
            hint=f"its sections: {', '.join(names())}",
        )
    return doc.data


def section(root: Path, name: str) -> Any:
    """Section ``name`` of the project's conveyor.yaml as its layer parses it; None when the
    file or the section is absent."""
    doc = document(root)
    data = top(doc)
    if doc is None or data.get(name) is None:
        return None
    entry = _SECTIONS.get(name)
    if entry is None or entry.parse is None:
        return data[name]
    return entry.parse(data[name], doc, root)


def unknown(doc: yamlio.Located | None) -> list[ConfigError]:
    """One error for each top-level key that is no section."""
    if doc is None:
        return []
    valid = names()
    return [
        ConfigError(
            f"{doc.where(str(key))}: unknown section {key!r}",
            hint=did_you_mean(str(key), valid) or f"sections: {', '.join(valid)}",
        )
        for key in top(doc)
        if key not in valid
    ]


def check(root: Path) -> None:
    """Validate the whole file: unknown sections and every registered section, each mistake
    reported in one ConfigError, in the order a reader meets them."""
    from conveyor.foundation.validation import combine, flatten

    doc = document(root)
    errors = unknown(doc)
    for name, raw in top(doc).items():
        entry = _SECTIONS.get(name)
        if doc is None or raw is None or entry is None or entry.parse is None:
            continue
        try:
            entry.parse(raw, doc, root)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise combine(sorted(flatten(errors), key=line_of))


def line_of(error: ConfigError) -> int:
    """The conveyor.yaml line an error names (0 when it names none)."""
    head, _, rest = error.message.partition(":")
    line = rest.partition(":")[0]
    return int(line) if head == FILE and line.isdigit() else 0
