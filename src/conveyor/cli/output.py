"""What the user sees: progress bars on stderr, results on stdout, errors in one or two lines.

rich is imported only when a bar is actually drawn, so quick commands stay quick.
"""

from __future__ import annotations

import sys
from typing import Any

import click

# Work smaller than this finishes before a bar would help.
_MIN_FILES = 500
_MIN_BYTES = 256 << 20


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


def echo(text: str = "", **style: Any) -> None:
    click.echo(click.style(text, **style) if style else text)


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Aligned plain-text columns (readable in CI logs and terminals alike)."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    echo(line, bold=True)
    for row in rows:
        echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
