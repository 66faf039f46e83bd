"""How library code reports progress without printing: the CLI passes a Progress in.

Library code calls ``start`` when it knows how much work there is, ``advance`` as it goes, and
``stop`` at the end. :class:`Silent` ignores everything and is the default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: int, unit: str = "files") -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def stop(self) -> None: ...


class Silent:
    def start(self, description: str, total: int, unit: str = "files") -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass
