"""The route table: method and path pattern -> handler.

A pattern is a path whose segments may be ``{parameter}`` (one non-empty segment each). A path
that matches a pattern but not its methods is answered 405 with the methods in Allow (a GET
route answers HEAD too); a path that matches none is for the caller to answer (404). Paths are
matched without their leading and trailing slashes, so ``/v2/`` is ``/v2``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from conveyor.serve.errors import NotAllowed
from conveyor.serve.exchange import Reply, Request

Handler = Callable[[Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    pattern: str
    methods: Mapping[str, Handler]
    endpoint: str = "other"  # the metrics' endpoint label
    scoring: bool = False  # errors in MLflow's scoring body rather than v2's
    segments: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.pattern.strip("/").split("/")))

    @property
    def allow(self) -> str:
        methods = list(self.methods)
        return ", ".join([*methods, "HEAD"] if "GET" in methods else methods)

    def handler(self, method: str) -> Handler:
        found = self.methods.get(method)
        if found is None and method == "HEAD":
            found = self.methods.get("GET")
        if found is None:
            wanted = " or ".join(self.methods)
            raise NotAllowed(f"use {wanted} here, not {method}", allow=self.allow)
        return found


class Table:
    """Routes looked up by path: fixed paths in one dictionary lookup, patterns by their number
    of segments (a handful each)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.fixed: dict[str, Route] = {}
        self.patterns: dict[int, list[Route]] = {}
        for route in routes:
            if any(_is_param(s) for s in route.segments):
                self.patterns.setdefault(len(route.segments), []).append(route)
            elif self.fixed.setdefault("/".join(route.segments), route) is not route:
                raise ValueError(f"two routes for {route.pattern}")

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``path`` and its parameters; None when no route has that path."""
        trimmed = path.strip("/")
        route = self.fixed.get(trimmed)
        if route is not None:
            return route, {}
        parts = trimmed.split("/")
        for route in self.patterns.get(len(parts), ()):
            params = _bind(route.segments, parts)
            if params is not None:
                return route, params
        return None


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _bind(segments: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    params = {}
    for segment, part in zip(segments, parts, strict=True):
        if _is_param(segment):
            if not part:
                return None
            params[segment[1:-1]] = part
        elif segment != part:
            return None
    return params
