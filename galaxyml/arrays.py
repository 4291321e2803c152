"""Streaming reductions over (memory-mapped) arrays too large to load at once."""

from __future__ import annotations

import numpy as np


def streamed_mean(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Column means of an (N, D) array read ``chunk`` rows at a time, accumulated in float64."""
    total = np.zeros(x.shape[1], np.float64)
    for start in range(0, len(x), chunk):
        total += np.asarray(x[start : start + chunk], np.float64).sum(0)
    return total / max(len(x), 1)
