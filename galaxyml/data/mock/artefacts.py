"""Image artefacts of the mock survey (added after the PSF, before sky noise): satellite trails,
bright stars with diffraction spikes, and bad CCD columns. Each cutout's artefact is drawn from
its own ``artefact_seed``, so it does not depend on the batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galaxyml.data.mock.config import MockConfig


def _trail(img: np.ndarray, rng: np.random.Generator, sigma_px: float) -> None:
    c, h, w = img.shape
    yy, xx = np.indices((h, w)) + 0.5
    angle = rng.uniform(0, np.pi)
    x0, y0 = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    dist = (xx - x0) * np.sin(angle) - (yy - y0) * np.cos(angle)
    peak = rng.uniform(0.3, 1.2)  # [nmgy / pixel]
    img += (peak * np.exp(-0.5 * (dist / sigma_px) ** 2))[None] * np.array([0.9, 1.0, 1.1])[:, None, None]


def _bright_star(img: np.ndarray, rng: np.random.Generator, sigma_px: float) -> None:
    c, h, w = img.shape
    yy, xx = np.indices((h, w)) + 0.5
    edge = rng.integers(4)
    x0 = [rng.uniform(0, w), rng.uniform(0, w), rng.uniform(0, 0.15 * w), rng.uniform(0.85 * w, w)][edge]
    y0 = [rng.uniform(0, 0.15 * h), rng.uniform(0.85 * h, h), rng.uniform(0, h), rng.uniform(0, h)][edge]
    flux = 10 ** rng.uniform(2.7, 3.5)  # 13.8 < mag < 15.8
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    core = np.exp(-0.5 * r2 / sigma_px**2) / (2 * np.pi * sigma_px**2)
    halo = 0.05 / (1 + r2 / (3 * sigma_px) ** 2) ** 1.5 / (2 * np.pi * (3 * sigma_px) ** 2)
    spikes = 0.002 * (np.exp(-0.5 * ((xx - x0) / 0.7) ** 2) + np.exp(-0.5 * ((yy - y0) / 0.7) ** 2)) / np.sqrt(1 + r2 / 50)
    colour = np.array([0.8, 1.0, 1.1])[:, None, None]  # a G/K star
    img += flux * (core + halo + spikes)[None] * colour


def _bad_column(img: np.ndarray, rng: np.random.Generator) -> None:
    c, h, w = img.shape
    band, col = rng.integers(c), rng.integers(w)
    img[band, :, col] += rng.uniform(0.5, 2.0)


def add_artefacts(cfg: MockConfig, catalog: pd.DataFrame, images: np.ndarray) -> np.ndarray:
    """Add each row's artefact (``artefact_type`` 1 trail, 2 star, 3 column) to (B, 3, H, W) in place."""
    kinds = catalog["artefact_type"].to_numpy()
    seeds = catalog["artefact_seed"].to_numpy()
    for b in np.nonzero(kinds > 0)[0]:
        rng = np.random.default_rng(int(seeds[b]))
        if kinds[b] == 1:
            _trail(images[b], rng, cfg.psf_sigma_px)
        elif kinds[b] == 2:
            _bright_star(images[b], rng, cfg.psf_sigma_px)
        else:
            _bad_column(images[b], rng)
    return images
