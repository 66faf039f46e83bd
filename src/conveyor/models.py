"""``conveyor.models``: save a model as a package and load it back.

>>> from conveyor import models  # doctest: +SKIP
>>> models.save(model, "models/classifier", example=X[:5])
>>> models.load("models/classifier").predict(X)
"""

from __future__ import annotations

from conveyor.registry.package import Model, load, save

__all__ = ["Model", "load", "save"]
