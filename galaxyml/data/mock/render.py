"""Vectorised rendering of bulge + disk galaxies.

Each component is a Sersic (1963) profile, I(r) = I_e exp(-b_n [(r/r_e)^(1/n) - 1]), with b_n
defined by Gamma(2n) = 2 gamma(2n, b_n) (so r_e encloses half the light), normalised to its total
flux F = 2 pi n q r_e^2 I_e e^(b_n) b_n^(-2n) Gamma(2n) (Graham & Driver 2005, eq. 4). Profiles are
integrated over pixels by sub-sampling, convolved with a Gaussian PSF in Fourier space on a padded
stamp, and sky noise is drawn per galaxy from a generator seeded by (seed, galaxy index), so a
galaxy's pixels do not depend on the batch it was rendered in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gamma, gammaincinv

from galaxyml.data.mock import relations as rel
from galaxyml.data.mock.config import MockConfig

_STREAM_NOISE = 2
PAD_PX = 16
"""Padding around the stamp while convolving, so that the PSF's wrap-around stays outside."""


def sersic_b(n: float) -> float:
    """b_n such that the effective radius encloses half of the total light."""
    return float(gammaincinv(2.0 * n, 0.5))


def sersic_ie(flux: np.ndarray, r_e: np.ndarray, n: float, q: np.ndarray) -> np.ndarray:
    """Surface brightness at r_e of a Sersic profile of total ``flux`` (r_e in the unit of the grid)."""
    b = sersic_b(n)
    return flux / (2.0 * np.pi * n * q * r_e**2 * np.exp(b) * b ** (-2.0 * n) * gamma(2.0 * n))


def sersic_images(
    flux: np.ndarray, r_e_px: np.ndarray, n: float, q: np.ndarray, pa_rad: np.ndarray,
    size: int, oversample: int,
) -> np.ndarray:
    """Pixel-integrated Sersic profiles centred on a ``size`` x ``size`` stamp.

    Parameters
    ----------
    flux : (B,) total flux [any unit]; the pixels sum to it when the stamp holds all the light.
    r_e_px : (B,) effective (half-light) semi-major axis [pixel].
    n : Sersic index.
    q : (B,) axis ratio b/a.
    pa_rad : (B,) position angle of the major axis [rad].

    Returns
    -------
    (B, size, size) float64 pixel fluxes (evaluated in float32, summed in float64).
    """
    s = oversample
    f32 = np.float32
    # Sub-pixel centres, in pixels from the stamp centre.
    u = ((np.arange(size * s) + 0.5) / s - size / 2.0).astype(f32)
    x, y = u[None, None, :], u[None, :, None]
    cos = np.cos(pa_rad).astype(f32)[:, None, None]
    sin = np.sin(pa_rad).astype(f32)[:, None, None]
    inv_re = (1.0 / r_e_px).astype(f32)[:, None, None]
    xp = (x * cos + y * sin) * inv_re
    yp = (y * cos - x * sin) * (inv_re / q.astype(f32)[:, None, None])
    r = np.sqrt(xp * xp + yp * yp)  # (B, S*s, S*s), in units of r_e
    b = f32(sersic_b(n))
    # Specialised roots: r**(1/n) through pow is several times slower than sqrt.
    if n == 1.0:
        root = r
    elif n == 4.0:
        root = np.sqrt(np.sqrt(r))
    else:
        root = r ** f32(1.0 / n)
    profile = np.exp(-b * (root - f32(1.0)))
    ie = (sersic_ie(flux, r_e_px, n, q) / (s * s)).astype(f32)[:, None, None]
    img = (ie * profile).reshape(len(flux), size, s, size, s)
    return img.sum(axis=(2, 4), dtype=np.float64)


def gaussian_convolve(images: np.ndarray, sigma_px: float) -> np.ndarray:
    """Convolve (B, S, S) images with a unit-flux Gaussian of ``sigma_px`` (periodic, via rfft2)."""
    size = images.shape[-1]
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    transfer = np.exp(-2.0 * np.pi**2 * sigma_px**2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(images) * transfer, s=(size, size))


def render_noiseless(cfg: MockConfig, catalog: pd.DataFrame) -> np.ndarray:
    """Noiseless, PSF-convolved (B, 3, H, W) images in nanomaggies for the rows of ``catalog``."""
    size = cfg.image_size_px
    padded = size + 2 * PAD_PX
    pa = np.radians(catalog["pa_deg"].to_numpy())
    bt = catalog["bulge_to_total"].to_numpy()
    flux_r = catalog["flux_r"].to_numpy()
    px = cfg.pixel_scale_arcsec
    disk = sersic_images(
        (1 - bt) * flux_r, catalog["r_e_disk_arcsec"].to_numpy() / px, 1.0,
        catalog["q_disk"].to_numpy(), pa, padded, cfg.oversample,
    )
    bulge = sersic_images(
        bt * flux_r, catalog["r_e_bulge_arcsec"].to_numpy() / px, 4.0,
        catalog["q_bulge"].to_numpy(), pa, padded, cfg.oversample,
    )
    disk = gaussian_convolve(disk, cfg.psf_sigma_px)
    bulge = gaussian_convolve(bulge, cfg.psf_sigma_px)
    crop = slice(PAD_PX, PAD_PX + size)
    disk, bulge = disk[:, crop, crop], bulge[:, crop, crop]

    # Band fluxes of each component relative to its r-band flux (colours from the catalog).
    d_gr, b_gr = catalog["disk_g_r"].to_numpy(), catalog["bulge_g_r"].to_numpy()
    ratios = {
        "g": (10 ** (-0.4 * d_gr), 10 ** (-0.4 * b_gr)),
        "r": (np.ones_like(d_gr), np.ones_like(b_gr)),
        "z": (10 ** (0.4 * rel.r_z_from_g_r(d_gr)), 10 ** (0.4 * rel.r_z_from_g_r(b_gr))),
    }
    out = np.empty((len(catalog), len(cfg.bands), size, size), dtype=np.float32)
    for c, band in enumerate(cfg.bands):
        d_ratio, b_ratio = ratios[band]
        out[:, c] = d_ratio[:, None, None] * disk + b_ratio[:, None, None] * bulge
    return out


def add_sky_noise(cfg: MockConfig, images: np.ndarray, first_index: int) -> np.ndarray:
    """Add Gaussian sky noise in place, from one generator per galaxy (seed, stream, index)."""
    sigma = np.asarray(cfg.sky_sigma_nmgy, dtype=np.float32)[:, None, None]
    for j in range(len(images)):
        rng = np.random.default_rng([cfg.seed, _STREAM_NOISE, first_index + j])
        images[j] += sigma * rng.standard_normal(images.shape[1:], dtype=np.float32)
    return images


def render_images(cfg: MockConfig, catalog: pd.DataFrame, first_index: int, batch_size: int = 64) -> np.ndarray:
    """Render the rows of ``catalog`` (whose first row is galaxy ``first_index``) with noise.

    Returns
    -------
    (N, 3, H, W) float32 fluxes [nanomaggies per pixel].
    """
    out = np.empty((len(catalog), len(cfg.bands), cfg.image_size_px, cfg.image_size_px), dtype=np.float32)
    for start in range(0, len(catalog), batch_size):
        stop = min(start + batch_size, len(catalog))
        out[start:stop] = render_noiseless(cfg, catalog.iloc[start:stop])
    return add_sky_noise(cfg, out, first_index)
