"""Samples shared by the statistics tests."""

from __future__ import annotations

import numpy as np


def labelled(n: int, seed: int = 0, skill: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(size=n))))
    return y, score
