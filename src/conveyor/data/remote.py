"""Remotes: where objects are pushed to and pulled from.

A remote mirrors the cache's layout: every object, trees included, lives at ``ROOT/ab/cdef...``
(``oid[:2]/oid[2:]``). Remotes are configured under ``remote.NAME`` with a ``url`` and any options
of their fsspec backend; ``core.remote`` names the default. :func:`open_remote` turns that into a
:class:`Remote`; the fsspec implementation is imported only then, so ``conveyor --help`` never
loads fsspec.

>>> spec = RemoteSpec.of("origin", "../storage", {}, root=Path("/work/proj"))
>>> spec.url, spec.protocol
('/work/storage', 'file')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.foundation.errors import ConfigError, RemoteError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.config import Config

# Object stores write an object whole or not at all: a single PUT (or a completed multipart
# upload) is never visible half-written. Every other backend gets a temp name and a rename.
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "http", "https"})
_S3 = frozenset({"s3", "s3a"})
_S3_ALIASES = {"access_key_id": "key", "secret_access_key": "secret", "session_token": "token"}


class Remote(Protocol):
    """A place that holds objects by oid. One implementation: :class:`FsspecRemote`.

    Contract (every implementation; ``tests/data/test_remote.py`` checks it):

    - Objects are immutable and named by the BLAKE3 hash of their bytes.
    - Every method may be called from several threads at once.
    - ``exists_many(oids)`` returns the subset present, with as few requests as the backend
      allows (listing shard folders rather than one request per object when there are many).
    - ``upload(local_path, oid)``: once it returns the object is readable under its name; a
      reader (or a killed writer) never leaves a partial object under that name. Uploading an
      oid that is already there is harmless.
    - ``download(oid, dest_path)`` writes the bytes to ``dest_path`` (a new local file) and
      raises :class:`MissingObject` if the remote lacks it. It does not verify: the caller
      hashes what arrived.
    - ``iter_oids()`` yields every object stored, in no particular order, skipping temp files and
      anything that is not an object (for ``gc --remote``).
    - ``remove(oids)`` deletes those objects; oids that are not there are ignored.
    - Anything the backend or the network refuses is a :class:`RemoteError` naming the remote.
    """

    name: str
    url: str

    def exists_many(self, oids: Iterable[str]) -> set[str]: ...

    def upload(self, local_path: str, oid: str) -> None: ...

    def download(self, oid: str, dest_path: str) -> None: ...

    def iter_oids(self) -> Iterator[str]: ...

    def remove(self, oids: Iterable[str]) -> None: ...


class MissingObject(RemoteError):
    """The remote does not hold an object that was asked for."""

    def __init__(self, remote: str, oid: str) -> None:
        super().__init__(f"object {oid} is not on remote {remote!r}")
        self.oid = oid


@dataclass(frozen=True)
class RemoteSpec:
    """A configured remote: its name, absolute URL and backend options."""

    name: str
    url: str  # a local folder as an absolute path, anything else as configured
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return protocol_of(self.url)

    @property
    def atomic_put(self) -> bool:
        return self.protocol in ATOMIC_PUT

    @classmethod
    def of(cls, name: str, url: str, options: Mapping[str, Any], *, root: Path) -> RemoteSpec:
        """From config values: a relative folder is relative to the project root ``root``."""
        absolute = absolute_url(url, root)
        return cls(name, absolute, storage_options(protocol_of(absolute), options))


def resolve(config: Config, root: Path, name: str | None = None) -> RemoteSpec:
    """The remote called ``name``, or the default one (``core.remote``)."""
    chosen = name or config.get("core.remote")
    remotes = config.remotes()
    if not chosen:
        known = ", ".join(sorted(remotes))
        raise ConfigError(
            "no remote given and no default remote set"
            + (f" (configured: {known})" if known else ""),
            hint="pass -r NAME, or set a default with `conveyor remote default NAME`"
            if known
            else "add one with `conveyor remote add --default NAME URL`",
        )
    if chosen not in remotes:
        known = ", ".join(sorted(remotes)) or "none configured"
        where = "" if name else " (the default, core.remote)"
        raise ConfigError(
            f"unknown remote {chosen!r}{where}; known: {known}",
            hint=did_you_mean(chosen, remotes) or f"add it with `conveyor remote add {chosen} URL`",
        )
    options = dict(remotes[chosen])
    url = options.pop("url", None)
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            f"remote {chosen!r} has no url", hint=f"conveyor remote add --force {chosen} URL"
        )
    return RemoteSpec.of(chosen, url.strip(), options, root=root)


def open_remote(ws: Workspace, name: str | None = None, *, jobs: int | None = None) -> Remote:
    """Open the remote called ``name`` (default: ``core.remote``) of the workspace ``ws``.

    ``jobs`` bounds the parallel requests the remote makes on its own (existence checks).
    """
    spec = resolve(ws.config, ws.root, name)
    from conveyor.data.remote_fsspec import FsspecRemote

    return FsspecRemote(spec, jobs=jobs or ws.jobs)


def protocol_of(url: str) -> str:
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def absolute_url(url: str, root: Path) -> str:
    """A local folder made absolute (relative ones are relative to ``root``); URLs unchanged."""
    if "://" in url:
        if protocol_of(url) in ("file", "local"):
            return os.path.normpath(url.split("://", 1)[1] or "/")
        return url
    path = Path(os.path.expanduser(url))
    return os.path.normpath(path if path.is_absolute() else root / path)


def storage_options(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Config options as the fsspec backend expects them.

    Everything but ``url`` is passed through; for S3, ``endpoint_url`` and ``region`` go to
    ``client_kwargs`` and DVC's names for credentials are accepted. The words ``true`` and
    ``false`` (as ``conveyor config`` stores them) become booleans.
    """
    opts = {str(k): _coerce(v) for k, v in options.items() if k != "url"}
    if protocol in _S3:
        client = dict(opts.pop("client_kwargs", None) or {})
        for key in ("endpoint_url", "endpointurl"):
            if key in opts:
                client["endpoint_url"] = opts.pop(key)
        if "region" in opts:
            client["region_name"] = opts.pop("region")
        for alias, real in _S3_ALIASES.items():
            if alias in opts:
                opts[real] = opts.pop(alias)
        if client:
            opts["client_kwargs"] = client
    return opts


def _coerce(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
