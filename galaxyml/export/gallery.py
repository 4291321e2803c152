"""Galleries as one PNG or PDF: a grid of thumbnails with the galaxy id and value under each and a scale
bar in arcseconds, composed with Pillow."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from galaxyml.export.provenance import Provenance, stamp
from galaxyml.export.tables import EmptyExport

GALLERY_FORMATS = ("png", "pdf")
BAR_CHOICES_ARCSEC = (1, 2, 5, 10, 20, 30, 60, 120, 300)


def scale_bar_arcsec(arcsec_per_px: float, width_px: int) -> float:
    """The round length [arcsec] of a scale bar about a third of a thumbnail wide."""
    target = arcsec_per_px * width_px / 3
    return float(min(BAR_CHOICES_ARCSEC, key=lambda b: abs(np.log(b / target))))


def gallery_canvas(images: np.ndarray, ids: Sequence[str], values: Sequence[float] | None = None,
                   value_label: str = "", title: str = "", arcsec_per_px: float | None = None, columns: int = 6,
                   cell_px: int = 160, publication: bool = False) -> Image.Image:
    """Thumbnails (n, H, W, 3 uint8) in a grid; under each its id and ``value_label = value``; a scale bar
    of a round number of arcseconds on the first thumbnail when ``arcsec_per_px`` (of the thumbnails) is
    known; ``title`` above. White background in the publication style, dark otherwise."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise EmptyExport("there is nothing to export: the gallery has no galaxies")
    n, h, w, _ = images.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    pad, text_px = 8, max(12, cell_px // 11)
    font = ImageFont.load_default(size=text_px)
    title_font = ImageFont.load_default(size=int(text_px * 1.3))
    caption_h = 2 * text_px + 6
    title_h = int(text_px * 1.3) + 2 * pad if title else 0
    bg, fg = ((255, 255, 255), (0, 0, 0)) if publication else ((14, 17, 23), (225, 225, 225))
    canvas = Image.new("RGB", (cols * (cell_px + pad) + pad, title_h + rows * (cell_px + caption_h + pad) + pad), bg)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill=fg, font=title_font)
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * (cell_px + pad), title_h + pad + r * (cell_px + caption_h + pad)
        canvas.paste(Image.fromarray(images[i]).resize((cell_px, cell_px), Image.LANCZOS), (x0, y0))
        label = str(ids[i]) if i < len(ids) else ""
        draw.text((x0, y0 + cell_px + 2), label[:26], fill=fg, font=font)
        if values is not None:
            value = values[i]
            text = str(value) if isinstance(value, str) else f"{value_label} = {value:.3g}".strip(" =")
            draw.text((x0, y0 + cell_px + 3 + text_px), text[:30], fill=fg, font=font)
        if i == 0 and arcsec_per_px:
            bar = scale_bar_arcsec(arcsec_per_px, w)
            length = int(round(bar / arcsec_per_px * cell_px / w))
            bx, by = x0 + 6, y0 + cell_px - 10
            draw.line([(bx, by), (bx + length, by)], fill=(255, 255, 255), width=3)
            draw.text((bx, by - text_px - 3), f'{bar:g}"', fill=(255, 255, 255), font=font)
    return canvas


def gallery_bytes(images: np.ndarray, ids: Sequence[str], fmt: str, prov: Provenance,
                  values: Sequence[float | str] | None = None, value_label: str = "", arcsec_per_px: float | None = None,
                  columns: int = 6, publication: bool = False) -> bytes:
    """A gallery as a PNG or PDF file with its provenance written in."""
    fmt = fmt.lower()
    if fmt not in GALLERY_FORMATS:
        raise ValueError(f"unknown gallery format {fmt!r}; choose one of {', '.join(GALLERY_FORMATS)}")
    canvas = gallery_canvas(images, ids, values, value_label, prov.title, arcsec_per_px, columns,
                            publication=publication)
    buf = io.BytesIO()
    if fmt == "png":
        canvas.save(buf, format="PNG", dpi=(300, 300))
    else:
        canvas.save(buf, format="PDF", resolution=300.0)
    return stamp(buf.getvalue(), fmt, prov)
