"""The container image a model version is packaged as: one name, shared by ``conveyor
package`` (which writes its build context) and the Kubernetes manifests (which run it).

    >>> image_reference("Churn_Model", 12)
    'conveyor-churn_model:12'
    >>> image_reference("fraud..v2", 3)
    'conveyor-fraud-v2:3'
"""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.deploy.errors import DeployError
from conveyor.foundation.errors import ConveyorError

PREFIX = "conveyor-"
# An image repository's name: lowercase letters and digits, with one separator between them
# (".", "_", "__" or a run of "-"). A model name (uris.MODEL_NAME) may hold capitals, may start
# with "_" and may hold runs of separators no image name takes.
_PARTS = re.compile(r"[a-z0-9]+|[^a-z0-9]+")
_SEPARATOR = re.compile(r"[._]|__|-+")


def image_reference(model: str, version: int | str) -> str:
    """``conveyor-<model, lowercased>:<version>``, where a run of characters an image name
    cannot hold becomes one dash. ``version`` is the registry's number (``"local"`` for a
    package folder)."""
    parts = _PARTS.findall(model.lower())
    name = "".join(p if p[0].isalnum() or _SEPARATOR.fullmatch(p) else "-" for p in parts).strip(
        "._-"
    )
    return f"{PREFIX}{name or 'model'}:{version}"


def version_of(root: Path, env: str, model: str) -> int:
    """The version an environment's image is of, when not told: the candidate of its rollout
    while one is on (the image the cluster needs next), else the one its alias ``MODEL@ENV``
    points at (its stable version)."""
    from conveyor.registry.stored import deployment, resolve
    from conveyor.tracking.db import exists

    if exists(root):
        record = deployment(root, env)
        if record is not None and record.active and record.candidate is not None:
            return record.candidate
        try:
            return resolve(root, f"models:/{model}@{env}").version
        except ConveyorError:
            pass
    raise DeployError(
        f"{model}@{env} points at no version yet: environment {env!r} serves nothing",
        hint=f"register a version and `conveyor deploy {model}/N --env {env}` first, "
        "or name the version",
    )
