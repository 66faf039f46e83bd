"""The container image a model version is packaged as: one name, shared by ``conveyor
package`` (which builds it) and the Kubernetes manifests (which run it).

    >>> image_reference("Classifier", 3)
    'conveyor-classifier:3'
    >>> image_reference("fraud.v2_model", 12)
    'conveyor-fraud-v2-model:12'
"""

from __future__ import annotations

import re

PREFIX = "conveyor-"
# An image repository's name holds lowercase letters and digits with single separators between
# them; a model name (uris.MODEL_NAME) may hold capitals and runs of dots, dashes, underscores.
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def image_reference(model: str, version: int | str) -> str:
    """``conveyor-<model, lowercased>:<version>``, every run of characters other than letters
    and digits as one dash. ``version`` is the registry's number (``"local"`` for a package
    folder)."""
    name = _NOT_ALLOWED.sub("-", model.lower()).strip("-")
    return f"{PREFIX}{name or 'model'}:{version}"
