"""The :class:`~conveyor.data.remote.Remote` of a folder: a local disk or a mounted share.

Plain system calls, no fsspec. Uploads are copied into ``ROOT/.tmp/`` and put in place by a
:class:`~conveyor.data.transfer_io.Landing`, as downloads are put into the cache: one ``syncfs``
for a group of objects, their renames, and one more ``syncfs``, instead of an ``fsync`` per
object. Downloads read a small object once, hash those bytes and write them; a large one is
copied by the kernel and hashed from the copy. Existence checks list shard folders.

Options configured for a folder remote (fsspec's ``auto_mkdir``, say) are accepted and ignored:
folders are always created as needed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import blake3

from conveyor.data import hashing
from conveyor.data.hashing import copy_all
from conveyor.data.objects import storage_error, write_new
from conveyor.data.remote import Fetched, MissingObject, RemoteSpec, remote_error
from conveyor.data.transfer_io import (
    Landing,
    Scratch,
    download_each,
    fetch_one,
    parallel,
    run_length,
)
from conveyor.foundation import atomic
from conveyor.foundation.errors import RemoteError
from conveyor.foundation.lock import alive

T = TypeVar("T")

TMP = ".tmp"  # uploads in progress; never an object (shards are two hex digits)
# Below this many objects, one stat per object beats listing shard folders.
_FEW = 16
# From this many objects on, downloads run in one forked process per core (CONVEYOR_PROCESSES=0
# keeps them in threads, as it does for `add`).
_MANY = 1000
_PROCESSES = os.environ.get("CONVEYOR_PROCESSES", "1") != "0"
_in_worker = False  # set in forked download workers
_HINT = "check that the folder exists, is mounted, writable and not full (`conveyor remote list`)"
_PR_SET_PDEATHSIG = 1


class LocalRemote:
    """A remote in a folder of this machine (or a mounted share); thread-safe."""

    def __init__(self, spec: RemoteSpec, *, jobs: int = 8) -> None:
        self.spec = spec
        self.name = spec.name
        self.url = spec.url
        self.jobs = max(1, jobs)
        self.root = spec.url
        self.tmp = os.path.join(self.root, TMP)
        # Temp folders are named PID.HOST.RANDOM.*: a folder may be shared by several machines.
        self._host = socket.gethostname().replace(".", "_") or "localhost"
        self._shards: set[str] = set()
        self._cleaned = False
        self._lock = threading.Lock()

    def path(self, oid: str) -> str:
        return f"{self.root}/{hashing.object_path(oid)}"

    # -- Remote --------------------------------------------------------------------------
    def exists_many(self, oids: Iterable[str]) -> set[str]:
        wanted = set(oids)
        try:
            if len(wanted) <= _FEW:
                return {o for o in wanted if os.path.exists(self.path(o))}
            groups: dict[str, list[str]] = {}
            for oid in wanted:
                shard, name = hashing.sharded(oid)
                groups.setdefault(shard, []).append(name)
            shards = sorted(groups)
            found: set[str] = set()
            for shard, names in zip(shards, self._map(self._list, shards), strict=True):
                found.update(shard + n for n in groups[shard] if n in names)
            return found
        except OSError as exc:
            raise self._error("checking objects", exc) from exc

    def upload_many(
        self, items: Sequence[tuple[str, str]], *, jobs: int, done: Callable[[str], None]
    ) -> None:
        if not items:
            return
        self._prepare()
        scratch = Scratch(self.tmp, f"{os.getpid()}.{self._host}.{uuid.uuid4().hex[:8]}")
        landing = Landing(self.tmp, self._place, landed=done)

        def stage(item: tuple[str, str]) -> str:
            tmp = scratch.path()
            try:
                _copy(item[0], tmp)
            except OSError as exc:
                raise self._error("uploading", exc, item[1]) from exc
            return tmp

        try:
            # The landing is left first: it renames what was copied out of the scratch folders.
            with scratch, landing:
                parallel(
                    items,
                    stage,
                    jobs,
                    lambda item, tmp: landing.add(tmp, item[1]),
                    run=run_length(len(items), jobs),
                )
        except OSError as exc:  # creating a temp folder, or a flush
            raise self._error("uploading", exc) from exc

    def upload(self, local_path: str, oid: str) -> None:
        self.upload_many([(local_path, oid)], jobs=1, done=lambda _: None)

    def download(self, oid: str, dest_path: str) -> str:
        try:
            src = os.open(self.path(oid), os.O_RDONLY)
        except FileNotFoundError:
            raise MissingObject(self.name, oid) from None
        except OSError as exc:
            raise self._error("downloading", exc, oid) from exc
        try:
            size = os.fstat(src).st_size
            if size < hashing.SMALL:
                return self._download_small(src, size, oid, dest_path)
            return self._download_large(src, oid, dest_path)
        finally:
            os.close(src)

    def download_many(
        self,
        oids: Sequence[str],
        scratch: Scratch,
        *,
        jobs: int,
        done: Callable[[str, Fetched], None],
    ) -> None:
        cores = min(os.cpu_count() or 1, jobs)
        if len(oids) < _MANY or cores < 2 or not _PROCESSES:
            download_each(self, oids, scratch, jobs=jobs, done=done)
            return
        # Hashing small objects holds the GIL, so threads cannot use a second core for it.
        import multiprocessing

        size = run_length(len(oids), cores, most=256)
        tasks = [
            (self.spec, scratch.folder, scratch.prefix, list(oids[i : i + size]))
            for i in range(0, len(oids), size)
        ]
        pool = multiprocessing.get_context("fork").Pool(
            cores, initializer=_start_worker, initargs=(os.getpid(),)
        )
        with pool:
            for part in pool.imap_unordered(_download_chunk, tasks):
                for oid, fetched in part:
                    done(oid, fetched)

    def iter_oids(self) -> Iterator[str]:
        try:
            shards = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error("listing objects", exc) from exc
        for shard in shards:
            if not hashing.is_shard(shard):
                continue
            for rest in self._list(shard):
                oid = hashing.oid_at(shard, rest)
                if oid:
                    yield oid

    def remove(self, oids: Iterable[str]) -> None:
        for oid in sorted(set(oids)):
            try:
                os.unlink(self.path(oid))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._error("removing objects", exc, oid) from exc

    # -- uploading -----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Create ``ROOT/.tmp``; the first time, remove what dead uploaders of this host left."""
        try:
            os.makedirs(self.tmp, exist_ok=True)
        except OSError as exc:
            raise self._error("creating folders", exc) from exc
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
        for entry in os.scandir(self.tmp):
            pid, _, rest = entry.name.partition(".")
            if rest.partition(".")[0] == self._host and pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)

    def _place(self, tmp: str, oid: str) -> None:
        shard, _ = hashing.sharded(oid)
        try:
            if shard not in self._shards:
                os.makedirs(f"{self.root}/{shard}", exist_ok=True)
                with self._lock:
                    self._shards.add(shard)
            os.replace(tmp, self.path(oid))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._error("uploading", exc, oid) from exc

    # -- downloading ---------------------------------------------------------------------
    def _download_small(self, src: int, size: int, oid: str, dest_path: str) -> str:
        try:
            data = _read_all(src, size)
        except OSError as exc:
            raise self._error("downloading", exc, oid) from exc
        try:
            write_new(dest_path, data)
        except OSError as exc:
            raise storage_error(f"object {oid} from remote {self.name!r}", exc) from exc
        return hashing.hash_bytes(data)

    def _download_large(self, src: int, oid: str, dest_path: str) -> str:
        try:
            dest = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except OSError as exc:
            raise storage_error(f"object {oid} from remote {self.name!r}", exc) from exc
        try:
            copy_all(src, dest)
        except BaseException as exc:
            os.close(dest)
            os.unlink(dest_path)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise storage_error(f"object {oid} from remote {self.name!r}", exc) from exc
            if isinstance(exc, OSError):
                raise self._error("downloading", exc, oid) from exc
            raise
        os.close(dest)
        # Hash the copy, not the source: what is verified is exactly what the cache gets. A
        # forked worker hashes on one thread: the parent's hashing threads did not come along.
        hasher = blake3.blake3(max_threads=1 if _in_worker else blake3.blake3.AUTO)
        hasher.update_mmap(dest_path)
        return str(hasher.hexdigest())

    # -- helpers -------------------------------------------------------------------------
    def _list(self, shard: str) -> set[str]:
        try:
            return set(os.listdir(f"{self.root}/{shard}"))
        except FileNotFoundError:
            return set()

    def _map(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        # Listing is a system call that releases the GIL: threads help on a network share.
        if len(items) <= 8 or self.jobs == 1:
            return [fn(i) for i in items]
        pool = ThreadPoolExecutor(min(self.jobs, 8), thread_name_prefix="conveyor-ls")
        with pool:
            return list(pool.map(fn, items))

    def _error(self, what: str, exc: BaseException, oid: str | None = None) -> RemoteError:
        return remote_error(self.spec, what, exc, oid, hint=_HINT)


def _download_chunk(
    task: tuple[RemoteSpec, str, str, list[str]],
) -> list[tuple[str, Fetched]]:
    """In a forked process: download ``oids`` into this process's own scratch subfolder."""
    spec, scratch_folder, prefix, oids = task
    remote = LocalRemote(spec, jobs=1)
    folder = Scratch(scratch_folder, prefix).subfolder(f"p{os.getpid()}")
    return [(oid, fetch_one(remote, oid, f"{folder}/{oid}")) for oid in oids]


def _start_worker(parent: int) -> None:
    """In a forked worker: end when the parent ends, even by SIGKILL, rather than write on."""
    import signal

    global _in_worker
    _in_worker = True
    with contextlib.suppress(OSError, AttributeError):
        atomic.libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _copy(src_path: str, dest_path: str) -> None:
    """Copy a file to the new file ``dest_path``; remove it again on any failure."""
    src = os.open(src_path, os.O_RDONLY)
    try:
        dest = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            copy_all(src, dest)
        except BaseException:
            os.close(dest)
            os.unlink(dest_path)
            raise
        os.close(dest)
    finally:
        os.close(src)


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:  # a short read (a network share): read on up to the end
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data
