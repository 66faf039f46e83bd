"""Durations as users write them in conveyor.yaml: ``30s``, ``10m``, ``1h``, ``500ms``, ``1m30s``
or a bare number of seconds. Shared by ``deploy:`` (analysis intervals, pauses) and ``monitor:``
(windows, alerts' ``for``).
"""

from __future__ import annotations

import math
import re

from conveyor.foundation.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")


def duration(text: str | int | float) -> float:
    """Seconds in ``30s``, ``10m``, ``1h``, ``500ms``, ``1m30s`` or a bare number of seconds.

    >>> duration("1m30s"), duration("500ms"), duration(2)
    (90.0, 0.5, 2.0)
    """
    hint = "a number of seconds, or with a unit: 500ms, 30s, 10m, 1h, 1d, 1m30s"
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ConfigError(f"{text!r} is not a duration", hint=hint)
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        raw = text.strip()
        try:
            seconds = float(raw)
        except ValueError:
            parts = _DURATION.findall(raw)
            if not parts or "".join(n + u for n, u in parts) != raw:
                raise ConfigError(f"{text!r} is not a duration", hint=hint) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{text!r} is not a duration: it must be 0 or more", hint=hint)
    return seconds
