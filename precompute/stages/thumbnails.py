"""Stage ``thumbnails``: uint8 RGB display thumbnails of every galaxy, as an npy memmap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galaxyml.data.survey import Survey, fluxes_to_rgb
from precompute.stage import StageContext, register

THUMBNAILS_FILE = "thumbnails.npy"


@dataclass(frozen=True)
class ThumbnailsConfig:
    """Display stretch of the thumbnails (Lupton et al. 2004 asinh)."""

    stretch: float = 0.1
    """Linear stretch of the asinh mapping [flux units]."""
    q: float = 8.0
    """Asinh softening parameter Q."""
    chunk: int = 1024
    """Galaxies converted per batch."""

    def __post_init__(self) -> None:
        if self.stretch <= 0 or self.q <= 0:
            raise ValueError("thumbnails.stretch and thumbnails.q must be positive")
        if self.chunk <= 0:
            raise ValueError("thumbnails.chunk must be positive")


@register("thumbnails", ThumbnailsConfig, inputs=("survey",))
def build_thumbnails(ctx: StageContext) -> dict:
    """Stretch every galaxy's g, r, z fluxes to an RGB thumbnail."""
    survey = Survey.load(ctx.inputs["survey"])
    n, _, h, w = survey.images.shape
    out = np.lib.format.open_memmap(ctx.out / THUMBNAILS_FILE, mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
    for start in range(0, n, ctx.cfg.chunk):
        stop = min(start + ctx.cfg.chunk, n)
        out[start:stop] = fluxes_to_rgb(np.asarray(survey.images[start:stop]), survey.bands, ctx.cfg.stretch, ctx.cfg.q)
        ctx.progress(stop, n, f"{stop:,}/{n:,} thumbnails")
    out.flush()
    return {"n": n, "size_px": h}
