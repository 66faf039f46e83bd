"""Deciding what is stale: pure functions over a stage, its lock entry and what is there now.

No disk, no clock: the runner observes hashes and param values, and these functions say whether
a stage runs, only needs its outs checked out, or is up to date, and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from conveyor.pipeline import params as params_mod
from conveyor.pipeline.lock import Entry
from conveyor.pipeline.stage import Meta, Stage

RUN, CHECKOUT, SKIP = "run", "checkout", "skip"


class Observed(NamedTuple):
    """The workspace now: dep and out hashes (None when missing) and param values."""

    deps: Mapping[str, Meta | None]
    outs: Mapping[str, Meta | None]
    values: Mapping[tuple[str, str], Any]


class Decision(NamedTuple):
    action: str  # RUN, CHECKOUT or SKIP
    reasons: tuple[str, ...]  # why it runs (or, for CHECKOUT, which outs are missing)


def param_name(file: str, key: str) -> str:
    return key if file == params_mod.DEFAULT_FILE else f"{file}:{key}"


def reasons(stage: Stage, entry: Entry | None, now: Observed) -> list[str]:
    """Every way ``stage`` differs from how it last ran; empty when it is up to date."""
    if entry is None:
        return ["never run"]
    found: list[str] = []
    if stage.always_changed:
        found.append("always changed")
    if entry.cmd != stage.cmd:
        found.append("command changed")
    for path in stage.deps:
        current = now.deps.get(path)
        before = entry.deps.get(path)
        if current is None:
            found.append(f"dep {path} missing")
        elif before is None:
            found.append(f"dep {path} is new")
        elif current.hash != before.hash:
            found.append(f"dep {path} modified")
    found.extend(f"dep {path} removed" for path in entry.deps if path not in stage.deps)
    declared: set[tuple[str, str]] = set()
    for file, key in stage.params:
        declared.add((file, key))
        name = param_name(file, key)
        value = now.values.get((file, key), params_mod.MISSING)
        old = entry.params.get(file, {}).get(key, params_mod.MISSING)
        if old is params_mod.MISSING:
            found.append(f"param {name} is new")
        elif not params_mod.same(old, value):
            found.extend(_param_changes(name, old, value))
    for file, values in entry.params.items():
        gone = [key for key in values if (file, key) not in declared]
        found.extend(f"param {param_name(file, key)} removed" for key in gone)
    for out in stage.outs:
        current = now.outs.get(out.path)
        before = entry.outs.get(out.path)
        if before is None:
            found.append(f"out {out.path} is new")
        elif current is None:
            found.append(f"out {out.path} missing")
        elif current.hash != before.hash:
            found.append(f"out {out.path} modified")
    found.extend(
        f"out {path} removed" for path in entry.outs if all(o.path != path for o in stage.outs)
    )
    # A section and a key inside it (params: [train] and ${train.lr}) report one change once.
    return list(dict.fromkeys(found))


def _param_changes(name: str, old: Any, new: Any) -> list[str]:
    """``param train.lr changed 0.1 -> 0.2``; a section names each leaf that changed."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return [f"param {name} changed {params_mod.show(old)} -> {params_mod.show(new)}"]
    before, after = params_mod.flatten(old), params_mod.flatten(new)
    changes = []
    for key in [*before, *(k for k in after if k not in before)]:
        a = before.get(key, params_mod.MISSING)
        b = after.get(key, params_mod.MISSING)
        if a is params_mod.MISSING or b is params_mod.MISSING or not params_mod.same(a, b):
            changes.append(
                f"param {name}.{key} changed {params_mod.show(a)} -> {params_mod.show(b)}"
            )
    return changes or [f"param {name} changed"]


def decide(
    stage: Stage,
    entry: Entry | None,
    now: Observed,
    in_cache: Callable[[Meta], bool],
    *,
    force: bool = False,
) -> Decision:
    """Run, check out missing outs, or skip; ``in_cache`` says whether an out can be restored."""
    why = reasons(stage, entry, now)
    missing = [r for r in why if r.startswith("out ") and r.endswith(" missing")]
    restorable = (
        entry is not None
        and bool(missing)
        and all(
            in_cache(entry.outs[o.path])
            for o in stage.outs
            # An out the lock does not hold yet is "new", not restorable: it never decides this.
            if o.path in entry.outs and now.outs.get(o.path) is None
        )
    )
    if stage.frozen:
        return Decision(CHECKOUT if restorable else SKIP, ("frozen", *missing))
    if force:
        return Decision(RUN, ("forced", *why))
    if not why:
        return Decision(SKIP, ())
    if restorable and len(missing) == len(why):
        return Decision(CHECKOUT, tuple(missing))
    return Decision(RUN, tuple(why))


def propagate(
    order: list[str], upstream: Mapping[str, tuple[str, ...]], decisions: dict[str, Decision]
) -> dict[str, Decision]:
    """The plan: a stage whose upstream runs may see new inputs, so it is planned to run too.

    The runner decides again from real hashes once the upstream stage finished; an upstream
    that wrote the same outs as before then leaves it up to date.
    """
    planned: dict[str, Decision] = {}
    for name in order:
        if name not in decisions:
            continue
        decision = decisions[name]
        runs = [u for u in upstream.get(name, ()) if u in planned and planned[u].action == RUN]
        if runs and decision.action != RUN and "frozen" not in decision.reasons:
            why = tuple(f"upstream {u!r} runs" for u in runs)
            decision = Decision(RUN, why)
        planned[name] = decision
    return planned
