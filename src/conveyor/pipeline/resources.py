"""What a stage asks of the machine that runs it: ``resources: {cpus: 2, gpus: 1, memory: 4GiB}``.

The local pool runs stages on this machine and ignores them; the Ray executor schedules each
stage as a task needing that much (``num_cpus``, ``num_gpus``, ``memory``). Parsing is pure: the
section as written in, ``(name, amount)`` pairs out (memory in bytes), or a message naming what
is wrong; :mod:`conveyor.pipeline.definition` adds the file and line.

>>> parse({"cpus": 2, "memory": "4GiB"})
(('cpus', 2.0), ('memory', 4294967296.0))
>>> memory_bytes("512 MB")
512000000
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conveyor.foundation.suggest import did_you_mean

KEYS = ("cpus", "gpus", "memory")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")
EXAMPLE = "resources: {cpus: 2, gpus: 1, memory: 4GiB}"


class BadResource(ValueError):
    """A resource the stage cannot ask for; ``key`` is the one at fault."""

    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.hint = hint


def parse(raw: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    """``(name, amount)`` pairs in :data:`KEYS` order; memory in bytes."""
    for key in raw:
        if key not in KEYS:
            raise BadResource(
                str(key),
                f"unknown resource {key!r}",
                did_you_mean(str(key), KEYS) or f"resources are {', '.join(KEYS)}",
            )
    out: list[tuple[str, float]] = []
    for key in KEYS:
        if raw.get(key) is None:
            continue
        value = raw[key]
        if key == "memory":
            amount = float(memory_bytes(value))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise BadResource(key, f"{key} must be a number, not {value!r}", hint=EXAMPLE)
        else:
            amount = float(value)
        if amount < 0:
            raise BadResource(key, f"{key} must be 0 or more, not {value!r}", hint=EXAMPLE)
        out.append((key, amount))
    return tuple(out)


def memory_bytes(value: Any) -> int:
    """Bytes from a number of bytes, or ``4GiB``, ``512 MB``, ``1.5G`` (G: 10**9, Gi: 2**30)."""
    if isinstance(value, bool):
        raise BadResource("memory", f"memory must be a size such as 4GiB, not {value!r}")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.fullmatch(str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise BadResource(
            "memory",
            f"memory must be a size such as 4GiB or 512MB, not {value!r}",
            hint="units: B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (of 1024)",
        )
    return int(float(match.group(1)) * _UNITS[unit])
