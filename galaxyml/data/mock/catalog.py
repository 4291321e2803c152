"""The mock galaxy catalog: physical properties drawn from literature relations.

Galaxies are drawn in blocks of ``block_size`` with a generator seeded by (seed, block), so
galaxy i is identical whatever the survey size or the rendering batch. A flux limit in r is
applied by rejection, as in a magnitude-limited spectroscopic survey.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.cosmology import Planck18

from galaxyml import relations as rel
from galaxyml.data.mock.config import MockConfig
from galaxyml.data.mock.structure import VOTE_COLUMNS, draw_agn, draw_structure, draw_votes
from galaxyml.data.mock.visibility import STRUCTURES, structure_visibility

ZERO_POINT_MAG = 22.5
"""AB magnitude of a flux of 1 nanomaggy."""

SCHECHTER_LOG_MSTAR = 10.7
SCHECHTER_ALPHA = -1.3
"""Single-Schechter stellar mass function of local galaxies (Baldry et al. 2012, rounded)."""

_STREAM_CATALOG = 1

UNITS: dict[str, str] = {
    "ra": "deg", "dec": "deg", "z": "", "log_mstar": "log10 Msun", "log_sfr": "log10 Msun/yr",
    "log_ssfr": "log10 1/yr", "quenched": "bool", "oh_12": "12+log(O/H)", "n2": "dex", "o3": "dex",
    "bulge_to_total": "", "r50_kpc": "kpc", "r_e_disk_arcsec": "arcsec", "r_e_bulge_arcsec": "arcsec",
    "r_e_disk_kpc": "kpc", "r_e_bulge_kpc": "kpc", "cos_incl": "", "q_disk": "", "q_bulge": "", "pa_deg": "deg", "g_r": "mag", "r_z": "mag", "g_r_rest": "mag",
    "mag_g": "AB mag", "mag_r": "AB mag", "mag_z": "AB mag",
    "flux_g": "nmgy", "flux_r": "nmgy", "flux_z": "nmgy", "bulge_g_r": "mag", "disk_g_r": "mag",
    "agn": "bool", "bpt_class": "-1 none, 0 SF, 1 AGN", "agn_flux_fraction": "", "is_disk": "bool",
    "edge_on": "bool", "dust_lane": "bool", "bar": "bool", "bar_length_frac": "r_e,disk",
    "bar_flux_frac": "", "bar_pa_offset_deg": "deg", "spiral": "bool", "n_arms": "", "pitch_angle_deg": "deg",
    "arm_strength": "", "arm_phase_rad": "rad", "ring": "bool", "ring_radius_frac": "r_e,disk",
    "ring_flux_frac": "", "merger": "bool", "companion_flux_ratio": "", "companion_sep_arcsec": "arcsec",
    "companion_pa_deg": "deg", "tail_flux_frac": "", "artefact": "bool",
    "artefact_type": "0 none, 1 trail, 2 star, 3 column", "artefact_seed": "",
    **{f"{s}_{q}": u for s in STRUCTURES for q, u in (("snr", "S/N"), ("resolved", "0-1"), ("visible", "bool"))},
    **{col: "fraction" for col in VOTE_COLUMNS},
}


def _inverse_cdf_sample(rng: np.random.Generator, grid: np.ndarray, pdf: np.ndarray, n: int) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def _draw_candidates(cfg: MockConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw n galaxies before the flux limit."""
    z_grid = np.linspace(cfg.z_min, cfg.z_max, 256)
    z = _inverse_cdf_sample(rng, z_grid, Planck18.differential_comoving_volume(z_grid).value, n)
    m_grid = np.linspace(cfg.log_mstar_min, cfg.log_mstar_max, 512)
    x = 10.0 ** (m_grid - SCHECHTER_LOG_MSTAR)
    log_mstar = _inverse_cdf_sample(rng, m_grid, x ** (SCHECHTER_ALPHA + 1) * np.exp(-x), n)

    quenched = rng.random(n) < rel.quenched_probability(log_mstar)
    log_sfr = rel.main_sequence_log_sfr(log_mstar) - 1.0 * quenched
    log_sfr = log_sfr + rng.normal(0.0, cfg.main_sequence_scatter_dex, n)
    log_ssfr = log_sfr - log_mstar

    x_fmr = log_mstar - cfg.mannucci_alpha * log_sfr
    oh = rel.tremonti_oh(x_fmr) + rng.normal(0.0, cfg.metallicity_scatter_dex, n)
    oh = np.where(quenched, np.nan, oh)
    # The MZR is on the Tremonti scale; N2 follows Pettini & Pagel on their own scale.
    n2 = rel.pettini_pagel_n2(rel.t04_to_pp04(oh))
    o3 = rel.star_forming_o3(np.nan_to_num(n2, nan=-0.5), 0.15 + np.abs(rng.normal(0.0, 0.15, n)))
    o3 = np.where(quenched, np.nan, o3)

    # Bulge-to-total rises with mass and quenching (a Beta draw around the mean).
    bt_mean = np.clip(0.08 + 0.18 * (log_mstar - 9.5) + 0.30 * quenched, 0.03, 0.9)
    concentration = 12.0
    bt = rng.beta(bt_mean * concentration, (1 - bt_mean) * concentration)

    late = rel.shen_late_r50_kpc(log_mstar) * np.exp(rng.normal(0.0, 1.0, n) * rel.shen_late_scatter_ln(log_mstar))
    early = rel.shen_early_r50_kpc(log_mstar) * np.exp(rng.normal(0.0, 0.30, n))
    r50_kpc = np.where(bt > 0.5, early, late)

    cos_incl = rng.random(n)
    pa_deg = rng.uniform(0.0, 180.0, n)

    disk_gr = rel.disk_g_r(log_ssfr, oh) + rng.normal(0.0, 0.03, n)
    bulge_gr = 0.80 + rng.normal(0.0, 0.02, n)
    ra_lo, ra_hi = cfg.footprint_ra_deg
    sin_lo, sin_hi = np.sin(np.radians(cfg.footprint_dec_deg))
    return {
        "ra": rng.uniform(ra_lo, ra_hi, n),
        "dec": np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, n))),
        "z": z, "log_mstar": log_mstar, "log_sfr": log_sfr, "log_ssfr": log_ssfr,
        "quenched": quenched, "oh_12": oh, "n2": n2, "o3": o3, "bulge_to_total": bt,
        "r50_kpc": r50_kpc, "cos_incl": cos_incl, "pa_deg": pa_deg,
        "disk_g_r": disk_gr, "bulge_g_r": bulge_gr,
    }


def _photometry(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apparent (observed-frame) magnitudes from mass-to-light ratios, the Planck18 distance
    modulus and K-corrections.

    The mass-to-light ratio takes the rest-frame colour ``g_r_rest``; ``g_r`` and ``r_z`` are the
    observed colours (each component shifted by its own K-correction), light-weighted sums of the
    bulge and disk colours so that the rendered components add up to the catalog magnitudes. The
    r-band K-correction of the whole galaxy follows its integrated rest colour.
    """
    bt, z = c["bulge_to_total"], c["z"]

    def combine(bulge: np.ndarray, disk: np.ndarray) -> np.ndarray:
        return -2.5 * np.log10(bt * 10 ** (-0.4 * bulge) + (1 - bt) * 10 ** (-0.4 * disk))

    g_r_rest = combine(c["bulge_g_r"], c["disk_g_r"])
    (gr_b, rz_b), (gr_d, rz_d) = rel.observed_colours(z, c["bulge_g_r"]), rel.observed_colours(z, c["disk_g_r"])
    g_r, r_z = combine(gr_b, gr_d), -combine(-rz_b, -rz_d)
    log_lum_r = c["log_mstar"] - rel.bell_log_ml_r(g_r_rest)
    k_r = rel.k_correction(z, g_r_rest)[2]
    mag_r = rel.SOLAR_ABS_MAG_R - 2.5 * log_lum_r + Planck18.distmod(z).value + k_r
    return {"g_r": g_r, "r_z": r_z, "g_r_rest": g_r_rest, "mag_g": mag_r + g_r, "mag_r": mag_r, "mag_z": mag_r - r_z}


def _angular_sizes(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    arcsec_per_kpc = Planck18.arcsec_per_kpc_proper(c["z"]).value
    r50_arcsec = c["r50_kpc"] * arcsec_per_kpc
    bt = c["bulge_to_total"]
    # The galaxy's half-light radius is shared between a compact bulge and a larger disk.
    r_e_disk = r50_arcsec * (1.0 + 0.25 * bt)
    r_e_bulge = r50_arcsec * np.where(bt > 0.5, 0.85, 0.35)
    q_disk = rel.disk_axis_ratio(c["cos_incl"])
    q_bulge = rel.disk_axis_ratio(c["cos_incl"], q0=0.7)
    return {"r_e_disk_arcsec": r_e_disk, "r_e_bulge_arcsec": r_e_bulge, "q_disk": q_disk, "q_bulge": q_bulge,
            "r_e_disk_kpc": r_e_disk / arcsec_per_kpc, "r_e_bulge_kpc": r_e_bulge / arcsec_per_kpc}


def draw_block(cfg: MockConfig, block: int) -> pd.DataFrame:
    """Draw block ``block`` of ``cfg.block_size`` flux-limited galaxies (without ids)."""
    rng = np.random.default_rng([cfg.seed, _STREAM_CATALOG, block])
    parts: list[pd.DataFrame] = []
    n_kept = 0
    while n_kept < cfg.block_size:
        c = _draw_candidates(cfg, rng, 4 * cfg.block_size)
        c.update(_photometry(c))
        keep = c["mag_r"] < cfg.mag_r_limit
        if not keep.any():
            continue
        part = pd.DataFrame({k: v[keep] for k, v in c.items()})
        parts.append(part)
        n_kept += len(part)
    df = pd.concat(parts, ignore_index=True).iloc[: cfg.block_size].reset_index(drop=True)
    df = df.assign(**_angular_sizes({k: df[k].to_numpy() for k in df.columns}))
    cols = {k: df[k].to_numpy() for k in df.columns}
    cols.update(draw_agn(cfg, rng, cols))
    cols.update(draw_structure(cfg, rng, cols))
    cols.update(structure_visibility(cfg, cols))
    cols.update(draw_votes(cfg, rng, cols))
    df = pd.DataFrame(cols)
    for band in "grz":
        df[f"flux_{band}"] = 10.0 ** (-0.4 * (df[f"mag_{band}"] - ZERO_POINT_MAG))
    return df


def draw_catalog(cfg: MockConfig) -> pd.DataFrame:
    """The full mock catalog: ``cfg.n_galaxies`` rows, a string ``galaxy_id`` first.

    Examples
    --------
    >>> cat = draw_catalog(MockConfig(n_galaxies=10))
    >>> list(cat.columns[:3]), len(cat)
    (['galaxy_id', 'ra', 'dec'], 10)
    """
    n_blocks = -(-cfg.n_galaxies // cfg.block_size)
    df = pd.concat([draw_block(cfg, b) for b in range(n_blocks)], ignore_index=True).iloc[: cfg.n_galaxies]
    df["quenched"] = df["quenched"].astype(np.int8)
    df.insert(0, "galaxy_id", [f"mock-{cfg.seed}-{i:07d}" for i in range(len(df))])
    return df.reset_index(drop=True)
