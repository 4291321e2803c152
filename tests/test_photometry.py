"""The classical measurements behind the photometric baseline, on galaxies of known shape."""

from __future__ import annotations

import numpy as np
import pytest

from galaxyml.photometry import fit_photometric_baseline, photometric_features

SIZE = 64


def gaussian(sigma_x: float, sigma_y: float, flux: float = 1.0, bands: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    img = np.exp(-0.5 * ((xx / sigma_x) ** 2 + (yy / sigma_y) ** 2))
    img *= flux / img.sum()
    return np.repeat(img[None], bands, 0).astype(np.float32)


def sersic(n: float, r_e: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    b = 2 * n - 1 / 3 + 0.009876 / n  # Prugniel & Simien (1997)
    img = np.exp(-b * ((np.hypot(xx, yy) / r_e) ** (1 / n) - 1))
    return np.repeat((img / img.sum())[None], 3, 0).astype(np.float32)


def test_half_light_radius_and_axis_ratio_of_gaussians():
    feats = photometric_features(np.stack([gaussian(3, 3), gaussian(6, 3)]), ("g", "r", "z"))
    assert feats.loc[0, "r50_px"] == pytest.approx(3 * np.sqrt(2 * np.log(2)), rel=0.08)
    assert feats.loc[0, "axis_ratio"] == pytest.approx(1.0, abs=0.02)
    assert feats.loc[1, "axis_ratio"] == pytest.approx(0.5, abs=0.05)


def test_a_de_vaucouleurs_profile_is_more_concentrated_than_an_exponential_disk():
    feats = photometric_features(np.stack([sersic(1, 5), sersic(4, 5)]), ("g", "r", "z"))
    c_disk, c_bulge = feats["concentration"]
    assert 2.4 < c_disk < 3.2 and c_bulge > c_disk + 0.8  # C(n=1) ~ 2.7, C(n=4) ~ 5 before truncation


def test_magnitudes_and_colours_follow_the_fluxes():
    red = np.concatenate([gaussian(3, 3, 1.0, 1), gaussian(3, 3, 2.0, 1), gaussian(3, 3, 4.0, 1)])
    feats = photometric_features(np.stack([red, 2 * red]), ("g", "r", "z"))
    assert feats.loc[0, "col_g_r_r16"] == pytest.approx(2.5 * np.log10(2), abs=0.02)  # r is twice as bright
    assert feats.loc[0, "mag_r_r16"] - feats.loc[1, "mag_r_r16"] == pytest.approx(2.5 * np.log10(2), abs=0.02)
    assert np.isfinite(feats.to_numpy()).all()


def test_the_baseline_learns_a_target_that_the_light_carries():
    rng = np.random.default_rng(0)
    flux = rng.uniform(0.5, 5.0, 300)
    images = np.stack([gaussian(3, 3, f) for f in flux])
    y = (np.log10(flux) + rng.normal(0, 0.02, 300))[:, None]
    feats = photometric_features(images, ("g", "r", "z"))
    fit = fit_photometric_baseline(feats, y, np.arange(200), np.arange(200, 240))
    test = np.arange(240, 300)
    median = np.sqrt(np.mean((np.median(y[:200]) - y[test, 0]) ** 2))
    for pred in (fit.ridge, fit.boosted):
        assert np.sqrt(np.mean((pred[test, 0] - y[test, 0]) ** 2)) < 0.3 * median
