"""The deploy layer's errors, under :class:`~conveyor.foundation.errors.ConveyorError`.

    DeployError              exit 1   a rollout command that cannot be done now (says why)
    UnknownEnvironment       exit 2   an environment conveyor.yaml does not declare (a ConfigError)
    ContainerError           exit 1   an image's build context or build that cannot be done

A wrong key or value in ``deploy:`` stays a plain
:class:`~conveyor.foundation.errors.ConfigError` naming ``conveyor.yaml:LINE``.
"""

from __future__ import annotations

from conveyor.foundation.errors import ConfigError, ConveyorError


class DeployError(ConveyorError):
    """A rollout command refused: a version already stable, a rollout already on, nothing to
    promote, pause, resume, abort or roll back to."""


class UnknownEnvironment(ConfigError):
    """``--env NAME`` names no environment under ``deploy:``."""


class ContainerError(ConveyorError):
    """An image's build context that cannot be written (conveyor's wheel cannot be made, the
    folder is taken), or an image that cannot be built (no builder on PATH, a failed build)."""
