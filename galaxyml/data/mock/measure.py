"""Measurements on rendered images shared by the oracle tests and benchmarks."""

from __future__ import annotations

import numpy as np


def half_light_radius_px(image: np.ndarray) -> float:
    """Radius of the circle about the stamp centre that encloses half of the image's sum [pixel].

    Pixels are split into 8x8 sub-pixels of equal flux so the curve of growth is smooth.
    """
    s = 8
    h, w = image.shape
    fine = np.repeat(np.repeat(image, s, 0), s, 1) / s**2
    yy, xx = np.indices(fine.shape)
    r = np.hypot((xx + 0.5) / s - w / 2.0, (yy + 0.5) / s - h / 2.0).ravel()
    order = np.argsort(r)
    growth = np.cumsum(fine.ravel()[order])
    return float(np.interp(0.5 * growth[-1], growth, r[order]))
