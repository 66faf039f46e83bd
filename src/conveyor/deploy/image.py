"""The container image a model version is packaged as: one name, shared by ``conveyor
package`` (which writes its build context) and the Kubernetes manifests (which run it).

    >>> image_reference("Churn_Model", 12)
    'conveyor-churn_model:12'
    >>> image_reference("fraud..v2", 3)
    'conveyor-fraud-v2:3'
"""

from __future__ import annotations

import re

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
