"""Vectorised rendering of mock galaxies: bulge + disk with bars, spiral arms, rings, AGN, mergers,
dust lanes and artefacts.

Smooth components are Sersic (1963) profiles, I(r) = I_e exp(-b_n [(r/r_e)^(1/n) - 1]), with b_n
defined by Gamma(2n) = 2 gamma(2n, b_n) (so r_e encloses half the light), normalised to their total
flux F = 2 pi n q r_e^2 I_e e^(b_n) b_n^(-2n) Gamma(2n) (Graham & Driver 2005, eq. 4). Profiles are
integrated over pixels by sub-sampling on a padded stamp; each band is convolved with a Gaussian PSF
in Fourier space; sky noise is drawn per galaxy from a generator seeded by (seed, galaxy index), so a
galaxy's pixels do not depend on the batch it was rendered in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.special import gamma, gammainc, gammaincinv

from galaxyml import relations as rel
from galaxyml.data.mock.artefacts import add_artefacts
from galaxyml.data.mock.config import MockConfig

_STREAM_NOISE = 2
PAD_PX = 8
"""Padding around the stamp while convolving (4 PSF sigmas; wrapped light travels 16 px to reach the
cutout), and 64 + 16 = 80 = 2^4 x 5 keeps the FFTs fast."""
CORE_PX = 3
"""Half-side of the central block of pixels re-integrated at ``CORE_OVERSAMPLE`` (Sersic cusps)."""
CORE_OVERSAMPLE = 12
KNOT_FLUX_FRAC = 0.12
"""Share of a spiral disk's light in blue star-forming knots along the arms."""
N_KNOTS = 10
DUST_TAU = (1.4, 1.0, 0.55)
"""Central optical depth of an edge-on dust lane in g, r, z (roughly a Calzetti-like ratio)."""
f32 = np.float32


def sersic_b(n: float) -> float:
    """b_n such that the effective radius encloses half of the total light."""
    return float(gammaincinv(2.0 * n, 0.5))


def sersic_ie(flux: np.ndarray, r_e: np.ndarray, n: float, q: np.ndarray) -> np.ndarray:
    """Surface brightness at r_e of a Sersic profile of total ``flux`` (r_e in the unit of the grid)."""
    b = sersic_b(n)
    return flux / (2.0 * np.pi * n * q * r_e**2 * np.exp(b) * b ** (-2.0 * n) * gamma(2.0 * n))


def subpixel_grid(size: int, oversample: int) -> np.ndarray:
    """Sub-pixel centres of a ``size`` stamp, in pixels from its centre."""
    return ((np.arange(size * oversample) + 0.5) / oversample - size / 2.0).astype(f32)


def disk_plane(u: np.ndarray, pa_rad: np.ndarray, q: np.ndarray, dx: np.ndarray | float = 0.0,
               dy: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in the plane of a thin disk seen with axis ratio q: (B, G, G) each [pixel]."""
    x = u[None, None, :] - np.asarray(dx, f32).reshape(-1, 1, 1)
    y = u[None, :, None] - np.asarray(dy, f32).reshape(-1, 1, 1)
    cos = np.cos(pa_rad).astype(f32)[:, None, None]
    sin = np.sin(pa_rad).astype(f32)[:, None, None]
    return x * cos + y * sin, (y * cos - x * sin) / q.astype(f32)[:, None, None]


def sersic_shape(r: np.ndarray, n: float) -> np.ndarray:
    """exp(-b_n [(r/r_e)^(1/n) - 1]) for r already in units of r_e."""
    # Specialised roots: r**(1/n) through pow is several times slower than sqrt.
    root = r if n == 1.0 else np.sqrt(np.sqrt(r)) if n == 4.0 else r ** f32(1.0 / n)
    return np.exp(f32(-sersic_b(n)) * (root - f32(1.0)))


def bin_pixels(img: np.ndarray, oversample: int) -> np.ndarray:
    """Sum sub-pixels: (B, G*s, G*s) -> (B, G, G) float32 (summed in float64)."""
    if oversample == 1:
        return img.astype(f32, copy=False)
    b, g = img.shape[0], img.shape[-1] // oversample
    return img.reshape(b, g, oversample, g, oversample).sum(axis=(2, 4), dtype=np.float64).astype(f32)


def sersic_images(
    flux: np.ndarray, r_e_px: np.ndarray, n: float, q: np.ndarray, pa_rad: np.ndarray,
    size: int, oversample: int, dx: np.ndarray | float = 0.0, dy: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Pixel-integrated Sersic profiles on a ``size`` x ``size`` stamp.

    Parameters
    ----------
    flux : (B,) total flux; the pixels sum to it when the stamp holds all the light.
    r_e_px : (B,) effective (half-light) semi-major axis [pixel].
    n : Sersic index.
    q : (B,) axis ratio b/a.
    pa_rad : (B,) position angle of the major axis [rad].
    dx, dy : centre offsets from the stamp centre [pixel].

    Returns
    -------
    (B, size, size) float32 pixel fluxes.
    """
    def integrate(u: np.ndarray, s: int) -> np.ndarray:
        xd, yd = disk_plane(u, pa_rad, q, dx, dy)
        r = np.sqrt(xd * xd + yd * yd) * (1.0 / r_e_px).astype(f32)[:, None, None]  # in units of r_e
        ie = (sersic_ie(flux, r_e_px, n, q) / s**2).astype(f32)[:, None, None]
        return bin_pixels(ie * sersic_shape(r, n), s)

    img = integrate(subpixel_grid(size, oversample), oversample)
    if np.isscalar(dx) and np.isscalar(dy) and dx == 0 and dy == 0:
        # The cusp of a centred profile: integrate the central pixels much more finely.
        c = size // 2
        core = subpixel_grid(2 * CORE_PX, CORE_OVERSAMPLE) + (c - size / 2.0)
        img[:, c - CORE_PX : c + CORE_PX, c - CORE_PX : c + CORE_PX] = integrate(core, CORE_OVERSAMPLE)
        # Compact profiles hold all their light in the stamp, so what sampling misses sits in the
        # innermost sub-pixels: put it back on the four pixels that meet at the centre.
        compact = r_e_px < CORE_PX
        if compact.any():
            inside = gammainc(2.0 * n, sersic_b(n) * (size / 2.0 / r_e_px[compact]) ** (1.0 / n))
            deficit = np.maximum(flux[compact] * inside - img[compact].sum(axis=(1, 2)), 0.0)
            img[compact, c - 1 : c + 1, c - 1 : c + 1] += deficit[:, None, None] / 4.0
    return img


def gaussian_convolve(images: np.ndarray, sigma_px: float) -> np.ndarray:
    """Convolve (..., S, S) images with a unit-flux Gaussian of ``sigma_px`` (periodic FFT, float32).

    torch's FFT is used for speed (several times numpy's on 2 cores); it is batch-invariant, so a
    galaxy's pixels do not depend on the batch it is rendered in.
    """
    size = images.shape[-1]
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    transfer = torch.exp(-2.0 * np.pi**2 * sigma_px**2 * (fx**2 + fy**2)).float()
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=(size, size)).numpy()


def _normalised(img: np.ndarray) -> np.ndarray:
    return img / np.maximum(img.sum(axis=(-2, -1), keepdims=True), 1e-30)


def deposit(image: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, flux: np.ndarray,
            batch: np.ndarray | None = None) -> None:
    """Add point fluxes at positions [pixel from centre] to a (G, G) image, or to (B, G, G) images
    at the galaxies ``batch``, sharing each between the four nearest pixels (bilinear)."""
    g = image.shape[-1]
    fx, fy = np.ravel(x_px) + g / 2.0 - 0.5, np.ravel(y_px) + g / 2.0 - 0.5
    flux = np.ravel(flux)
    ix, iy = np.floor(fx).astype(int), np.floor(fy).astype(int)
    wx, wy = fx - ix, fy - iy
    for ddx, ddy, w in ((0, 0, (1 - wx) * (1 - wy)), (1, 0, wx * (1 - wy)), (0, 1, (1 - wx) * wy), (1, 1, wx * wy)):
        jx, jy = ix + ddx, iy + ddy
        ok = (jx >= 0) & (jx < g) & (jy >= 0) & (jy < g)
        index = (jy[ok], jx[ok]) if batch is None else (np.ravel(batch)[ok], jy[ok], jx[ok])
        np.add.at(image, index, (flux * w)[ok])


def band_ratios(g_r_rest: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Observed flux in g, r, z relative to r of a component of rest-frame colour g - r at
    redshift z (K-corrected, ``relations.observed_colours``): (B,) -> (B, 3)."""
    g_r, r_z = rel.observed_colours(z, g_r_rest)
    return np.stack([10 ** (-0.4 * g_r), np.ones_like(g_r), 10 ** (0.4 * r_z)], axis=1)


def _disk_with_structure(cat: pd.DataFrame, px: float, size: int, s: int, disk_flux: np.ndarray) -> dict[str, np.ndarray]:
    """Disk (with spiral modulation), bar and ring images (B, G, G), sharing the disk plane.

    Arms multiply the exponential disk by 1 + A f(r) cos(m [theta - cot(pitch) ln r] - phase), a
    logarithmic spiral whose modulation averages to zero round each circle and so keeps the disk's
    flux; f(r) fades it inside 0.6 r_e. Bars and rings have unit flux here (scaled by the caller).
    """
    pa = np.radians(cat["pa_deg"].to_numpy())
    q = cat["q_disk"].to_numpy()
    re = cat["r_e_disk_arcsec"].to_numpy() / px
    disk = sersic_images(disk_flux, re, 1.0, q, pa, size, s)
    out = {"disk": disk, "bar": np.zeros_like(disk), "ring": np.zeros_like(disk)}
    spiral, bar, ring = (cat[k].to_numpy() > 0 for k in ("n_arms", "bar", "ring"))
    sub = np.nonzero(spiral | bar | ring)[0]
    if not len(sub):
        return out
    xd, yd = disk_plane(subpixel_grid(size, s), pa[sub], q[sub])
    r = np.sqrt(xd * xd + yd * yd) * (1.0 / re[sub]).astype(f32)[:, None, None]  # [r_e]
    col = lambda name: cat[name].to_numpy()[sub].astype(f32)[:, None, None]  # noqa: E731
    j = np.nonzero(spiral[sub])[0]
    if len(j):
        theta = np.arctan2(yd[j], xd[j])
        cot = f32(1.0) / np.tan(np.radians(col("pitch_angle_deg")[j]))
        wave = np.cos(col("n_arms")[j] * (theta - cot * np.log(r[j] + f32(1e-3))) - col("arm_phase_rad")[j])
        ie = (sersic_ie(disk_flux[sub][j], re[sub][j], 1.0, q[sub][j]) / s**2).astype(f32)[:, None, None]
        fade = f32(1.0) - np.exp(-(r[j] / f32(0.6)) ** 2)
        out["disk"][sub[j]] += bin_pixels(ie * sersic_shape(r[j], 1.0) * col("arm_strength")[j] * fade * wave, s)
    j = np.nonzero(bar[sub])[0]
    if len(j):
        ang = np.radians(col("bar_pa_offset_deg")[j])
        a = f32(0.5) * col("bar_length_frac")[j] * re[sub][j].astype(f32)[:, None, None]
        u = xd[j] * np.cos(ang) + yd[j] * np.sin(ang)
        v = yd[j] * np.cos(ang) - xd[j] * np.sin(ang)
        out["bar"][sub[j]] = _normalised(bin_pixels(np.exp(-0.5 * ((u / a) ** 2 + (v / (0.22 * a)) ** 2)), s))
    j = np.nonzero(ring[sub])[0]
    if len(j):
        rr = col("ring_radius_frac")[j]
        out["ring"][sub[j]] = _normalised(bin_pixels(np.exp(-0.5 * ((r[j] - rr) / (0.12 * rr)) ** 2), s))
    return out


def hash_uniform(seed: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from integer (seed, k) pairs, vectorised (a SplitMix64 step)."""
    z = (seed.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + k.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _knots(cat: pd.DataFrame, px: float, g: int) -> np.ndarray:
    """Star-forming knots along the arms of spiral disks, as point fluxes (B, G, G) of unit total."""
    out = np.zeros((len(cat), g, g))
    b = np.nonzero(cat["n_arms"].to_numpy() > 0)[0]
    if not len(b):
        return out
    col = lambda name: cat[name].to_numpy()[b][:, None]  # noqa: E731
    k = np.arange(N_KNOTS)[None, :]
    seed = np.broadcast_to(col("artefact_seed"), (len(b), N_KNOTS))
    u = [hash_uniform(seed, np.broadcast_to(k + N_KNOTS * j, seed.shape)) for j in range(3)]
    radius = 0.6 + 1.6 * u[0]  # [r_e]
    arm = np.floor(u[1] * col("n_arms"))
    theta = (col("arm_phase_rad") + 2 * np.pi * arm) / col("n_arms") + np.log(radius) / np.tan(
        np.radians(col("pitch_angle_deg")))
    re = col("r_e_disk_arcsec") / px
    xd, yd = radius * re * np.cos(theta), radius * re * np.sin(theta) * col("q_disk")
    pa = np.radians(col("pa_deg"))
    x, y = xd * np.cos(pa) - yd * np.sin(pa), xd * np.sin(pa) + yd * np.cos(pa)
    weight = u[2] + 0.2
    weight /= weight.sum(axis=1, keepdims=True)
    deposit(out, x, y, weight, batch=np.broadcast_to(b[:, None], x.shape))
    return out


def _merger(cat: pd.DataFrame, px: float, size: int, s: int, flux_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Companion galaxies and tidal tails (B, G, G) for merging systems (zeros elsewhere)."""
    comp = np.zeros((len(cat), size, size))
    tail = np.zeros_like(comp)
    idx = np.nonzero(cat["merger"].to_numpy() > 0)[0]
    if not len(idx):
        return comp, tail
    sub = cat.iloc[idx]
    sep = sub["companion_sep_arcsec"].to_numpy() / px
    ang = np.radians(sub["companion_pa_deg"].to_numpy())
    dx, dy = sep * np.cos(ang), sep * np.sin(ang)
    ratio = sub["companion_flux_ratio"].to_numpy()
    re = sub["r_e_disk_arcsec"].to_numpy() / px * np.sqrt(ratio)
    comp[idx] = sersic_images(ratio * flux_r[idx], np.maximum(re, 0.5), 1.0, np.full(len(idx), 0.6),
                              ang + 0.7, size, s, dx, dy)
    for j, b in enumerate(idx):
        # A tail: an arc leaving the primary on the far side from the companion, curving round.
        t = np.linspace(0.0, 1.0, 40)
        radius = sep[j] * (0.6 + 1.2 * t)
        phi = ang[j] + np.pi + 1.6 * t
        deposit(tail[b], radius * np.cos(phi), radius * np.sin(phi), np.full(40, 1.0 / 40))
    tail = gaussian_convolve(tail, 1.5)
    return comp, tail


def _dust_lane(cat: pd.DataFrame, px: float, g: int) -> np.ndarray:
    """Transmission (B, 3, G, G) of an edge-on dust lane along the disk midplane (1 elsewhere)."""
    trans = np.ones((len(cat), 3, g, g), f32)
    idx = np.nonzero(cat["dust_lane"].to_numpy() > 0)[0]
    if len(idx):
        sub = cat.iloc[idx]
        u = (np.arange(g) + 0.5 - g / 2.0).astype(f32)
        pa = np.radians(sub["pa_deg"].to_numpy()).astype(f32)[:, None, None]
        minor = u[None, :, None] * np.cos(pa) - u[None, None, :] * np.sin(pa)  # distance from the midplane
        major = u[None, None, :] * np.cos(pa) + u[None, :, None] * np.sin(pa)
        h = (0.12 * sub["r_e_disk_arcsec"].to_numpy() / px + 0.4).astype(f32)[:, None, None]
        extent = (2.0 * sub["r_e_disk_arcsec"].to_numpy() / px).astype(f32)[:, None, None]
        lane = np.exp(-0.5 * (minor / h) ** 2 - 0.5 * (major / extent) ** 2)
        for c, tau in enumerate(DUST_TAU):
            trans[idx, c] = np.exp(-tau * lane)
    return trans


def render_noiseless(cfg: MockConfig, catalog: pd.DataFrame) -> np.ndarray:
    """PSF-convolved (B, 3, H, W) images in nanomaggies for the rows of ``catalog`` (no noise)."""
    size, s, px = cfg.image_size_px, cfg.oversample, cfg.pixel_scale_arcsec
    g = size + 2 * PAD_PX
    cat = catalog
    flux_r = cat["flux_r"].to_numpy()
    bt = cat["bulge_to_total"].to_numpy()
    host = flux_r * (1.0 - cat["agn_flux_fraction"].to_numpy())
    f_bar, f_ring = cat["bar_flux_frac"].to_numpy(), cat["ring_flux_frac"].to_numpy()
    f_knot = np.where(cat["n_arms"].to_numpy() > 0, KNOT_FLUX_FRAC, 0.0)
    disk_total = (1 - bt) * host
    parts = _disk_with_structure(cat, px, g, s, disk_total * (1 - f_bar - f_ring - f_knot))
    bulge = sersic_images(bt * host, cat["r_e_bulge_arcsec"].to_numpy() / px, 4.0, cat["q_bulge"].to_numpy(),
                          np.radians(cat["pa_deg"].to_numpy()), g, s)
    knots = _knots(cat, px, g) * (f_knot * disk_total)[:, None, None]
    nucleus = np.zeros((len(cat), g, g))
    deposit_center = g // 2
    nucleus[:, deposit_center - 1 : deposit_center + 1, deposit_center - 1 : deposit_center + 1] = (
        (flux_r - host) / 4.0)[:, None, None]
    comp, tail = _merger(cat, px, g, s, flux_r)

    z = cat["z"].to_numpy()
    d_col = band_ratios(cat["disk_g_r"].to_numpy(), z).astype(f32)
    b_col = band_ratios(cat["bulge_g_r"].to_numpy(), z).astype(f32)
    blue = band_ratios(np.full(len(cat), 0.15), z).astype(f32)
    agn_col = band_ratios(np.full(len(cat), 0.35), z).astype(f32)
    scale = lambda v: np.asarray(v, f32)[:, None, None]  # noqa: E731
    disk_like = parts["disk"] + parts["ring"] * scale(f_ring * disk_total) + comp + tail * scale(
        cat["tail_flux_frac"].to_numpy() * flux_r)
    bulge_like = bulge + parts["bar"] * scale(f_bar * disk_total)
    knots = knots.astype(f32)
    bands = np.empty((len(cat), 3, g, g), f32)
    for c in range(3):
        bands[:, c] = disk_like * d_col[:, c, None, None] + bulge_like * b_col[:, c, None, None] + knots * blue[:, c, None, None]
    bands *= _dust_lane(cat, px, g)
    bands += nucleus[:, None] * agn_col[:, :, None, None]
    bands = gaussian_convolve(bands, cfg.psf_sigma_px)
    crop = slice(PAD_PX, PAD_PX + size)
    out = bands[:, :, crop, crop].astype(np.float32)
    return add_artefacts(cfg, cat, out)


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
