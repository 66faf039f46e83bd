"""Segments: the JSON-lines files the prediction log and feedback are kept in, one discipline for
writing and reading both.

A folder holds segments named ``<start>-<pid>-<n>.jsonl`` (``start`` in UTC,
``%Y%m%dT%H%M%S``), oldest first by name. A segment being written is ``.jsonl.part``: it grows
by whole lines and is renamed to ``.jsonl`` when finished, its content unchanged; a finished
segment never changes again. A reader takes finished segments whole and, from a ``.part`` (one
being written, or one a killed process left), every complete line, never a half-written one.

    Segment(folder, ...)   one segment being written, through its file descriptor
    files(folder)          the segments in a folder, oldest first
    complete(path, data)   what of a segment's bytes a reader takes
    records(data)          the records of whole lines
    lines(data)            those lines, each with its byte offset
    lines_at(folder, key, offsets)  lines read again, in a .part or once it is renamed
    Tail(folder)           the lines added to a folder's segments since the last read
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from conveyor.foundation import atomic

SUFFIX = ".jsonl"
PART = ".part"  # appended to SUFFIX while a segment is written

_NUMBERS = itertools.count()  # one per process: names never repeat, whatever the folder


def segment_name(started: float, pid: int, number: int) -> str:
    """A finished segment's file name; several may start within one second of one process,
    hence the number."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    return f"{stamp}-{pid}-{number:04d}{SUFFIX}"


def new_name(started: float) -> str:
    """The name of a segment this process starts at ``started``, unlike any other it named."""
    return segment_name(started, os.getpid(), next(_NUMBERS))


# -- writing ----------------------------------------------------------------------------------


class Segment:
    """One ``.jsonl.part`` file, written through its descriptor: no buffer that a failed write
    would leave half-flushed for a later close to write out of place. :meth:`finish` renames it
    to ``.jsonl``; after a failed write, :meth:`abandon` cuts what it half wrote and leaves it
    as ``.part`` (whose whole lines a reader takes). One thread writes it at a time.

    It is :meth:`full` with ``records`` records or ``seconds`` old. ``durable``: every
    :meth:`write` is on disk (``fdatasync``) before it returns, and the rename too (the folder
    is synced after it), so that what a writer acknowledged survives a crash; otherwise the
    file is synced once, when finished, and one that cannot be is abandoned instead of renamed.
    """

    def __init__(
        self, folder: Path, *, records: int, seconds: float, durable: bool = False
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.records = records
        self.seconds = seconds
        self.durable = durable
        self.started = time.time()
        self.path = folder / new_name(self.started)
        self.part = self.path.with_name(self.path.name + PART)
        self.count = 0  # records in the file
        self.written = 0  # bytes of whole lines in the file
        self.fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, data: bytes, records: int = 1) -> None:
        """Append ``data``, whole lines holding ``records`` records. An OSError leaves it
        uncounted: :meth:`abandon` cuts whatever of it reached the file."""
        atomic.write_all(self.fd, data)
        if self.durable:
            os.fdatasync(self.fd)
        self.written += len(data)
        self.count += records

    def full(self) -> bool:
        return self.count >= self.records or time.time() - self.started >= self.seconds

    def gone(self) -> bool:
        """The file was removed (with its folder, say): what is written to it is lost."""
        return os.fstat(self.fd).st_nlink == 0

    def finish(self) -> None:
        if self.fd < 0:  # finished or abandoned already: an abandoned one stays .part
            return
        if not self.durable:
            try:
                os.fsync(self.fd)
            except OSError:
                self.abandon()
                return
        self._close()
        with contextlib.suppress(OSError):  # its folder is gone: there is nothing to rename
            os.replace(self.part, self.path)
            if self.durable:
                atomic.fsync_dir(self.path.parent)

    def abandon(self) -> int:
        """After a failed write: cut a half-written line (or batch) and leave the file as
        ``.part``. The number of records in it."""
        if self.fd >= 0:  # if even that fails, a reader still skips a cut last line
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.written)
        self._close()
        return self.count

    def _close(self) -> None:
        # Never closed twice: by then the number may be another file's.
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


# -- reading ----------------------------------------------------------------------------------


def key(name: str) -> str | None:
    """A segment's name without ``.part``, which it keeps when finished; None for a file that
    is no segment (hidden ones are being written elsewhere and renamed into place)."""
    stem = name.removesuffix(PART)
    return stem if stem.endswith(SUFFIX) and not name.startswith(".") else None


def files(folder: Path) -> list[Path]:
    """The segments in ``folder``, oldest first; none for a folder not made yet."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if key(p.name) is not None)


def complete(path: Path, data: bytes) -> bytes:
    """What a reader takes of ``data`` read from ``path`` (from its start or from the end of a
    line): all of a finished segment, the complete lines of a ``.part``."""
    return data[: data.rfind(b"\n") + 1] if path.name.endswith(PART) else data


def records(data: bytes) -> Iterator[Any]:
    """The record of each line of ``data``."""
    for line in data.splitlines():
        if line:
            yield orjson.loads(line)


def line_lists(data: bytes, size: int = 1 << 20) -> Iterator[list[bytes]]:
    """The lines :func:`lines` gives (without their offsets), split in C a piece of about
    ``size`` bytes at a time: three times faster than one at a time, and a chunk's lines never
    all exist at once."""
    start, end = 0, len(data)
    while start < end:
        cut = data.find(b"\n", start + size) if start + size < end else -1
        stop = end if cut < 0 else cut + 1
        yield [line for line in data[start:stop].splitlines() if line]
        start = stop


def lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The lines :func:`records` reads, each with the byte offset in ``data`` it starts at.
    Found one at a time: a list of a chunk's lines would take as much memory as the chunk."""
    start, end = 0, len(data)
    while start < end:
        stop = data.find(b"\n", start)
        stop = end if stop < 0 else stop
        line = data[start:stop]
        if b"\r" in line:  # splitlines (hence records) breaks lines there too
            at = start
            for piece in line.splitlines(keepends=True):
                if piece.rstrip(b"\r"):
                    yield at, piece.rstrip(b"\r")
                at += len(piece)
        elif line:
            yield start, line
        start = stop + 1


def lines_at(folder: Path, name: str, offsets: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """The line that starts at each of ``offsets`` (as :func:`lines` gave them) in ``folder``'s
    segment of key ``name``, ``.part`` or finished: a ``.part`` keeps its bytes when renamed,
    so an offset read in one holds in the other. Nothing of a segment removed since."""
    for file_name in (name, name + PART, name):  # renamed between two tries: found the third
        try:
            file = open(folder / file_name, "rb")  # noqa: SIM115 (closed below, when read)
        except FileNotFoundError:
            continue
        with file:
            for offset in offsets:
                file.seek(offset)
                line = file.readline().splitlines()
                if line and line[0]:
                    yield offset, line[0]
        return


class Tail:
    """The lines added to a folder's segments since the last :meth:`read`: new segments, and the
    new complete lines of those being written, by this process or another. It remembers how
    many bytes of each segment it took, by the segment's :func:`key`: a ``.part`` renamed when
    finished is read on from there, never twice. An OSError (whose ``filename`` is the folder
    or the segment) is left to the caller, which knows what the folder holds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets: dict[str, int] = {}  # segment key -> bytes taken

    def read(self) -> Iterator[tuple[str, int, bytes]]:
        """(segment key, offset, the whole lines added there), oldest segment first. A chunk
        counts as taken once the caller asks for the next one: one that raised meanwhile is
        read again next time."""
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            name = key(entry.name)
            if name is None:
                continue
            offset = self.offsets.get(name, 0)
            try:
                if entry.stat().st_size <= offset:
                    continue
                with open(entry.path, "rb") as file:
                    file.seek(offset)
                    data = complete(Path(entry.path), file.read())
            except FileNotFoundError:  # renamed from .part meanwhile: read next time
                continue
            if data:
                yield name, offset, data
                self.offsets[name] = offset + len(data)
