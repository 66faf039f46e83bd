"""Reading YAML that users write, with the line of every key for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConfigError

if TYPE_CHECKING:
    import yaml


_LOADER: Any = None

# YAML 1.2's floats: PyYAML follows YAML 1.1, which reads 1e-5 (no dot) as a string, and a
# learning rate written that way would silently become text.
_FLOAT = r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"""


def _loader() -> Any:
    global _LOADER
    if _LOADER is None:
        import re

        import yaml  # imported on first use: commands that read no YAML never pay for it

        # The C loader is ten times faster; fall back where libyaml is missing.
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loader: Any = type("Loader", (base,), {})
        # Copy before adding: the resolver table is shared with every SafeLoader otherwise.
        loader.yaml_implicit_resolvers = {
            k: list(v) for k, v in base.yaml_implicit_resolvers.items()
        }
        loader.add_implicit_resolver(
            "tag:yaml.org,2002:float", re.compile(_FLOAT, re.X), list("-+0123456789.")
        )
        _LOADER = loader
    return _LOADER


class Located:
    """A parsed YAML document plus the line (1-based) of each mapping key, by key path."""

    def __init__(self, data: Any, lines: dict[tuple[str, ...], int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, *keys: str) -> str:
        """``file:line`` of the deepest known key on the path, for messages."""
        for n in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:n]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source


def load(text: str, source: str) -> Located:
    """Parse ``text``; a syntax error becomes a ConfigError naming ``source`` and the line."""
    import yaml

    loader = _loader()
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if node is None:
        return Located(None, {}, source)
    lines: dict[tuple[str, ...], int] = {}
    _collect_lines(node, (), lines, source)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:  # a tag such as !ref that safe loading refuses
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    return Located(data, lines, source)


def load_file(path: Path, display: str | None = None) -> Located:
    source = display or str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source} cannot be read: {exc}") from exc
    return load(text, source)


def dump(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _collect_lines(
    node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int], source: str
) -> None:
    """Record each key's line; a key given twice in one mapping is an error, not a silent
    overwrite (YAML loaders keep the last one: a second stage ``train`` would hide the first)."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key in out and isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    f"{source}:{line}: {'.'.join(key)!r} is given twice (first at line {out[key]})",
                    hint="keep one of them: YAML would silently use only the last",
                )
            out[key] = line
            _collect_lines(value_node, key, out, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):  # items by position: ("gates", "checks", "0")
            out[(*path, str(i))] = item.start_mark.line + 1
            _collect_lines(item, (*path, str(i)), out, source)
