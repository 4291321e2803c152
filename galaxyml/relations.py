"""Literature relations of galaxies, as small pure functions of numpy arrays: the scaling relations
the mock universe is drawn from, and the BPT demarcation lines and classes the pages and figures draw.
One module for all of them, so the mock, the figures and the pages agree (and a page never imports the
mock generator).

Each function names the paper it follows. Scatter is added by the caller, so every function
here returns the mean relation and the recovery tests can fit against it.
"""

from __future__ import annotations

import numpy as np

SOLAR_ABS_MAG_R = 4.65
"""Absolute magnitude of the Sun in the r band [AB mag] (Willmer 2018)."""


def quenched_probability(log_mstar: np.ndarray, pivot: float = 10.5, width: float = 0.3) -> np.ndarray:
    """Probability that a galaxy is quenched: a logistic in stellar mass around log M* = pivot."""
    return 1.0 / (1.0 + np.exp(-(log_mstar - pivot) / width))


def main_sequence_log_sfr(log_mstar: np.ndarray) -> np.ndarray:
    """Star-forming main sequence, log SFR = 0.76 log M* - 7.6 [Msun/yr] (Renzini & Peng 2015)."""
    return 0.76 * log_mstar - 7.6


def tremonti_oh(x: np.ndarray) -> np.ndarray:
    """Mass-metallicity relation 12+log(O/H) = -1.492 + 1.847 x - 0.08026 x^2 (Tremonti et al. 2004).

    ``x`` is log M* [Msun], or the Mannucci et al. (2010) combination log M* - alpha log SFR.
    """
    return -1.492 + 1.847 * x - 0.08026 * x**2


def pettini_pagel_n2(oh: np.ndarray) -> np.ndarray:
    """N2 = log([NII]6584/Halpha) inverted from 12+log(O/H) = 8.90 + 0.57 N2 (Pettini & Pagel 2004)."""
    return (oh - 8.90) / 0.57


def kauffmann_o3(n2: np.ndarray) -> np.ndarray:
    """The Kauffmann et al. (2003) star-forming boundary, log([OIII]/Hbeta) = 0.61/(N2 - 0.05) + 1.3."""
    return 0.61 / (n2 - 0.05) + 1.3


def kewley_o3(n2: np.ndarray) -> np.ndarray:
    """The Kewley et al. (2001) maximum-starburst line, log([OIII]/Hbeta) = 0.61/(N2 - 0.47) + 1.19."""
    return 0.61 / (n2 - 0.47) + 1.19


def star_forming_o3(n2: np.ndarray, offset: np.ndarray | float = 0.3) -> np.ndarray:
    """Locus of star-forming galaxies in the BPT diagram: ``offset`` dex below the Kauffmann line."""
    return kauffmann_o3(np.minimum(n2, 0.0)) - offset


_PP04_GRID = np.linspace(7.6, 9.1, 601)
_T04_GRID = -1661.9380 + 585.17650 * _PP04_GRID - 68.471750 * _PP04_GRID**2 + 2.6766690 * _PP04_GRID**3


def t04_to_pp04(oh_t04: np.ndarray) -> np.ndarray:
    """Convert 12+log(O/H) from the Tremonti et al. (2004) scale to the Pettini & Pagel (2004) N2
    scale, inverting the Kewley & Ellison (2008) conversion (valid 8.05 < PP04 < 8.9)."""
    return np.interp(oh_t04, _T04_GRID, _PP04_GRID)


def shen_late_r50_kpc(log_mstar: np.ndarray) -> np.ndarray:
    """Half-light radius of late types, R = 0.1 M^0.14 (1 + M/M0)^0.25 kpc, M0 = 3.98e10 Msun
    (Shen et al. 2003, eq. 18 with alpha = 0.14, beta = 0.39, gamma = 0.1)."""
    m = 10.0**log_mstar
    return 0.1 * m**0.14 * (1.0 + m / 3.98e10) ** (0.39 - 0.14)


def shen_late_scatter_ln(log_mstar: np.ndarray) -> np.ndarray:
    """Scatter of ln R for late types, sigma2 + (sigma1 - sigma2) / (1 + (M/M0)^2) (Shen et al. 2003, eq. 19)."""
    m = 10.0**log_mstar
    return 0.34 + (0.47 - 0.34) / (1.0 + (m / 3.98e10) ** 2)


def shen_early_r50_kpc(log_mstar: np.ndarray) -> np.ndarray:
    """Half-light radius of early types, R = 2.88e-6 M^0.56 kpc (Shen et al. 2003, eq. 17)."""
    return 2.88e-6 * (10.0**log_mstar) ** 0.56


def bell_log_ml_r(g_r: np.ndarray) -> np.ndarray:
    """Stellar mass-to-light ratio in r, log(M/L) = -0.306 + 1.097 (g - r) (Bell et al. 2003)."""
    return -0.306 + 1.097 * g_r


def disk_g_r(log_ssfr: np.ndarray, oh: np.ndarray) -> np.ndarray:
    """g - r colour of a disk: blue cloud (0.3-0.5) for high specific SFR, red sequence (~0.77)
    when quenched; more metal-rich disks are slightly redder."""
    blue = 1.0 / (1.0 + np.exp(-(log_ssfr + 10.6) / 0.35))
    metal = np.nan_to_num(oh - 8.8, nan=0.0)
    return 0.78 - 0.40 * blue + 0.15 * metal


def k_correction(z: np.ndarray, g_r_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed-frame colour shifts and r-band K-correction of a component at redshift z.

    Returns (delta g-r, delta r-z, K_r) [mag]: observed g - r = rest g - r + delta g-r, and
    likewise for r - z; the apparent r magnitude is M_r + DM(z) + K_r. As the 4000 A break moves
    from g into r, red spectra redden fastest; the shifts follow the red sequence of this mock's
    cluster fields (g - r + 1.9 z - 0.9 z^2, r - z + 0.95 z, K_r ~ 1.1 z at z < 0.3, the size of
    the SDSS K-corrections of Chilingarian et al. 2010) and scale down to 35% of that for the
    flattest (bluest) spectra. This is what lets an image carry its galaxy's distance.
    """
    z, g_r_rest = np.asarray(z), np.asarray(g_r_rest)
    redness = 0.35 + 0.65 * np.clip((g_r_rest - 0.2) / 0.58, 0.0, 1.2)
    return redness * (1.9 * z - 0.9 * z**2), redness * 0.95 * z, redness * 1.1 * z


def observed_colours(z: np.ndarray, g_r_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed g - r and r - z of a component of rest-frame colour g_r_rest at redshift z."""
    d_gr, d_rz, _ = k_correction(z, g_r_rest)
    return np.asarray(g_r_rest) + d_gr, r_z_from_g_r(g_r_rest) + d_rz


def r_z_from_g_r(g_r: np.ndarray) -> np.ndarray:
    """r - z colour following the Legacy Survey galaxy locus, r - z ~ 0.15 + 0.55 (g - r)."""
    return 0.15 + 0.55 * g_r


def disk_axis_ratio(cos_i: np.ndarray, q0: float = 0.12) -> np.ndarray:
    """Projected axis ratio of an oblate disk of intrinsic thickness q0 seen at inclination i
    (Hubble 1926): q^2 = cos^2 i + q0^2 sin^2 i."""
    return np.sqrt(cos_i**2 + q0**2 * (1.0 - cos_i**2))


BPT_CLASSES = ("star-forming", "composite", "AGN")


def bpt_classify(n2: np.ndarray, o3: np.ndarray) -> np.ndarray:
    """BPT class of each galaxy: 0 star-forming (below the Kauffmann et al. 2003 line), 1 composite
    (between it and the Kewley et al. 2001 line), 2 AGN (above Kewley); -1 where a ratio is missing."""
    n2, o3 = np.asarray(n2, np.float64), np.asarray(o3, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        below_kauffmann = (n2 < 0.05) & (o3 < kauffmann_o3(n2))
        below_kewley = (n2 < 0.47) & (o3 < kewley_o3(n2))
    cls = np.where(below_kauffmann, 0, np.where(below_kewley, 1, 2))
    return np.where(np.isfinite(n2) & np.isfinite(o3), cls, -1).astype(np.int8)
