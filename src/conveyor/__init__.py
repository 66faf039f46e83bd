"""conveyor: the whole CI/CD loop of a machine-learning repository in one tool.

The public API is what ``__all__`` lists; everything else may change between releases.

>>> import conveyor
>>> conveyor.__version__ != ""
True
"""

from __future__ import annotations

from conveyor.foundation.errors import ConveyorError
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
