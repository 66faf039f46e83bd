"""Baselines: what a candidate is compared with, resolved from a name.

``alias:NAME`` is a registered version (its run's metrics and outs, kept in its lineage),
``rev:GIT_REV`` a git revision (its metrics files and the outs its conveyor.lock names), and
``run:ID`` a tracked run; a bare name is the first of these that exists. A baseline's
predictions are read from the object cache, so a baseline needs no checkout. The gates use this
to compare a candidate with the champion; a deployment can use it to compare with stable.

    >>> found = resolve(root, "production", model="classifier")  # doctest: +SKIP
    >>> found.label, found.metrics["eval.auc"]  # doctest: +SKIP
    ('production = classifier version 3', 0.91)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError, GitError
from conveyor.gates.evaluate import Baseline, NoBaseline

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion

KINDS = ("alias", "rev", "run")


class BaselineError(ConveyorError):
    """A baseline exists but cannot serve: its metrics or predictions are unknown or absent."""


def resolve(root: Path, vs: str, *, model: str | None) -> Baseline:
    """What ``vs`` names (see the module); ``model`` owns the aliases. Raises
    :class:`~conveyor.gates.evaluate.NoBaseline` when nothing has that name yet."""
    head, _, rest = vs.partition(":")
    kind, name = (head, rest) if head in KINDS else ("", vs)
    if kind in ("", "alias"):
        found = _alias(root, model, name, required=kind == "alias")
        if found is not None:
            return found
    if kind in ("", "rev"):
        try:
            return _revision(root, name)
        except GitError:
            if kind == "rev":
                raise
    if kind in ("", "run"):
        try:
            record = run_record(root, name)
        except ConveyorError:
            if kind == "run":
                raise
        else:
            return of_run(root, record)
    raise NoBaseline(f"{model} has no alias {name!r}" if model else f"no {name!r}")


def _alias(root: Path, model: str | None, alias: str, *, required: bool) -> Baseline | None:
    version = alias_version(root, model, alias)
    if version is None:
        if required:
            raise NoBaseline(f"{model or 'no registered model'} has no alias {alias!r} yet")
        return None
    label = f"{alias} = {model} version {version.version}"
    lineage = version.lineage
    if "metrics" not in lineage:
        raise BaselineError(
            f"{label} was registered without its run: its metrics are unknown",
            hint="register versions with --run RUN (or `conveyor run --register`)",
        )
    return _made(root, label, dict(lineage["metrics"]), dict(lineage.get("outs") or {}))


def alias_version(root: Path, model: str | None, alias: str) -> ModelVersion | None:
    """The registered version ``model@alias`` points at, or None (no model, store or alias)."""
    from conveyor.registry.stored import resolve as resolve_uri
    from conveyor.tracking.db import exists

    if model is None or not exists(root):
        return None
    try:
        return resolve_uri(root, f"models:/{model}@{alias}")
    except ConveyorError:
        return None


def of_run(root: Path, record: dict[str, Any]) -> Baseline:
    """A tracked run (a record from the store) as a baseline."""
    label = f"run {record['id']}"
    return _made(root, label, dict(record["metrics"]), dict(record["outs"]))


def _made(root: Path, label: str, metrics: dict[str, Any], outs: dict[str, str]) -> Baseline:
    # Several checks may name one baseline's predictions file: it is read once.
    return Baseline(
        label, metrics, functools.cache(lambda path: out_table(root, outs, path, label))
    )


def _revision(root: Path, rev: str) -> Baseline:
    from conveyor.foundation import git
    from conveyor.pipeline import revisions

    commit = git.resolve(root, rev)
    state = revisions.at(root, rev)
    _deps, outs = lock_at(root, commit, rev)
    return _made(root, f"{rev} ({commit[:12]})", dict(state["metrics"]), outs)


def lock_at(root: Path, commit: str, rev: str) -> tuple[dict[str, str], dict[str, str]]:
    """The dep and out hashes (path -> hash) of conveyor.lock at a commit; empty without one."""
    from conveyor.foundation import git
    from conveyor.pipeline import lock as lock_mod

    deps: dict[str, str] = {}
    outs: dict[str, str] = {}
    try:
        text = git.run(root, "show", f"{commit}:{_in_repo(root, lock_mod.FILE)}").decode()
    except GitError:
        return deps, outs  # no lock at that revision: metrics only
    for entry in lock_mod.parse(text, f"{lock_mod.FILE} at {rev}").values():
        deps.update({path: meta.hash for path, meta in entry.deps.items()})
        outs.update({path: meta.hash for path, meta in entry.outs.items()})
    return deps, outs


def _in_repo(root: Path, rel: str) -> str:
    from conveyor.foundation import git

    prefix = os.path.relpath(root, git.toplevel(root))
    return rel if prefix == "." else f"{prefix}/{rel}"


def out_table(root: Path, outs: dict[str, str], path: str, who: str) -> Any:
    """A predictions table that ``who`` recorded as an out, read from the object cache."""
    from conveyor.gates.tables import read_bytes

    data = out_bytes(root, outs, path)
    if data is None:
        ref = outs.get(path)
        if ref is None:
            raise BaselineError(
                f"{who} recorded no {path}",
                hint="the stage that writes it must declare it in outs:",
            )
        if ref.endswith(".tree"):
            raise BaselineError(f"{path} of {who} is a folder; a predictions file is a file")
        raise BaselineError(
            f"{path} of {who} ({ref[:12]}) is not in the cache",
            hint="fetch it with `conveyor pull` (or push it from where it was made)",
        )
    return read_bytes(data, path)


def out_bytes(root: Path, outs: dict[str, str], path: str) -> bytes | None:
    """The bytes of an out file (or of a file inside an out folder) from the object cache."""
    from conveyor.data import recorded
    from conveyor.data.workspace import Workspace

    with Workspace(root) as ws:
        return recorded.read(ws.odb, outs, path)


def run_record(root: Path, ref: str) -> dict[str, Any]:
    """The run ``ref`` names (an id or a unique prefix), read from the store."""
    from conveyor.tracking.db import opened

    with opened(root, write=False) as store:
        return store.run(ref)


def latest_run(root: Path) -> str | None:
    """The id of the run recorded last, or None (no store, no run)."""
    from conveyor.tracking.db import exists, opened

    if not exists(root):
        return None
    with opened(root, write=False) as store:
        runs = store.runs()
    return str(runs[-1]["id"]) if runs else None  # oldest first


def model_name(root: Path, named: str | None) -> str | None:
    """The model the aliases belong to: ``named``, else the one model conveyor.yaml declares."""
    from conveyor.registry.stored import declared

    if named:
        return named
    models = declared(root)
    return next(iter(models)) if len(models) == 1 else None


def model_folder(root: Path, named: str | None) -> Path | None:
    """The workspace folder of that model's package, when conveyor.yaml declares one."""
    from conveyor.registry.stored import declared

    path = declared(root).get(model_name(root, named) or "")
    return root / path if path else None
