"""Classical image measurements of every galaxy, and the photometric baseline built on them.

What an astronomer tries before a CNN: aperture photometry of the cutout. For each galaxy, centred on
the cutout's centre (the convention of survey cutouts), the measurements are

- the flux inside circular apertures of radius 2, 4, 8 and 16 px in every band (asinh magnitudes,
  Lupton, Gunn & Szalay 1999, so that faint or negative fluxes stay finite);
- colours: the difference of those magnitudes between neighbouring bands, per aperture;
- the half-light radius r50 and the concentration C = 5 log10(r80 / r20) (Kent 1985; Conselice 2003)
  from the curve of growth of the summed bands;
- the axis ratio b/a and the ellipticity from the light-weighted second moments inside 16 px;
- the mean surface brightness inside r50.

The baseline regresses a target on these with a ridge regression (penalty chosen by internal
cross-validation on the training galaxies) and a gradient-boosted tree ensemble
(``HistGradientBoostingRegressor``, early-stopped on the validation galaxies): the same split as the
network it stands beside. Aperture sums are exact pixel sums on the fixed grid; photutils' sub-pixel
apertures would change them by far less than the galaxies' own scatter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

APERTURE_RADII_PX = (2, 4, 8, 16)
ASINH_SOFTENING = 1e-3
"""Softening b of the asinh magnitudes, in the images' flux units per pixel summed (a few sky-noise
levels of a 64 px cutout in nanomaggies; for display RGB in [0, 1] it is far below any galaxy)."""


def _radii(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return np.hypot(yy - c, xx - c)


def _asinh_mag(flux: np.ndarray) -> np.ndarray:
    """Asinh magnitudes (Lupton et al. 1999) of fluxes, zero point 0: -2.5/ln10 (asinh(f/2b) + ln b)."""
    b = ASINH_SOFTENING
    return -2.5 / np.log(10) * (np.arcsinh(flux / (2 * b)) + np.log(b))


def _radius_enclosing(growth: np.ndarray, radii: np.ndarray, fraction: float) -> np.ndarray:
    """Per galaxy, the radius where the curve of growth (n, R) first reaches ``fraction`` of its last value."""
    total = growth[:, -1:]
    target = fraction * np.where(total > 0, total, np.nan)
    above = growth >= target
    first = np.where(above.any(1), above.argmax(1), len(radii) - 1)
    lo = np.maximum(first - 1, 0)
    g0, g1 = growth[np.arange(len(growth)), lo], growth[np.arange(len(growth)), first]
    r0, r1 = radii[lo], radii[first]
    t = np.where(g1 > g0, (target[:, 0] - g0) / np.where(g1 > g0, g1 - g0, 1), 0.0)
    return np.clip(r0 + np.clip(t, 0, 1) * (r1 - r0), radii[0], radii[-1])


def photometric_features(images: np.ndarray, bands: tuple[str, ...], chunk: int = 2048,
                         progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """(N, C, H, W) images -> one row of classical measurements per galaxy (see the module docstring).

    Parameters
    ----------
    images : fluxes per pixel (or display RGB in [0, 1]); read ``chunk`` galaxies at a time, so a
        memory-mapped survey of any size streams through.
    bands : the C band names, used in the column names.

    Returns
    -------
    DataFrame with ``mag_<band>_r<R>`` [asinh mag], ``col_<b1>_<b2>_r<R>`` [mag], ``r50_px``,
    ``concentration``, ``axis_ratio``, ``ellipticity``, ``mu50`` [asinh mag per px^2].
    """
    n, c, h, w = images.shape
    r = _radii(h)
    curve_radii = np.arange(1, h // 2 + 1, dtype=np.float64)
    rings = r[None] <= curve_radii[:, None, None]  # (R, H, W) masks of the curve of growth
    apertures = np.stack([r <= rad for rad in APERTURE_RADII_PX if rad < h / 2])
    yy, xx = np.mgrid[:h, :w] - (h - 1) / 2
    rows = []
    for start in range(0, n, chunk):
        x = np.asarray(images[start : start + chunk], np.float64)  # (b, C, H, W)
        flux = np.einsum("bchw,ahw->bca", x, apertures)  # (b, C, A)
        mags = _asinh_mag(flux)
        total = x.sum(1)  # (b, H, W) all bands
        growth = np.einsum("bhw,rhw->br", total, rings)
        r20, r50, r80 = (_radius_enclosing(growth, curve_radii, f) for f in (0.2, 0.5, 0.8))
        inner = np.clip(total * (r <= 16), 0, None)
        wsum = inner.sum((1, 2)) + 1e-12
        mx, my = (inner * xx).sum((1, 2)) / wsum, (inner * yy).sum((1, 2)) / wsum
        qxx = (inner * (xx - mx[:, None, None]) ** 2).sum((1, 2)) / wsum
        qyy = (inner * (yy - my[:, None, None]) ** 2).sum((1, 2)) / wsum
        qxy = (inner * (xx - mx[:, None, None]) * (yy - my[:, None, None])).sum((1, 2)) / wsum
        root = np.sqrt(((qxx - qyy) / 2) ** 2 + qxy ** 2)
        major, minor = (qxx + qyy) / 2 + root, np.clip((qxx + qyy) / 2 - root, 0, None)
        axis_ratio = np.sqrt(minor / np.where(major > 0, major, 1))
        inside = np.array([np.interp(r50[i], curve_radii, growth[i]) for i in range(len(x))])
        block = {}
        for j, band in enumerate(bands):
            for a, rad in enumerate(APERTURE_RADII_PX[: apertures.shape[0]]):
                block[f"mag_{band}_r{rad}"] = mags[:, j, a]
        for j in range(c - 1):
            for a, rad in enumerate(APERTURE_RADII_PX[: apertures.shape[0]]):
                block[f"col_{bands[j]}_{bands[j + 1]}_r{rad}"] = mags[:, j, a] - mags[:, j + 1, a]
        block.update(r50_px=r50, concentration=5 * np.log10(r80 / np.maximum(r20, 1e-3)), axis_ratio=axis_ratio,
                     ellipticity=1 - axis_ratio, mu50=_asinh_mag(inside / c / (np.pi * r50 ** 2)))
        rows.append(pd.DataFrame(block))
        if progress:
            progress(min(start + chunk, n), n, f"measured {min(start + chunk, n):,}/{n:,} galaxies")
    return pd.concat(rows, ignore_index=True)


@dataclass
class BaselineFit:
    """Held-out predictions of the two classical regressors, per target column."""

    ridge: np.ndarray
    """(N, T) ridge predictions of every galaxy."""
    boosted: np.ndarray
    """(N, T) gradient-boosted predictions of every galaxy."""


def fit_photometric_baseline(features: pd.DataFrame, y: np.ndarray, train: np.ndarray, val: np.ndarray,
                             seed: int = 0) -> BaselineFit:
    """Fit ridge and gradient-boosted regressions of ``y`` (N, T) on ``features`` using the rows
    ``train`` (and ``val`` for the boosted model's early stopping); predictions for every galaxy."""
    x = np.nan_to_num(features.to_numpy(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ridge = np.empty(y.shape, np.float64)
    boosted = np.empty(y.shape, np.float64)
    for t in range(y.shape[1]):
        lin = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x[train], y[train, t])
        ridge[:, t] = lin.predict(x)
        gbr = HistGradientBoostingRegressor(learning_rate=0.05, max_iter=600, max_leaf_nodes=15,
                                            min_samples_leaf=max(5, min(20, len(train) // 20)), l2_regularization=1.0,
                                            early_stopping=len(val) >= 10, n_iter_no_change=30, random_state=seed)
        if len(val) >= 10:
            gbr.fit(x[train], y[train, t], X_val=x[val], y_val=y[val, t])
        else:
            gbr.fit(x[train], y[train, t])
        boosted[:, t] = gbr.predict(x)
    return BaselineFit(ridge, boosted)
