"""Mock sky fields with galaxy clusters, catalogued like the public redMaPPer SDSS DR8 release
(Rykoff et al. 2014).

A tile is a square of sky in g, r, z with field galaxies and, for most tiles, one cluster: richness
lambda from a power law, redshift in [z_min, z_max], members on a red sequence whose colours track the
redshift, centred anywhere in the inner 70% of the tile, placed with a projected NFW profile (Navarro, Frenk & White 1997) inside the redMaPPer
radius r_lambda = (lambda / 100)^0.2 Mpc/h, and a bright central galaxy (BCG). Tiles without a cluster
are the negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy.cosmology import Planck18
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

ZERO_POINT_MAG = 22.5
_STREAM_CLUSTERS = 4


@dataclass(frozen=True)
class ClusterFieldConfig:
    """Sky tiles with clusters. Defaults give the demo's fields."""

    n_fields: int = 600
    """Number of tiles (60% train the cluster finders, 20% choose their thresholds, 20% score them)."""
    empty_fraction: float = 0.3
    """Share of tiles without a cluster (negatives)."""
    size_px: int = 128
    """Side of a tile [pixel]."""
    pixel_scale_arcsec: float = 4.0
    """Pixel scale of the tiles [arcsec / pixel] (binned from the cutouts' 0.262): 128 px cover 8.5 arcmin,
    1.3 Mpc at z = 0.2."""
    psf_fwhm_arcsec: float = 1.3
    """PSF FWHM [arcsec]."""
    sky_sigma_nmgy: tuple[float, float, float] = (0.015, 0.02, 0.05)
    """Per-pixel sky noise in g, r, z [nanomaggies]."""
    z_min: float = 0.1
    """Lowest cluster redshift."""
    z_max: float = 0.6
    """Highest cluster redshift."""
    lambda_min: float = 20.0
    """Lowest richness (the redMaPPer catalogue cut)."""
    lambda_max: float = 200.0
    """Highest richness."""
    lambda_slope: float = 2.5
    """dN/dlambda proportional to lambda^-slope."""
    field_density_per_arcmin2: float = 8.0
    """Field galaxies brighter than mag_limit per square arcminute."""
    mag_limit: float = 23.0
    """Faintest r magnitude drawn [AB]."""
    seed: int = 0
    """Seed of the tiles."""
    source: str = "mock"
    """"mock", or "folder": the user's tiles (``tiles_path``) with a redMaPPer catalogue (``catalog_path``,
    members in ``members_path``, optional); see :mod:`galaxyml.data.cluster_tiles`."""
    tiles_path: str = ""
    catalog_path: str = ""
    members_path: str = ""

    def input_files(self) -> list[str]:
        """The user's files this config reads (a rerun notices when they change)."""
        return [self.tiles_path, self.catalog_path, self.members_path] if self.source == "folder" else []

    def __post_init__(self) -> None:
        if self.source not in ("mock", "folder"):
            raise ValueError(f"cluster_fields.source must be 'mock' or 'folder', got {self.source!r}")
        if self.source == "folder" and not (self.tiles_path and self.catalog_path):
            raise ValueError("cluster_fields.source = 'folder' needs cluster_fields.tiles_path and "
                             "cluster_fields.catalog_path (a redMaPPer catalogue FITS file)")
        if self.n_fields < 1:
            raise ValueError(f"clusters.n_fields must be >= 1, got {self.n_fields}")
        if not 0.0 <= self.empty_fraction <= 1.0:
            raise ValueError(f"clusters.empty_fraction must be a fraction in [0, 1], got {self.empty_fraction}")
        if self.size_px < 64:
            raise ValueError(f"clusters.size_px must be >= 64, got {self.size_px}")
        if not 0 < self.z_min < self.z_max:
            raise ValueError("clusters.z_min must be positive and below clusters.z_max")
        if not 0 < self.lambda_min < self.lambda_max:
            raise ValueError("clusters.lambda_min must be positive and below clusters.lambda_max")


def r_lambda_mpc_h(richness: np.ndarray) -> np.ndarray:
    """redMaPPer cluster radius r_lambda = (lambda / 100)^0.2 [Mpc/h] (Rykoff et al. 2014)."""
    return (np.asarray(richness) / 100.0) ** 0.2


def r_lambda_arcsec(richness: np.ndarray, z: np.ndarray) -> np.ndarray:
    """r_lambda as an angle [arcsec] at redshift z (Planck18)."""
    return r_lambda_mpc_h(richness) / Planck18.h * 1000.0 * Planck18.arcsec_per_kpc_proper(np.asarray(z)).value


def red_sequence(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g - r and r - z of red-sequence galaxies at redshift z (observed frame; both redden with z
    as the 4000 A break moves through g and r)."""
    z = np.asarray(z)
    return 0.72 + 1.9 * z - 0.9 * z**2, 0.38 + 0.95 * z


def m_star_r(z: np.ndarray) -> np.ndarray:
    """Apparent r magnitude of an L* cluster galaxy, M*_r = -21.3 plus the Planck18 distance modulus."""
    return -21.3 + Planck18.distmod(np.asarray(z)).value


def _nfw_radii(rng: np.random.Generator, n: int, r_max: float, c: float = 4.0) -> np.ndarray:
    """Projected radii of an NFW profile truncated at r_max, by inverse CDF on a grid."""
    x = np.linspace(1e-4, 1.0, 2000) * c  # r / r_s
    # Projected NFW surface density (Bartelmann 1996) times 2 pi R.
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(x < 1, 1 - 2 / np.sqrt(1 - x**2) * np.arctanh(np.sqrt((1 - x) / (1 + x))),
                     1 - 2 / np.sqrt(x**2 - 1) * np.arctan(np.sqrt((x - 1) / (1 + x))))
        sigma = np.where(np.abs(x - 1) < 1e-3, 1 / 3, f / (x**2 - 1))
    cdf = np.cumsum(sigma * x)
    return np.interp(rng.random(n), cdf / cdf[-1], x) / c * r_max


def _schechter_mags(rng: np.random.Generator, n: int, m_star: float, m_faint: float, alpha: float = -1.0) -> np.ndarray:
    """Satellite magnitudes from a Schechter luminosity function, no brighter than m* - 1."""
    m = np.linspace(m_star - 1.0, m_faint, 400)
    x = 10 ** (-0.4 * (m - m_star))
    pdf = x ** (alpha + 1) * np.exp(-x)
    cdf = np.cumsum(pdf)
    return np.interp(rng.random(n), cdf / cdf[-1], m)


def tile_wcs(cfg: ClusterFieldConfig, ra0: float, dec0: float) -> WCS:
    """A TAN projection centred on (ra0, dec0) with the tile's pixel scale, north up."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [(cfg.size_px + 1) / 2.0, (cfg.size_px + 1) / 2.0]
    w.wcs.cdelt = [-cfg.pixel_scale_arcsec / 3600.0, cfg.pixel_scale_arcsec / 3600.0]
    return w


def draw_tile(cfg: ClusterFieldConfig, tile: int) -> tuple[dict, pd.DataFrame]:
    """One tile's cluster record (or a negative) and its galaxies (members first, then field)."""
    rng = np.random.default_rng([cfg.seed, _STREAM_CLUSTERS, tile])
    ra0, dec0 = (200.0 + 0.5 * tile) % 360.0, 10.0 + rng.uniform(-1, 1)
    wcs = tile_wcs(cfg, ra0, dec0)
    half_arcsec = cfg.size_px * cfg.pixel_scale_arcsec / 2.0
    has_cluster = rng.random() >= cfg.empty_fraction
    galaxies = []
    record = {"tile": tile, "ra_center": ra0, "dec_center": dec0, "has_cluster": int(has_cluster),
              "z": np.nan, "richness": np.nan, "r_lambda_arcsec": np.nan, "n_members": 0,
              "x_px": np.nan, "y_px": np.nan}
    if has_cluster:
        u = rng.random()
        a, lo, hi = 1.0 - cfg.lambda_slope, cfg.lambda_min, cfg.lambda_max
        richness = (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)
        z = rng.uniform(cfg.z_min, cfg.z_max)
        kpc_per_arcsec = 1.0 / Planck18.arcsec_per_kpc_proper(z).value
        r_lam_arcsec = r_lambda_mpc_h(richness) / Planck18.h * 1000.0 / kpc_per_arcsec
        offset = rng.uniform(-0.7, 0.7, 2) * half_arcsec  # anywhere but the outer 15%: a detector must find it
        n_mem = int(rng.poisson(richness))
        radius = _nfw_radii(rng, n_mem, r_lam_arcsec)
        phi = rng.uniform(0, 2 * np.pi, n_mem)
        gr, rz = red_sequence(z)
        mags = _schechter_mags(rng, n_mem, m_star_r(z), m_star_r(z) + 2.5)
        bcg_mag = m_star_r(z) - 1.6
        x = np.concatenate([[offset[0]], offset[0] + radius * np.cos(phi)])
        y = np.concatenate([[offset[1]], offset[1] + radius * np.sin(phi)])
        mag_r = np.concatenate([[bcg_mag], mags])
        n_all = n_mem + 1
        galaxies.append(pd.DataFrame({
            "x_arcsec": x, "y_arcsec": y, "mag_r": mag_r,
            "g_r": gr + rng.normal(0, 0.04, n_all), "r_z": rz + rng.normal(0, 0.03, n_all),
            "z": z + rng.normal(0, 0.003, n_all), "r_e_arcsec": 2.0 * 10 ** (-0.2 * (mag_r - m_star_r(z))) / kpc_per_arcsec * 1.5,
            "is_member": 1, "is_bcg": np.r_[1, np.zeros(n_mem, int)],
            "p_mem": np.clip(rng.normal(0.9, 0.08, n_all), 0.3, 1.0),
        }))
        record.update(z=z, richness=richness, r_lambda_arcsec=r_lam_arcsec, n_members=n_all)
    n_field = rng.poisson(cfg.field_density_per_arcmin2 * (2 * half_arcsec / 60.0) ** 2)
    field_z = rng.uniform(0.05, 1.0, n_field)
    red = rng.random(n_field) < 0.2
    frs = red_sequence(field_z)
    galaxies.append(pd.DataFrame({
        "x_arcsec": rng.uniform(-half_arcsec, half_arcsec, n_field),
        "y_arcsec": rng.uniform(-half_arcsec, half_arcsec, n_field),
        "mag_r": cfg.mag_limit - rng.exponential(1.6, n_field),
        "g_r": np.where(red, frs[0], 0.35 + 0.6 * field_z) + rng.normal(0, 0.08, n_field),
        "r_z": np.where(red, frs[1], 0.3 + 0.4 * field_z) + rng.normal(0, 0.08, n_field),
        "z": field_z, "r_e_arcsec": rng.lognormal(np.log(0.8), 0.4, n_field),
        "is_member": 0, "is_bcg": 0, "p_mem": 0.0,
    }))
    gal = pd.concat(galaxies, ignore_index=True)
    # Sky offsets to RA/Dec through the tile's own TAN projection (x to the east, y to the north).
    cx = (cfg.size_px - 1) / 2.0 - gal["x_arcsec"].to_numpy() / cfg.pixel_scale_arcsec
    cy = (cfg.size_px - 1) / 2.0 + gal["y_arcsec"].to_numpy() / cfg.pixel_scale_arcsec
    ra, dec = wcs.wcs_pix2world(cx, cy, 0)
    gal.insert(0, "tile", tile)
    gal["ra"], gal["dec"], gal["x_px"], gal["y_px"] = ra, dec, cx, cy
    if has_cluster:  # the cluster's centre is its BCG, as in redMaPPer
        record.update(x_px=float(cx[0]), y_px=float(cy[0]))
    for band, shift in (("g", gal["g_r"]), ("r", 0.0), ("z", -gal["r_z"])):
        gal[f"mag_{band}"] = gal["mag_r"] + shift
    return record, gal


def render_tile(cfg: ClusterFieldConfig, gal: pd.DataFrame, tile: int) -> np.ndarray:
    """(3, H, W) float32 image of one tile: each galaxy an exponential profile, PSF, sky noise."""
    size = cfg.size_px
    image = np.zeros((3, size, size), np.float32)
    sigma_px = cfg.psf_fwhm_arcsec / cfg.pixel_scale_arcsec / 2.3548
    for row in gal.itertuples():
        re = max(row.r_e_arcsec / cfg.pixel_scale_arcsec, 0.3)
        stamp = int(np.clip(np.ceil(6 * re), 2, 15))  # exp(-1.678 * 6) = 4e-5 of the peak at the stamp's edge
        offs = np.arange(-stamp, stamp + 1)
        ix, iy = int(round(row.x_px)), int(round(row.y_px))
        xs, ys = ix + offs, iy + offs
        okx, oky = (xs >= 0) & (xs < size), (ys >= 0) & (ys < size)
        if not okx.any() or not oky.any():
            continue
        dx = xs[okx][None, :] - row.x_px
        dy = ys[oky][:, None] - row.y_px
        prof = np.exp(-1.678 * np.hypot(dx, dy) / re)
        prof /= max(prof.sum(), 1e-12)
        for c, band in enumerate("grz"):
            flux = 10 ** (-0.4 * (getattr(row, f"mag_{band}") - ZERO_POINT_MAG))
            image[c][np.ix_(ys[oky], xs[okx])] += flux * prof
    # Real-space filtering: the PSF is barely resolved at this pixel scale, where a Fourier-space
    # Gaussian would ring around bright galaxies.
    image = gaussian_filter(image, sigma=(0.0, sigma_px, sigma_px), mode="constant", truncate=5.0)
    rng = np.random.default_rng([cfg.seed, _STREAM_CLUSTERS + 1, tile])
    image += np.asarray(cfg.sky_sigma_nmgy, np.float32)[:, None, None] * rng.standard_normal(image.shape, np.float32)
    return image.astype(np.float32)
