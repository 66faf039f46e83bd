"""Remotes: where objects are pushed to and pulled from.

A remote mirrors the cache's layout: every object, trees included, lives at ``ROOT/ab/cdef...``
(``oid[:2]/oid[2:]``). Remotes are configured under ``remote.NAME`` with a ``url`` and any options
of their fsspec backend; ``core.remote`` names the default.

This module is the interface every backend and every caller shares: the :class:`Remote`
protocol, the values it passes (:class:`Fetched`, :class:`RemoteSpec`) and its errors. It imports
no backend; :func:`conveyor.data.remotes.open_remote` picks one for a URL.

>>> spec = RemoteSpec.of("origin", "../storage", {}, root=Path("/work/proj"))
>>> spec.url, spec.protocol
('/work/storage', 'file')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.foundation.errors import ConfigError, RemoteError

if TYPE_CHECKING:
    from conveyor.data.transfer_io import Scratch

# Object stores write an object whole or not at all: a single PUT (or a completed multipart
# upload) is never visible half-written. Every other backend gets a temp name and a rename.
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "http", "https"})
S3 = frozenset({"s3", "s3a"})
_S3_ALIASES = {"access_key_id": "key", "secret_access_key": "secret", "session_token": "token"}
# How long an S3 request may wait, and how often it is retried. botocore's and s3fs's defaults
# (60 s reads, up to 5 attempts, inside s3fs's own 5) leave a frozen endpoint hanging a push for
# minutes; these bound it to about a minute. Each is a remote option of the same name.
S3_TIMEOUTS = {"connect_timeout": 10.0, "read_timeout": 30.0}
S3_RETRIES = 1  # retries after the first attempt of each request


class Remote(Protocol):
    """A place that holds objects by oid: :class:`~conveyor.data.remote_local.LocalRemote` for
    folders, :class:`~conveyor.data.remote_fsspec.FsspecRemote` for everything else.

    Contract (every implementation; ``tests/data/test_remote.py`` checks it):

    - Objects are immutable and named by the BLAKE3 hash of their bytes.
    - Every method may be called from several threads at once.
    - ``exists_many(oids)`` returns the subset present, with as few requests as the backend
      allows (listing shard folders rather than one request per object when there are many).
    - ``upload_many(items, jobs=N, done=f)`` uploads every ``(local_path, oid)`` of ``items``
      with up to ``N`` transfers at a time, and calls ``f(oid)`` on the calling thread once that
      object is durably on the remote. A reader (or a killed writer) never leaves a partial
      object under its name; uploading an oid that is already there is harmless. A backend may
      make a group of objects durable together (a folder: one flush per group instead of one per
      file), so ``f`` may come in bursts, but a group is at most about a second of work. The
      first error stops what has not started yet and propagates; objects reported done stay.
    - ``upload(local_path, oid)`` is ``upload_many`` of one object.
    - ``download(oid, dest_path)`` creates ``dest_path`` (a new local file, read-only) holding
      the object's bytes and returns the BLAKE3 hash of what it wrote, or raises
      :class:`MissingObject` if the remote lacks it. It does not judge the bytes: the caller
      compares the hash with ``oid``, because a remote may hold a damaged copy. Hashing in the
      backend lets it hash while it copies.
    - ``download_many(oids, scratch, jobs=N, done=f)`` downloads each oid as ``download`` does,
      into a new file under the :class:`~conveyor.data.transfer_io.Scratch` folder, with up to
      ``N`` transfers at a time, and calls ``f(oid, Fetched)`` on the calling thread for each;
      from then on the file is the caller's, to rename or delete. An object the remote lacks
      comes as ``Fetched(None)``. The first error stops what has not started and propagates;
      the scratch folder removes the files nobody was given.
    - ``iter_oids()`` yields every object stored, in no particular order, skipping temp files and
      anything that is not an object (for ``gc --remote``).
    - ``remove(oids)`` deletes those objects; oids that are not there are ignored.
    - Anything the backend or the network refuses is a :class:`RemoteError` naming the remote.
    """

    name: str
    url: str

    def exists_many(self, oids: Iterable[str]) -> set[str]: ...

    def upload_many(
        self, items: Sequence[tuple[str, str]], *, jobs: int, done: Callable[[str], None]
    ) -> None: ...

    def upload(self, local_path: str, oid: str) -> None: ...

    def download(self, oid: str, dest_path: str) -> str: ...

    def download_many(
        self,
        oids: Sequence[str],
        scratch: Scratch,
        *,
        jobs: int,
        done: Callable[[str, Fetched], None],
    ) -> None: ...

    def iter_oids(self) -> Iterator[str]: ...

    def remove(self, oids: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class Fetched:
    """One object of :meth:`Remote.download_many`: where it is now, and what its bytes hash to."""

    path: str | None  # a new read-only file; None if the remote lacks the object
    digest: str = ""  # the BLAKE3 hash of the bytes in ``path``
    size: int = 0


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

    def under(self, folder: str) -> RemoteSpec:
        """The same remote rooted at its subfolder ``folder`` (a plain name): a store of its own
        beside the objects, as the run-cache's entries are (``ROOT/runs/ab/cdef...``).

        >>> RemoteSpec("s", "s3://bucket/store", {}).under("runs").url
        's3://bucket/store/runs'
        """
        if not folder or "/" in folder or folder in (".", "..") or len(folder) == 2:
            raise ValueError(f"{folder!r} is not a plain folder name beside the shards")
        if self.protocol == "file":
            return RemoteSpec(self.name, os.path.join(self.url, folder), self.options)
        return RemoteSpec(self.name, f"{self.url.rstrip('/')}/{folder}", self.options)

    @classmethod
    def of(cls, name: str, url: str, options: Mapping[str, Any], *, root: Path) -> RemoteSpec:
        """From config values: a relative folder is relative to the project root ``root``."""
        absolute = absolute_url(url, root)
        try:
            return cls(name, absolute, storage_options(protocol_of(absolute), options))
        except _BadOption as exc:
            raise ConfigError(
                f"remote.{name}.{exc.key}: {exc}",
                hint=f"conveyor config remote.{name}.{exc.key} NUMBER",
            ) from None


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
    ``client_kwargs``, DVC's names for credentials are accepted, and ``connect_timeout``,
    ``read_timeout`` (seconds) and ``retries`` go to botocore's ``config_kwargs`` (with bounded
    defaults; ``config_kwargs`` written out in full win). The words ``true`` and ``false`` (as
    ``conveyor config`` stores them) become booleans.
    """
    opts = {str(k): _coerce(v) for k, v in options.items() if k != "url"}
    if protocol in S3:
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
        opts["config_kwargs"] = {**_s3_limits(opts), **(opts.get("config_kwargs") or {})}
    return opts


class _BadOption(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _s3_limits(opts: dict[str, Any]) -> dict[str, Any]:
    """Pop the timeout and retry options out of ``opts`` as botocore ``Config`` arguments."""
    limits: dict[str, Any] = {}
    for key, default in S3_TIMEOUTS.items():
        limits[key] = _number(key, opts.pop(key, default), float, 0)
    retries = _number("retries", opts.pop("retries", S3_RETRIES), int, -1)
    # "standard" retries connection errors and throttling with a capped backoff; botocore's
    # legacy mode retries fewer errors. total_max_attempts counts the first attempt.
    limits["retries"] = {"mode": "standard", "total_max_attempts": retries + 1}
    return limits


def _number(key: str, value: Any, kind: Callable[[Any], Any], above: int) -> Any:
    what = "a number of seconds" if kind is float else "a whole number"
    bound = "above 0" if above == 0 else "0 or more"
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise _BadOption(key, f"must be {what}, not {value!r}") from None
    if isinstance(value, bool) or number <= above or (kind is int and number != float(value)):
        raise _BadOption(key, f"must be {what}, {bound}, not {value!r}")
    return number


_CHECK = (
    "check the url (`conveyor remote list`), that the remote is reachable, and its "
    "credentials (environment, or `conveyor config --local remote.NAME.OPTION VALUE`)"
)


def remote_error(
    spec: RemoteSpec, what: str, exc: BaseException, oid: str | None = None, *, hint: str = _CHECK
) -> RemoteError:
    """A one-line RemoteError for a backend's exception, naming the remote and what to check."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, PermissionError):
        reason = f"permission denied ({reason})"
    elif type(exc).__name__ not in reason:
        reason = f"{type(exc).__name__}: {reason}"
    target = f" object {oid}" if oid else ""
    if hint is _CHECK and _timed_out(exc):
        hint = (
            "check that the endpoint is up and answering; a slow one can be given longer with "
            f"`conveyor config remote.{spec.name}.read_timeout SECONDS` (see docs/remotes.md)"
        )
    return RemoteError(
        f"remote {spec.name!r} ({spec.url}): {what}{target} failed: {reason}", hint=hint
    )


def _timed_out(exc: BaseException) -> bool:
    # botocore's ConnectTimeoutError/ReadTimeoutError are not TimeoutError subclasses.
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def _coerce(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
