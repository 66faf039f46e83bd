"""The :class:`~conveyor.data.remote.Remote` of every fsspec backend: folders, S3, GCS, Azure, SSH.

Imported only by :func:`conveyor.data.remotes.open_remote`, so fsspec (and its backends) load
only when a command actually talks to a remote. Every exception a backend raises is translated
here into a :class:`RemoteError` that names the remote.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from conveyor.data import hashing
from conveyor.data.remote import S3, Fetched, MissingObject, RemoteSpec, remote_error
from conveyor.data.transfer_io import Scratch, download_each, parallel
from conveyor.foundation.errors import ConfigError, ConveyorError, RemoteError

T = TypeVar("T")
_log = logging.getLogger(__name__)

# Below this many objects, one request per object beats listing folders.
_FEW = 16
# Keys an object store returns per listing request (S3, GCS and Azure all page by 1000).
_PAGE = 1000
_REMOVE_CHUNK = 1000
# A web server's folder listing (if any) is not a reliable inventory: ask for each object.
_NO_LISTING = frozenset({"http", "https"})


def plan_checks(
    groups: dict[str, list[str]], per_shard: int, page: int = _PAGE
) -> tuple[list[str], list[str]]:
    """Which shard folders to list and which objects to check one by one.

    A shard holding about ``per_shard`` objects costs ``ceil(per_shard / page)`` requests to
    list; it is listed when that is no more than checking each wanted object in it.
    """
    cost = max(1, -(-per_shard // page))
    listed = sorted(s for s, oids in groups.items() if len(oids) >= cost)
    single = sorted(o for s, oids in groups.items() if len(oids) < cost for o in oids)
    return listed, single


class FsspecRemote:
    """A remote on any fsspec filesystem; thread-safe."""

    def __init__(self, spec: RemoteSpec, *, jobs: int = 8) -> None:
        self.spec = spec
        self.name = spec.name
        self.url = spec.url
        self.jobs = max(1, jobs)
        self.fs, root = _filesystem(spec)
        self.root = root.rstrip("/") or "/"
        self._base = "" if self.root == "/" else self.root
        self._local = "file" in _protocols(self.fs)
        self._made: set[str] = set()
        self._lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------
    def path(self, oid: str) -> str:
        return f"{self._base}/{hashing.object_path(oid)}"

    def _shard(self, shard: str) -> str:
        return f"{self._base}/{shard}"

    # -- Remote --------------------------------------------------------------------------
    def exists_many(self, oids: Iterable[str]) -> set[str]:
        wanted = sorted(set(oids))
        if len(wanted) <= _FEW or self.spec.protocol in _NO_LISTING:
            return self._each_exists(wanted)
        groups: dict[str, list[str]] = {}
        for oid in wanted:
            groups.setdefault(hashing.sharded(oid)[0], []).append(oid)
        # Sample the biggest wanted shard to learn how full shards are, then plan the rest.
        first = max(groups, key=lambda s: len(groups[s]))
        names = self._list_shard(first)
        found = {o for o in groups.pop(first) if hashing.sharded(o)[1] in names}
        listed, single = plan_checks(groups, len(names))
        for shard, listing in zip(listed, self._map(self._list_shard, listed), strict=True):
            found.update(o for o in groups[shard] if hashing.sharded(o)[1] in listing)
        return found | self._each_exists(single)

    def upload_many(
        self, items: Sequence[tuple[str, str]], *, jobs: int, done: Callable[[str], None]
    ) -> None:
        parallel(items, lambda item: self.upload(*item), jobs, lambda item, _: done(item[1]))

    def upload(self, local_path: str, oid: str) -> None:
        final = self.path(oid)
        if self.spec.atomic_put:
            self._call("uploading", oid, self.fs.put_file, local_path, final)
            return
        self._makedirs(self._shard(hashing.sharded(oid)[0]))
        tmp = f"{final}.{uuid.uuid4().hex[:16]}.tmp"
        try:
            self._call("uploading", oid, self.fs.put_file, local_path, tmp)
            if self._local:
                _fsync(tmp)
            self._call("uploading", oid, self.fs.mv, tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def download(self, oid: str, dest_path: str) -> str:
        try:
            self.fs.get_file(self.path(oid), dest_path)
        except FileNotFoundError:
            raise MissingObject(self.name, oid) from None
        except Exception as exc:
            raise self._error("downloading", exc, oid) from exc
        os.chmod(dest_path, 0o444)
        return hashing.hash_file(dest_path)

    def download_many(
        self,
        oids: Sequence[str],
        scratch: Scratch,
        *,
        jobs: int,
        done: Callable[[str, Fetched], None],
    ) -> None:
        download_each(self, oids, scratch, jobs=jobs, done=done)

    def iter_oids(self) -> Iterator[str]:
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error("listing objects", exc) from exc
        prefix = len(self._base) + 1
        for path in found:
            shard, _, rest = path[prefix:].partition("/")
            oid = hashing.oid_at(shard, rest)
            if oid:
                yield oid

    def remove(self, oids: Iterable[str]) -> None:
        paths = [self.path(o) for o in sorted(set(oids))]
        if self.spec.atomic_put:
            for i in range(0, len(paths), _REMOVE_CHUNK):
                self._call("removing objects", None, self.fs.rm, paths[i : i + _REMOVE_CHUNK])
            return
        self._map(self._remove_one, paths)

    # -- helpers -------------------------------------------------------------------------
    def _each_exists(self, oids: list[str]) -> set[str]:
        return {o for o, there in zip(oids, self._map(self._exists, oids), strict=True) if there}

    def _exists(self, oid: str) -> bool:
        try:
            self.fs.info(self.path(oid))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._error("checking", exc, oid) from exc
        return True

    def _list_shard(self, shard: str) -> set[str]:
        try:
            paths = self.fs.ls(self._shard(shard), detail=False)
        except FileNotFoundError:
            return set()
        except Exception as exc:
            raise self._error("listing objects", exc) from exc
        return {p.rstrip("/").rsplit("/", 1)[-1] for p in paths}

    def _remove_one(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._error("removing objects", exc) from exc

    def _makedirs(self, folder: str) -> None:
        if folder in self._made:
            return
        self._call("creating folders", None, self.fs.makedirs, folder, exist_ok=True)
        with self._lock:
            self._made.add(folder)

    def _map(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        if len(items) <= 1 or self.jobs == 1:
            return [fn(i) for i in items]
        pool = ThreadPoolExecutor(min(self.jobs, len(items)), thread_name_prefix="conveyor-ls")
        with pool:
            return list(pool.map(fn, items))

    def _call(self, what: str, oid: str | None, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except ConveyorError:
            raise
        except Exception as exc:
            raise self._error(what, exc, oid) from exc

    def _error(self, what: str, exc: BaseException, oid: str | None = None) -> RemoteError:
        return remote_error(self.spec, what, exc, oid)


def _filesystem(spec: RemoteSpec) -> tuple[Any, str]:
    import fsspec
    from fsspec.registry import known_implementations

    try:
        # A fresh instance per remote: cached instances would share stale listings.
        options = _stall_bounded(spec) if spec.protocol in S3 else spec.options
        fs, root = fsspec.core.url_to_fs(spec.url, skip_instance_cache=True, **options)
    except ImportError as exc:
        known = known_implementations.get(spec.protocol, {})
        package = str(known.get("class", "")).split(".", 1)[0]
        if not package or package == "fsspec":  # fsspec's own backend lacks a dependency
            package = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "?"
        raise RemoteError(
            f"remote {spec.name!r} ({spec.url}) needs the {package!r} package, "
            f"which is not installed ({exc})",
            hint=f"pip install {package}",
        ) from exc
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise ConfigError(
                f"remote {spec.name!r}: unknown kind of URL {spec.protocol + '://'!r}",
                hint="use a folder, s3://, gs://, az://, ssh:// or http(s)://",
            ) from exc
        raise remote_error(spec, "opening", exc) from exc
    except TypeError as exc:
        raise ConfigError(
            f"remote {spec.name!r}: an option is not accepted by the {spec.protocol} backend: "
            f"{exc}",
            hint=f"check the options under remote.{spec.name} in .conveyor/config(.local)",
        ) from exc
    except Exception as exc:
        raise remote_error(spec, "opening", exc) from exc
    if spec.protocol in S3:
        # s3fs retries each request up to 5 times around botocore's own retries, so a frozen
        # endpoint costs 5 x attempts x read_timeout; botocore's bounded count (the remote's
        # ``retries``) is the only one.
        fs.retries = 1
        _send_bodies_at_once(spec, fs)
    _quiet_loop(fs)
    return fs, str(root)


def _stall_bounded(spec: RemoteSpec) -> dict[str, Any]:
    """S3 options whose connections give up on a request body the endpoint stops taking in.

    botocore's read timeout starts once a request is sent; a body still being written to an
    endpoint that froze (its kernel acknowledges, with a zero window, and never reads) waits
    forever. Linux's TCP_USER_TIMEOUT ends a connection whose sent data goes unacknowledged,
    zero-window probes included, for that long: it is set to the read timeout.
    """
    options = dict(spec.options)
    config = dict(options.get("config_kwargs") or {})
    connector = dict(config.get("connector_args") or {})
    limit = getattr(socket, "TCP_USER_TIMEOUT", None)
    seconds = config.get("read_timeout")
    if limit is None or not isinstance(seconds, (int, float)) or "socket_factory" in connector:
        return options
    millis = max(1, int(seconds * 1000))

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=proto)
        sock.setsockopt(socket.IPPROTO_TCP, limit, millis)
        return sock

    config["connector_args"] = {**connector, "socket_factory": factory}
    options["config_kwargs"] = config
    return options


def _send_bodies_at_once(spec: RemoteSpec, fs: Any) -> None:
    """Drop botocore's ``Expect: 100-continue`` from S3 uploads.

    aiohttp waits for the server's "100 Continue" before sending a body, with no timeout at
    all: an endpoint that froze after accepting the connection held an upload forever. Sent
    at once, the body meets the stalled-connection bound and then the read timeout.
    """
    try:
        fs.connect()  # s3fs makes its client on first use; the handler goes on that client
    except Exception as exc:
        raise remote_error(spec, "opening", exc) from exc
    fs.s3.meta.events.register_last("before-call.s3", _no_expect)


def _no_expect(params: dict[str, Any], **_: Any) -> None:
    params.get("headers", {}).pop("Expect", None)


def _quiet_loop(fs: Any) -> None:
    """Keep an async backend's event loop from printing what the user is told anyway.

    When a server vanishes mid-transfer, aiohttp leaves a task per connection whose exception
    nobody retrieves (the request fails with its own error, which reaches the user as a
    RemoteError); asyncio's default handler prints each with its traceback, hundreds of lines
    before the one that matters. They go to this module's logger, at debug level, instead.
    """
    loop = getattr(fs, "loop", None)  # fsspec's one loop, in its own thread, for all backends
    if loop is not None and hasattr(loop, "set_exception_handler"):
        loop.set_exception_handler(_log_loop_error)


def _log_loop_error(_loop: Any, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    _log.debug("remote backend: %s", context.get("message"), exc_info=exc)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
