"""Model packages in the object cache: stored by their folder's tree hash, checked out into
``.conveyor/models/<hash>`` when a registered version is loaded; and the reads a server makes
of the registry (an alias, an environment's deployment record) without SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.data import build
from conveyor.data.hashing import is_oid
from conveyor.data.pointer import Pointer
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConveyorError, DataError
from conveyor.foundation.paths import find_root, inside
from conveyor.registry import package as package_mod
from conveyor.registry.errors import ModelNotFound, PackageError, RegistryError
from conveyor.registry.records import ModelVersion
from conveyor.registry.uris import parse_uri
from conveyor.tracking.api import user_name

if TYPE_CHECKING:
    from conveyor.data.remote import Remote
    from conveyor.data.transfer import TransferResult
    from conveyor.foundation.progress import Progress
    from conveyor.registry.deployment import Deployment
    from conveyor.tracking.events import Event
    from conveyor.tracking.reads import Execute

T = TypeVar("T")


def register(
    ws: Workspace, name: str, path: str, *, run: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Store the package at ``path`` and register it as the next version of ``name``."""
    from conveyor.tracking.db import opened

    folder = inside(ws.root, path, what="model package")
    manifest = package_mod.read_manifest(folder)
    with ws.odb.batch() as batch:
        built = build.scan(ws.root, folder, ws.memo, store=batch, jobs=ws.jobs)
    if not built.is_tree:
        raise PackageError(f"{path} is a file; a model package is a folder")
    ws.memo.mark_complete(built.oid, ws.odb.generation())
    ref = built.oid + ".tree"
    lineage: dict[str, Any] = {
        "package": {
            "path": folder.relative_to(ws.root).as_posix(),
            "hash": ref,
            "size": built.size,
            "nfiles": built.nfiles,
        }
    }
    from conveyor.registry.versions import Registry

    with opened(ws.root) as store:
        run_id = None
        if run:
            record = store.run_record(run)
            run_id = record.id
            lineage.update(
                run=run_id,
                git_commit=record.git_commit,
                git_branch=record.git_branch,
                params=record.params,
                metrics=record.metrics,
                deps=record.deps,
                outs=record.outs,
            )
        registry = Registry(store)
        version = registry.register(
            name, ref, str(manifest.get("flavor")), run_id=run_id, lineage=lineage, user=user_name()
        )
    return version, lineage


def declared(root: Path) -> dict[str, str]:
    """The ``models:`` section of conveyor.yaml: model name -> package path."""
    from conveyor.registry import config

    return config.declared(root)


def register_declared(ws: Workspace, run_id: str) -> list[str]:
    """Register each declared model whose package differs from its latest version."""
    from conveyor.registry.versions import Registry
    from conveyor.tracking.db import opened

    lines = []
    for name, path in declared(ws.root).items():
        folder = inside(ws.root, path, what="model package")
        with ws.odb.batch() as batch:
            built = build.scan(ws.root, folder, ws.memo, store=batch, jobs=ws.jobs)
        ref = built.oid + ".tree"
        with opened(ws.root) as store:
            registry = Registry(store)
            try:
                latest = registry.resolve(parse_uri(name))
            except ModelNotFound:  # its first version; any other failure is the user's to see
                latest = None
        if latest is not None and latest.package == ref:
            lines.append(f"{name} unchanged: version {latest.version} is this package")
            continue
        version, _ = register(ws, name, path, run=run_id)
        lines.append(f"registered {name} version {version} from run {run_id}")
    return lines


def materialize(ws: Workspace, version: ModelVersion) -> Path:
    """The package of a registered version as a folder, checked out from the cache once; what
    the cache lacks is fetched from the default remote first, when there is one."""
    from conveyor.data.checkout import checkout

    ref = version.package
    if not _stored_ref(ref):
        raise DataError(
            f"model {version.name} version {version.version}: the metadata store names its "
            f"package {ref!r}, which is not a tree hash; conveyor writes nothing for it",
            hint="register the model again (`conveyor models register`): the row was edited "
            "outside conveyor",
        )
    info = version.lineage.get("package", {})
    folder = ws.paths.control / "models" / ref.removesuffix(".tree")
    if (folder / package_mod.MANIFEST).exists():
        return folder
    ptr = _pointer(ws, ref, int(info.get("size", 0)), int(info.get("nfiles", 0)))
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            checkout(ws, [ptr], force=True)
        except ConveyorError:
            if not _fetch(ws, [ptr]):
                raise
            checkout(ws, [ptr], force=True)
    except ConveyorError as exc:
        from conveyor.data.status import load_tree, missing_objects

        who = Registered(version.name, version.version, version.user, ref)
        if not missing_objects(ws, ptr, load_tree(ws, ptr)):
            raise RegistryError(f"{who}: {exc.message}", hint=exc.hint) from exc
        # The cache's paths mean nothing to a user: say which version, and whose move it is.
        remote = ws.config.get("core.remote")
        if not remote:
            raise DataError(
                f"{who} is not in this clone's cache, and no default remote is set to fetch it",
                hint="`conveyor remote default NAME` (a remote it was pushed to), then retry",
            ) from exc
        raise DataError(
            f"{who} is neither in this clone's cache nor on remote {remote!r}",
            hint=f"{who.by} should run `conveyor push` in the clone that registered it; then retry",
        ) from exc
    return folder


@dataclass(frozen=True)
class Registered:
    """One registered version, named as a user reads it."""

    name: str
    version: int
    user: str
    package: str  # the tree hash of its package, "<oid>.tree"
    compared: tuple[str, ...] = ()  # hashes of its run's out files the gates compare with

    def __str__(self) -> str:
        return f"model {self.name} version {self.version} (registered by {self.by})"

    @property
    def by(self) -> str:
        return self.user or "an unknown user"


def registered(
    ws: Workspace, *, every: bool = False, compared: tuple[str, ...] = ()
) -> list[Registered]:
    """The versions a pull needs: those an alias points at (what servers load, and what the
    gates compare a candidate with), or ``every`` registered one. ``compared`` names out files
    (the gates' predictions files): each version's run's copy of them is needed too. A version
    whose package is a folder the workspace tracks (a pointer or a lock out) travels with the
    data as well."""
    from conveyor.registry.versions import Registry
    from conveyor.tracking.db import exists, opened

    if not exists(ws.root):
        return []
    with opened(ws.root) as store:
        rows = Registry(store).registered(aliased_only=not every)
    out = []
    for r in rows:
        if not _stored_ref(r.package):
            continue  # a row edited outside conveyor names no package: loading it says so
        outs = r.lineage.get("outs") or {}
        files = (str(outs[p]) for p in compared if p in outs and is_oid(str(outs[p])))
        version = Registered(r.name, r.version, r.user, r.package)
        out.append(replace(version, compared=tuple(sorted(set(files)))))
    return out


def packages(ws: Workspace, versions: list[Registered]) -> list[Pointer]:
    """The packages of ``versions``, once each, as pointer values."""
    return [_pointer(ws, ref, 0, 0) for ref in sorted({v.package for v in versions})]


def held(ws: Workspace, *, compared: tuple[str, ...] = ()) -> list[Pointer]:
    """What this clone holds of the registered versions, for push to share: their packages, and
    the ``compared`` out files of their runs (see :func:`registered`), which the lock may no
    longer name. A version registered in another clone and never pushed from there is that
    clone's to push, not an error here."""
    versions = registered(ws, every=True, compared=compared)
    return [p for p in _everything(ws, versions) if ws.odb.exists(p.oid)]


def fetch_packages(
    ws: Workspace,
    remote: Remote,
    versions: list[Registered],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> tuple[TransferResult, list[Registered]]:
    """Download the packages of ``versions`` into the cache (a package is checked out only when
    it is loaded). A package that is neither in the cache nor on the remote stops nothing:
    its versions come back as the second value, for the caller to warn about, and are not in
    the result's ``missing`` (whose paths are the cache's, which mean nothing to a user)."""
    from conveyor.data.status import load_tree, missing_objects
    from conveyor.data.transfer import fetch

    ptrs = _everything(ws, versions)
    result = fetch(ws, remote, ptrs, jobs=jobs, progress=progress)
    result.missing.clear()
    whole = {p.ref for p in ptrs if missing_objects(ws, p, load_tree(ws, p)) == 0}
    return result, [v for v in versions if not {v.package, *v.compared} <= whole]


def _everything(ws: Workspace, versions: list[Registered]) -> list[Pointer]:
    """The packages of ``versions`` and their runs' compared out files, once each."""
    files = sorted({oid for v in versions for oid in v.compared})
    return [*packages(ws, versions), *(_file(ws, oid) for oid in files)]


def _stored_ref(ref: str) -> bool:
    """Whether a package reference read from the metadata store is a tree hash. The store is
    shared (a teammate's clone, CI): its values become paths under ``.conveyor/models``, and
    one like ``../../x.tree`` must not lead a checkout out of the project."""
    return ref.endswith(".tree") and is_oid(ref.removesuffix(".tree"))


def _pointer(ws: Workspace, ref: str, size: int, nfiles: int) -> Pointer:
    folder = ws.paths.control / "models" / ref.removesuffix(".tree")
    file = folder.with_name(folder.name + ".cvy")  # a value only: never written
    return Pointer(file, folder.name, ref.removesuffix(".tree"), True, size, nfiles)


def _file(ws: Workspace, oid: str) -> Pointer:
    """An out file of a version's run, as a pointer value (never written)."""
    file = ws.paths.control / "models" / f"{oid}.cvy"
    return Pointer(file, oid, oid, False, 0, 1)


def _fetch(ws: Workspace, ptrs: list[Pointer]) -> bool:
    """Download what ``ptrs`` need from the default remote; False when there is none."""
    from conveyor.data.remotes import open_remote
    from conveyor.data.transfer import fetch

    if not ws.config.get("core.remote"):
        return False
    result = fetch(ws, open_remote(ws), ptrs)
    return result.error() is None


def load(target: str | Path) -> package_mod.Model:
    """A model package: a folder, or a registered version (``models:/name@alias``,
    ``models:/name/3``) loaded from the project's registry."""
    if not str(target).startswith("models:/"):
        return package_mod.load(target)
    root = find_root()
    version = resolve(root, str(target))
    with Workspace(root) as ws:
        folder = materialize(ws, version)
    return package_mod.load(folder)


def resolve(root: Path, uri: str) -> ModelVersion:
    """The version ``uri`` names, read with the queries of :mod:`conveyor.registry.queries`.
    An embedded (SQLite) store at the current schema with nothing pending in its spool runs them
    through the standard library: a server starts and polls its aliases without importing
    SQLAlchemy. Anything else opens the full store. A miss is the same error either way."""
    from conveyor.registry import queries
    from conveyor.tracking import spool
    from conveyor.tracking.db import url_for

    parsed = parse_uri(uri)
    url = url_for(root)
    if url.startswith("sqlite:///") and not spool.pending(root):
        from conveyor.tracking.fast import SqliteReader

        reader = SqliteReader.open(Path(url[len("sqlite:///") :]))
        if reader is not None:
            import sqlite3

            try:
                return queries.resolve(reader.execute, parsed)
            except sqlite3.Error:
                pass  # a file locked or changed under it: the full store waits and explains
            finally:
                reader.close()
    from conveyor.tracking.db import opened

    with opened(root) as store:
        return queries.resolve(store.execute, parsed)


def deployment(root: Path, env: str) -> Deployment | None:
    """Environment ``env``'s deployment record, None before its first deploy: what a server
    started with ``--env`` polls (several times a second, from every worker). Read with the
    queries of :mod:`conveyor.registry.queries` and no SQLAlchemy, on a connection kept for
    the next poll: sqlite3 for an embedded store, psycopg for PostgreSQL (a tenth of a
    millisecond or so). A store that must be migrated first, or that fails mid-read, is read
    through the full store."""
    from conveyor.registry import queries

    return _read(root, lambda execute: queries.deployment(execute, env))


def deployments(root: Path) -> list[Deployment]:
    """Every environment's deployment record, by environment (read as :func:`deployment`)."""
    from conveyor.registry import queries

    return _read(root, queries.deployments)


def deployment_history(root: Path, env: str, *, kind: str | None = None) -> list[Event]:
    """Environment ``env``'s events (of one ``kind`` when given), oldest first (read as
    :func:`deployment`)."""
    from conveyor.registry import queries

    return _read(root, lambda execute: queries.deployment_events(execute, env, kind=kind))


def last_deployment_event(root: Path, env: str, kind: str) -> Event | None:
    """Environment ``env``'s latest event of ``kind`` (``rollout.analysis``, for what
    ``GET /deployments/{env}`` shows), or None; read as :func:`deployment`."""
    from conveyor.registry import queries

    return _read(root, lambda execute: queries.last_deployment_event(execute, env, kind))


def deployment_activity(
    root: Path, env: str, *, after: int = 0
) -> tuple[dict[str, int], int, Event | None]:
    """Environment ``env``'s events with an id above ``after``: counted by kind, the highest
    id among them (``after`` when none), and the latest ``rollout.analysis`` when one is among
    them (else None); what a server following the environment adds to its rollout metrics
    when the record moves. Read as :func:`deployment`."""
    from conveyor.registry import queries

    def query(execute: Execute) -> tuple[dict[str, int], int, Event | None]:
        counts, last = queries.deployment_event_counts(execute, env, after=after)
        analysis = None
        if counts.get("rollout.analysis"):
            analysis = queries.last_deployment_event(execute, env, "rollout.analysis")
        return counts, last, analysis

    return _read(root, query)


def save_deployment(
    root: Path,
    new: Deployment,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    expected: int | None,
) -> Deployment:
    """Write ``new`` in a transaction of its own, if the stored revision is still ``expected``
    (see :func:`conveyor.registry.deployments.save`, which raises ``Conflict`` otherwise)."""
    from conveyor.registry.deployments import save
    from conveyor.tracking.db import opened

    with opened(root) as store:
        return save(store, new, events, expected=expected)


def _read(root: Path, query: Callable[[Execute], T]) -> T:
    """``query`` on a connection kept without SQLAlchemy (see :mod:`conveyor.registry.readers`)
    where the store allows it, else through the full store (which migrates it first, or says
    why it cannot be read)."""
    from conveyor.registry import readers
    from conveyor.tracking.db import opened, url_for

    execute = readers.reader(url_for(root))
    if execute is not None:
        try:
            return query(execute)
        except readers.Unreadable:
            pass  # a file replaced, a server restarted: the full store waits and explains
    with opened(root) as store:
        return query(store.execute)
