"""``conveyor.models``: save a model as a package and load it back.

>>> from conveyor import models  # doctest: +SKIP
>>> models.save(model, "models/classifier", example=X[:5])
>>> models.load("models/classifier").predict(X)
>>> models.load("models:/classifier@production").predict(X)
"""

from __future__ import annotations

from conveyor.registry.package import Model, save
from conveyor.registry.stored import load

__all__ = ["Model", "load", "save"]
