"""conveyor: the whole CI/CD loop of a machine-learning repository in one tool.

The public API is what ``__all__`` lists; everything else may change between releases.

>>> import conveyor
>>> conveyor.__version__ != ""
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.tracking.api import (
        log_artifact,
        log_metric,
        log_metrics,
        log_params,
        set_tags,
        start_run,
    )

__version__ = "0.1.0"

__all__ = [
    "ConveyorError",
    "__version__",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_params",
    "set_tags",
    "start_run",
]


_API = {"log_artifact", "log_metric", "log_metrics", "log_params", "set_tags", "start_run"}


def __getattr__(name: str) -> Any:
    # The logging API loads on first use: the command line imports this package too and
    # must not pay for it.
    if name in _API:
        from conveyor.tracking import api

        return getattr(api, name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
