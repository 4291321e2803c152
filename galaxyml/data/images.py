"""Cutout images of any mode into the survey's layout: (3, size, size) float32 display RGB in [0, 1].

8-bit images (RGB, grey, palette, with or without alpha) keep their values (/ 255; alpha is dropped).
Images of more than 8 bits per sample (16- and 32-bit integer, floating point) have no display range
of their own, so each is scaled by its own range: its minimum maps to 0 and its maximum to 1 (a
constant image is black; NaN pixels are 0). Brightness is then comparable within such an image but not
between images; convert to 8-bit with one stretch for the whole survey to keep it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def to_display_rgb(image: Image.Image, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1] from a PIL image of any mode, resized bilinearly."""
    if image.mode in HIGH_DEPTH_MODES:
        x = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(x)
        lo, hi = (x[finite].min(), x[finite].max()) if finite.any() else (0.0, 0.0)
        scaled = np.where(finite, (x - lo) / (hi - lo) if hi > lo else 0.0, 0.0).astype(np.float32)
        grey = np.asarray(Image.fromarray(scaled, mode="F").resize((size, size), Image.BILINEAR), np.float32)
        return np.repeat(np.clip(grey, 0.0, 1.0)[None], 3, axis=0)
    rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return (np.asarray(rgb, np.float32) / 255.0).transpose(2, 0, 1)
