"""Reading YAML that users write, with the line of every key for error messages.

Every YAML file conveyor reads (conveyor.yaml, params files, pointers, the lock, MLmodel files)
goes through :func:`load`, which refuses, before building anything, what would hang or exhaust
memory: aliases that expand past :data:`MAX_ALIAS_NODES` nodes ("billion laughs"), an alias to
the collection it sits in, nesting deeper than :data:`MAX_DEPTH`, and numbers longer than
:data:`MAX_NUMBER_CHARS` characters. Each refusal is a ConfigError naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConfigError

if TYPE_CHECKING:
    import yaml

# Aliases share one parsed object, but every reader that walks the data (templating, params
# flattening, the lock, JSON) expands them: 9 levels of 10 aliases is 10^9 nodes.
MAX_ALIAS_NODES = 100_000
# PyYAML's C composer recurses once per level without a recursion check (a crash, not an
# error), and its constructor and our line collector recurse too. No config nests this deep.
MAX_DEPTH = 100
# Python refuses to convert ints past 4300 digits (ValueError), and sexagesimal ints cost
# quadratic time; no param or pointer field needs a number this long.
MAX_NUMBER_CHARS = 100

_LOADER: Any = None

# YAML 1.2's floats: PyYAML follows YAML 1.1, which reads 1e-5 (no dot) as a string, and a
# learning rate written that way would silently become text.
_FLOAT = r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"""
_NUMBERLIKE = re.compile(r"[-+]?[0-9.][0-9_.:eE+xXoObBa-fA-F-]*")


def _loader() -> Any:
    global _LOADER
    if _LOADER is None:
        import yaml  # imported on first use: commands that read no YAML never pay for it

        # The C loader is ten times faster; fall back where libyaml is missing.
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        def construct_object(self: Any, node: yaml.Node, deep: bool = False) -> Any:
            # A tagged or implicit scalar the constructor cannot convert (2024-13-01 as a date,
            # !!int x, !!bool maybe) raises a bare ValueError/KeyError: give it the node's line.
            try:
                return base.construct_object(self, node, deep)
            except yaml.YAMLError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
                kind = str(node.tag).rpartition(":")[2]
                detail = f" ({exc})" if isinstance(exc, ValueError) else ""
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {node.value!r} as a {kind}{detail}", node.start_mark
                ) from exc

        loader: Any = type("Loader", (base,), {"construct_object": construct_object})
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
    """Parse ``text``; a syntax error or an unbounded document becomes a ConfigError naming
    ``source`` and the line."""
    import yaml

    loader_cls = _loader()
    try:
        _check_bounds(text, source, loader_cls)
        loader = loader_cls(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return Located(None, {}, source)
            lines: dict[tuple[str, ...], int] = {}
            _collect_lines(node, (), lines, source)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:  # syntax, or a tag such as !ref that safe loading refuses
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    return Located(data, lines, source)


def _check_bounds(text: str, source: str, loader: Any) -> None:
    """Walk the event stream (iterative, linear, builds nothing) and refuse what the composer
    and every later reader could not handle in bounded time and memory."""
    import yaml

    expanded = 0  # nodes the document stands for, every alias expanded
    aliased = 0  # of which added by aliases
    sizes: dict[str, int] = {}  # anchor -> expanded nodes of its node
    open_: list[tuple[str | None, int]] = []  # open collections: (anchor, expanded at start)
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _refuse(source, event, f"nested deeper than {MAX_DEPTH} levels")
            open_.append((event.anchor, expanded))
            expanded += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            value = event.value
            if len(value) > MAX_NUMBER_CHARS and not event.style and _NUMBERLIKE.fullmatch(value):
                raise _refuse(
                    source,
                    event,
                    f"a number of {len(value)} characters (at most {MAX_NUMBER_CHARS})",
                    hint="quote it to keep it as text",
                )
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise _refuse(
                    source, event, f"alias *{event.anchor} refers to a collection it is inside"
                )
            size = sizes.get(event.anchor or "", 1)  # an unknown anchor: the composer says so
            expanded += size
            aliased += size
            if aliased > MAX_ALIAS_NODES:
                raise _refuse(
                    source,
                    event,
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                    hint="write the values out, or use fewer nested aliases",
                )


def _refuse(source: str, event: Any, problem: str, hint: str | None = None) -> ConfigError:
    return ConfigError(
        f"{source}:{event.start_mark.line + 1}: not valid YAML: {problem}",
        hint=hint or "simplify the document",
    )


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
            # A collection as a key is refused when constructed; never print its whole tree.
            text = key_node.value if isinstance(key_node, yaml.ScalarNode) else key_node.tag
            key = (*path, str(text))
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
