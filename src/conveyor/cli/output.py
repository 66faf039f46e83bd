"""What the user sees: progress bars on stderr, results on stdout, errors in one or two lines.

rich is imported only when a bar is actually drawn, so quick commands stay quick.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

# Work smaller than this finishes before a bar would help.
_MIN_FILES = 500
_MIN_BYTES = 256 << 20


class Settings:
    """What the global options asked for; set once by the entry point."""

    quiet = False
    debug = False


SETTINGS = Settings()

_COLOURS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "cyan": 36}


def style(
    text: str, fg: str | None = None, bold: bool = False, *, stream: TextIO | None = None
) -> str:
    """``text`` in colour when it goes to a terminal (and NO_COLOR is not set)."""
    stream = stream or sys.stdout
    if not (fg or bold) or os.environ.get("NO_COLOR") or not stream.isatty():
        return text
    codes = ([str(_COLOURS[fg])] if fg else []) + (["1"] if bold else [])
    return f"\033[{';'.join(codes)}m{text}\033[0m"


def bar() -> Bar:
    """A progress bar for library code, unless --quiet."""
    return Bar(enabled=not SETTINGS.quiet)


class Bar:
    """A :class:`conveyor.foundation.progress.Progress` drawn with rich on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def start(self, description: str, total: int, unit: str = "files") -> None:
        small = total < (_MIN_BYTES if unit == "bytes" else _MIN_FILES)
        if not self.enabled or small:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        count = (
            [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
        )
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            *count,
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def echo(text: str = "", *, fg: str | None = None, bold: bool = False, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    print(style(text, fg, bold, stream=stream), file=stream)


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Aligned plain-text columns (readable in CI logs and terminals alike)."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    echo(line, bold=True)
    for row in rows:
        echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def cell(value: object) -> str:
    """A value in a table: "-" for none, floats to 6 significant digits, text as it is."""
    from conveyor.tracking.compare import shown

    return shown(value)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
