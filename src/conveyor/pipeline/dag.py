"""The pipeline's graph: which stage produces what another consumes (outs -> deps).

Pure functions over :class:`Stage` values. Building the graph also refuses what cannot be run:
two stages writing one path, an out inside another stage's out, and cycles.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline.stage import Stage


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def build(stages: Mapping[str, Stage], source: str) -> dict[str, tuple[str, ...]]:
    """Each stage's upstream stages (sorted by definition order)."""
    owner: dict[str, str] = {}
    for stage in stages.values():
        for out in stage.outs:
            other = owner.get(out.path)
            if other is not None:
                where = f"{source}:{stage.line}"
                if other == stage.name:
                    raise ConfigError(f"{where}: stage {stage.name!r} lists {out.path} twice")
                raise ConfigError(
                    f"{where}: stages {other!r} and {stage.name!r} both write {out.path}",
                    hint="every path is written by one stage; give each its own out",
                )
            owner[out.path] = stage.name
    for path, name in owner.items():
        for parent in _parents(path):
            if parent in owner:
                stage = stages[name]
                raise ConfigError(
                    f"{source}:{stage.line}: stage {name!r} writes {path}, inside "
                    f"{parent}, which stage {owner[parent]!r} writes",
                    hint="an out may not lie inside another out; declare the folder once",
                )
    ordered = sorted(owner)
    index = {name: i for i, name in enumerate(stages)}
    upstream: dict[str, tuple[str, ...]] = {}
    for stage in stages.values():
        found: set[str] = set()
        for dep in stage.deps:
            producer = owner.get(dep) or next((owner[p] for p in _parents(dep) if p in owner), None)
            if producer is not None:
                found.add(producer)
            # A dep folder that holds outs depends on every stage writing inside it.
            start = bisect.bisect_left(ordered, dep + "/")
            for path in ordered[start:]:
                if not path.startswith(dep + "/"):
                    break
                found.add(owner[path])
        if stage.name in found:
            raise ConfigError(
                f"{source}:{stage.line}: stage {stage.name!r} depends on its own out",
                hint="a stage cannot read what it writes; split it into two stages",
            )
        upstream[stage.name] = tuple(sorted(found, key=index.__getitem__))
    order(stages, upstream, source)  # refuses cycles
    return upstream


def order(
    stages: Mapping[str, Stage], upstream: Mapping[str, tuple[str, ...]], source: str = ""
) -> list[str]:
    """Every stage after its upstream stages; among ready stages, definition order."""
    index = {name: i for i, name in enumerate(stages)}
    waiting = {name: len(ups) for name, ups in upstream.items()}
    downstream = dependents(upstream)
    ready = [(index[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        result.append(name)
        for child in downstream.get(name, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (index[child], child))
    if len(result) < len(stages):
        cycle = _cycle({n: upstream[n] for n in stages if n not in set(result)})
        first = stages[cycle[0]]
        raise ConfigError(
            f"{source}:{first.line}: the stages form a cycle: {' -> '.join(cycle)}",
            hint="a stage cannot depend, even indirectly, on its own outs",
        )
    return result


def dependents(upstream: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    down: dict[str, list[str]] = {}
    for name, ups in upstream.items():
        for up in ups:
            down.setdefault(up, []).append(name)
    return down


def closure(start: list[str], edges: Mapping[str, list[str] | tuple[str, ...]]) -> set[str]:
    """``start`` and everything reachable from it along ``edges``."""
    seen = set(start)
    stack = list(start)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _cycle(upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One cycle among ``upstream`` (every node of which lies on or leads to one)."""
    path: list[str] = []
    on_path: set[str] = set()
    node = next(iter(upstream))
    while node not in on_path:
        path.append(node)
        on_path.add(node)
        node = next(u for u in upstream[node] if u in upstream)
    cycle = [*path[path.index(node) :], node]
    cycle.reverse()  # upstream edges walked backwards: print in the direction data flows
    return cycle
