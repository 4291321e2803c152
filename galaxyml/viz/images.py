"""Thumbnail galleries as single images (for PNG/PDF export)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def gallery_image(images: np.ndarray, captions: Sequence[str] = (), columns: int = 6, scale: int = 2,
                  pad: int = 4, caption_px: int = 14) -> np.ndarray:
    """Tile (n, H, W, 3) uint8 thumbnails into one (rows, cols) grid with a caption under each.

    Returns
    -------
    (height, width, 3) uint8 image.
    """
    n, h, w, _ = images.shape
    if n == 0:
        return np.zeros((h, w, 3), np.uint8)
    cols = min(columns, n)
    rows = -(-n // cols)
    cell_w, cell_h = w * scale + pad, h * scale + pad + (caption_px if captions else 0)
    canvas = Image.new("RGB", (cols * cell_w + pad, rows * cell_h + pad), (14, 17, 23))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * cell_w, pad + r * cell_h
        canvas.paste(Image.fromarray(images[i]).resize((w * scale, h * scale), Image.NEAREST), (x0, y0))
        if captions:
            draw.text((x0 + 2, y0 + h * scale + 1), str(captions[i])[:24], fill=(220, 220, 220))
    return np.asarray(canvas)
