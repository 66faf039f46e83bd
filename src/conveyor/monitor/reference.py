"""A monitor's reference: the data live traffic is compared with, profiled once per content.

``reference:`` names a CSV or Parquet file of the project (``data/prepared/train.csv``), or a
registered version's training data as its run recorded it, read from the object cache:

    alias:production                      the training table of the version the alias names
    alias:production:data/prepared/train.csv   that file, as that version's run recorded it
    run:3f2a9c                            a run's (id or unique prefix) training table
    run:3f2a9c:data/prepared/train.csv

Without a path, the training table is the one table (``.csv``, ``.parquet``) among the run's
deps and outs whose name says ``train``. An alias moves (a retrain promoted): the reference
moves with it, and the monitor starts new windows on it (see :mod:`conveyor.monitor.watch`).

Profiles are cached by content under ``.conveyor/monitor/<env>/references/<sha256>.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from conveyor.foundation.atomic import write_bytes
from conveyor.foundation.errors import ConveyorError, DataError
from conveyor.monitor.config import Monitor, Source, source
from conveyor.monitor.profiles import Bins, Profile

FOLDER = ".conveyor/monitor"
TABLES = (".csv", ".parquet", ".pq")


class MonitorError(ConveyorError):
    """The monitor cannot work: its reference cannot be read, its state is damaged."""


def folder(root: Path, env: str) -> Path:
    return root / FOLDER / env


@dataclass(frozen=True)
class Reference:
    """The reference's bins and profile, and its label's (for the predictions), if declared."""

    source: str
    digest: str
    features: tuple[str, ...]
    bins: Bins
    profile: Profile
    label_bins: Bins | None = None
    label_profile: Profile | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "digest": self.digest,
            "features": list(self.features),
            "bins": self.bins.to_json(),
            "profile": self.profile.to_json(),
            "label_bins": self.label_bins.to_json() if self.label_bins else None,
            "label_profile": self.label_profile.to_json() if self.label_profile else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        lb, lp = data.get("label_bins"), data.get("label_profile")
        return cls(
            data["source"],
            data["digest"],
            tuple(data["features"]),
            Bins.from_json(data["bins"]),
            Profile.from_json(data["profile"]),
            Bins.from_json(lb) if lb else None,
            Profile.from_json(lp) if lp else None,
        )


def reference(root: Path, spec: Monitor, model: str | None = None) -> Reference:
    """The environment's reference profile: read from its cache when the reference's content
    is unchanged, else profiled and cached. ``model`` owns the aliases of ``alias:``."""
    from conveyor.monitor import profiles

    path, raw = _table_bytes(root, spec, model)
    digest = hashlib.sha256(raw).hexdigest()
    cached = stored_reference(root, spec.env, digest)
    if cached is not None and cached.source == spec.reference:
        return cached
    names, columns = _read_table(path, raw, spec)
    features = _features(spec, names)
    declared = [c for c in spec.categorical if c in features] or None  # None: detected
    bins, profile = profiles.reference({f: columns[f] for f in features}, categorical=declared)
    label_bins = label_profile = None
    if spec.label:
        from conveyor.monitor.windows import PREDICTION

        if spec.label not in columns:
            raise MonitorError(
                f"monitor {spec.env}: the label {spec.label!r} is not a column of the reference "
                f"{spec.reference}",
                hint=f"its columns: {', '.join(names)}",
            )

        labels = {PREDICTION: columns[spec.label]}
        label_bins, label_profile = profiles.reference(labels, categorical=[PREDICTION])
    made = Reference(spec.reference, digest, features, bins, profile, label_bins, label_profile)
    cache = _reference_file(root, spec.env, digest)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(cache, orjson.dumps(made.to_json(), option=orjson.OPT_SERIALIZE_NUMPY))
    return made


def stored_reference(root: Path, env: str, digest: str) -> Reference | None:
    """The reference of that content profiled before (windows name theirs), or None."""
    try:
        return Reference.from_json(orjson.loads(_reference_file(root, env, digest).read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, DataError):
        return None  # none yet, or from another format


def seen(root: Path, spec: Monitor, model: str | None = None) -> Hashable:
    """What changes when the reference may have: a file's (mtime, size); the object an alias
    or a run names now. None when it cannot be told (no file, no store yet)."""
    found = source(spec.reference)
    if found.kind == "file":
        try:
            stat = (root / found.path).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size
    try:
        return _recorded(root, spec, found, model)[:2]
    except ConveyorError:
        return None


def _reference_file(root: Path, env: str, digest: str) -> Path:
    return folder(root, env) / "references" / f"{digest}.json"


def _table_bytes(root: Path, spec: Monitor, model: str | None) -> tuple[str, bytes]:
    """The reference table's path (for its format) and bytes."""
    found = source(spec.reference)
    if found.kind != "file":
        path, ref, who = _recorded(root, spec, found, model)
        from conveyor.data import recorded
        from conveyor.data.workspace import Workspace

        with Workspace(root) as ws:
            raw = recorded.read(ws.odb, {path: ref}, path)
        if raw is None:
            raise MonitorError(
                f"monitor {spec.env}: {path} of {who} ({ref[:12]}) is not in the cache",
                hint="fetch it with `conveyor pull` (or push it from where it was made)",
            )
        return path, raw
    from conveyor.foundation.paths import read_inside

    raw = read_inside(root.resolve(), found.path)
    if raw is None:
        raise MonitorError(
            f"monitor {spec.env}: cannot read the reference {found.path}: no such file in "
            "the project",
            hint="reference: names a CSV or Parquet file of the project (the training data); "
            "run the pipeline that writes it (conveyor run)",
        )
    return found.path, raw


def _recorded(root: Path, spec: Monitor, found: Source, model: str | None) -> tuple[str, str, str]:
    """(path, object, who): the table an alias's version or a run recorded."""
    from conveyor.tracking.db import exists, opened

    if found.kind == "alias":
        version = None
        if model is not None and exists(root):
            from conveyor.registry.stored import resolve

            try:
                version = resolve(root, f"models:/{model}@{found.name}")
            except ConveyorError:
                version = None
        if version is None:
            raise MonitorError(
                f"monitor {spec.env}: {model or 'the model'} has no alias {found.name!r} yet",
                hint="deploy a version first (conveyor deploy), or name a file of the project",
            )
        who = f"{model} version {version.version} ({found.name})"
        if not version.lineage.get("run"):
            raise MonitorError(
                f"monitor {spec.env}: {who} was registered without its run: its training "
                "data is unknown",
                hint="register versions with --run RUN (or `conveyor run --register`)",
            )
        recorded = {**version.lineage.get("deps", {}), **version.lineage.get("outs", {})}
    else:
        try:
            with opened(root, write=False) as store:
                record = store.run(found.name)
        except ConveyorError as exc:
            raise MonitorError(f"monitor {spec.env}: {exc.message}", hint=exc.hint) from exc
        who = f"run {str(record['id'])[:12]}"
        recorded = {**record.get("deps", {}), **record.get("outs", {})}
    path = found.path or _training_table(spec, recorded, who)
    ref = recorded.get(path)
    if ref is None:
        raise MonitorError(f"monitor {spec.env}: {who} recorded no {path}",
                           hint=_tables_hint(found, recorded))  # fmt: skip
    if str(ref).endswith(".tree"):
        raise MonitorError(f"monitor {spec.env}: {path} of {who} is a folder, not a table",
                           hint=_tables_hint(found, recorded))  # fmt: skip
    return path, str(ref), who


def _training_table(spec: Monitor, recorded: Mapping[str, str], who: str) -> str:
    tables = sorted(p for p in recorded if PurePosixPath(p).suffix.lower() in TABLES)
    training = [p for p in tables if "train" in PurePosixPath(p).name.lower()]
    if len(training) == 1:
        return training[0]
    said = "no training table" if not training else f"{len(training)} training tables"
    raise MonitorError(
        f"monitor {spec.env}: {who} recorded {said} (a .csv or .parquet named *train*)",
        hint=f"name it: {spec.reference}:PATH; its tables: {', '.join(tables) or 'none'}",
    )


def _tables_hint(found: Source, recorded: Mapping[str, str]) -> str:
    tables = sorted(p for p in recorded if PurePosixPath(p).suffix.lower() in TABLES)
    if not tables:
        return f"{found.kind}:{found.name} recorded no table"
    return f"its tables: {', '.join(tables)}"


def _read_table(path: str, raw: bytes, spec: Monitor) -> tuple[list[str], dict[str, Any]]:
    """The reference's column names and columns (pandas reads it when it is installed)."""
    from conveyor.monitor import tablefile

    try:
        return tablefile.read(raw, path)
    except DataError as exc:
        raise MonitorError(
            f"monitor {spec.env}: the reference {spec.reference} is not a readable table: "
            f"{exc.message}",
            hint="a CSV with a header row, or a Parquet file",
        ) from exc


def _features(spec: Monitor, columns: list[str]) -> tuple[str, ...]:
    left_out = {*spec.exclude, *([spec.label] if spec.label else [])}
    if spec.features is None:
        return tuple(c for c in columns if c not in left_out)
    missing = [f for f in spec.features if f not in columns]
    if missing:
        raise MonitorError(
            f"monitor {spec.env}: features not in the reference {spec.reference}: "
            f"{', '.join(missing)}",
            hint=f"its columns: {', '.join(columns)}",
        )
    return spec.features
