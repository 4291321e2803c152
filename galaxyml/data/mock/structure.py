"""Structure of mock galaxies beyond bulge + disk: AGN and BPT position, bars, spiral arms, rings,
mergers with tidal tails, dust lanes and image artefacts. Each is drawn from the physical
properties with a configured rate and kept as a truth column.
"""

from __future__ import annotations

import numpy as np

from galaxyml import relations as rel
from galaxyml.data.mock.config import MockConfig
from galaxyml.data.mock.visibility import MIN_SNR

ARTEFACT_TYPES = {0: "none", 1: "satellite trail", 2: "bright star", 3: "bad column"}
BPT_CLASSES = {-1: "no lines", 0: "star-forming", 1: "AGN"}


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def draw_agn(cfg: MockConfig, rng: np.random.Generator, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """AGN flag, BPT ratios above the Kewley et al. (2001) line, and the nucleus' flux fraction.

    AGN are more likely in massive, bulgy galaxies; their line ratios replace the star-forming ones.
    """
    n = len(c["log_mstar"])
    weight = _logistic((c["log_mstar"] - 10.6) / 0.25) * (0.4 + c["bulge_to_total"])
    p = np.clip(cfg.agn_fraction * weight / max(float(np.mean(weight)), 1e-9), 0.0, 0.9)
    agn = rng.random(n) < p
    n2_agn = rng.uniform(-0.25, 0.3, n)
    o3_agn = rel.kewley_o3(n2_agn) + rng.uniform(0.15, 0.6, n)
    n2 = np.where(agn, n2_agn, c["n2"])
    o3 = np.where(agn, o3_agn, c["o3"])
    bpt = np.where(agn, 1, np.where(np.isfinite(c["n2"]), 0, -1)).astype(np.int8)
    return {"agn": agn.astype(np.int8), "n2": n2, "o3": o3, "bpt_class": bpt,
            "agn_flux_fraction": np.where(agn, rng.uniform(0.05, 0.3, n), 0.0)}


def draw_structure(cfg: MockConfig, rng: np.random.Generator, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bars, spiral arms, rings, mergers, dust lanes and artefacts, with their parameters."""
    n = len(c["log_mstar"])
    disk = c["bulge_to_total"] < 0.6
    star_forming = ~c["quenched"].astype(bool)
    edge_on = c["cos_incl"] < 0.22

    bar = disk & (rng.random(n) < cfg.bar_fraction)
    spiral = disk & star_forming & ~edge_on & (rng.random(n) < cfg.spiral_fraction)
    ring = disk & (rng.random(n) < cfg.ring_fraction)
    merger = rng.random(n) < cfg.merger_fraction
    artefact_type = np.where(rng.random(n) < cfg.artefact_fraction, rng.integers(1, 4, n), 0)
    n_arms = np.where(spiral, rng.choice([2, 3, 4], n, p=[0.55, 0.3, 0.15]), 0)
    return {
        "is_disk": disk.astype(np.int8),
        "edge_on": (disk & edge_on).astype(np.int8),
        "dust_lane": (disk & edge_on & star_forming).astype(np.int8),
        "bar": bar.astype(np.int8),
        "bar_length_frac": np.where(bar, rng.uniform(1.0, 1.8, n), 0.0),
        "bar_flux_frac": np.where(bar, rng.uniform(0.15, 0.35, n), 0.0),
        "bar_pa_offset_deg": np.where(bar, rng.uniform(20.0, 160.0, n), 0.0),
        "spiral": spiral.astype(np.int8),
        "n_arms": n_arms.astype(np.int8),
        "pitch_angle_deg": np.where(spiral, rng.uniform(10.0, 30.0, n), 0.0),
        "arm_strength": np.where(spiral, rng.uniform(0.5, 0.9, n), 0.0),
        "arm_phase_rad": rng.uniform(0.0, 2 * np.pi, n),
        "ring": ring.astype(np.int8),
        "ring_radius_frac": np.where(ring, rng.uniform(1.3, 2.0, n), 0.0),
        "ring_flux_frac": np.where(ring, rng.uniform(0.1, 0.2, n), 0.0),
        "merger": merger.astype(np.int8),
        "companion_flux_ratio": np.where(merger, rng.uniform(0.3, 0.9, n), 0.0),
        "companion_sep_arcsec": np.where(merger, rng.uniform(2.5, 5.0, n), 0.0),
        "companion_pa_deg": rng.uniform(0.0, 360.0, n),
        "tail_flux_frac": np.where(merger, rng.uniform(0.1, 0.25, n), 0.0),
        "artefact": (artefact_type > 0).astype(np.int8),
        "artefact_type": artefact_type.astype(np.int8),
        "artefact_seed": rng.integers(0, 2**31 - 1, n),
    }


# Galaxy Zoo DECaLS column names (Walmsley et al. 2022): fractions of volunteers' answers,
# each relative to the volunteers who were asked the question.
VOTE_COLUMNS = (
    "smooth-or-featured_smooth_fraction", "smooth-or-featured_featured-or-disk_fraction",
    "smooth-or-featured_artifact_fraction", "disk-edge-on_yes_fraction", "has-spiral-arms_yes_fraction",
    "bar_strong_fraction", "bar_weak_fraction", "bar_no_fraction", "merging_merger_fraction",
    "anything-odd_yes_fraction", "odd-feature_ring_fraction",
)
"""The last two follow Galaxy Zoo 2 (Willett et al. 2013): "Is there anything odd?" asked of everyone,
then "What is the odd feature?" (here: ring, or anything else) asked of those who answered yes."""


def draw_votes(cfg: MockConfig, rng: np.random.Generator, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Galaxy-Zoo-like vote fractions from the *visible* truth, with binomial noise of ``cfg.n_volunteers``.

    Volunteers vote only what they see: a bar, ring, set of arms or companion counts through its
    visibility (:mod:`galaxyml.data.mock.visibility`: resolved beyond the PSF and above the sky noise),
    and they see features less often in small or faint galaxies (detection shrinks with the apparent
    disk size and the r magnitude).
    """
    k = cfg.n_volunteers
    seen = _logistic((np.log10(c["r_e_disk_arcsec"]) - 0.1) / 0.15) * _logistic((18.8 - c["mag_r"]) / 0.4)
    seen = np.clip(0.25 + 0.75 * seen, 0.0, 1.0)
    shown = {s: c[f"{s}_resolved"] * (c[f"{s}_snr"] >= MIN_SNR) for s in ("bar", "ring", "spiral", "merger")}
    p_art = np.where(c["artefact"] > 0, 0.7, 0.02)
    p_feat = (1 - p_art) * np.clip(_logistic((0.45 - c["bulge_to_total"]) / 0.08) * seen
                                   + 0.6 * shown["spiral"] * seen + 0.5 * shown["merger"], 0.03, 0.97)
    p_smooth = np.clip(1 - p_art - p_feat, 0.0, 1.0)
    probs = np.stack([p_smooth, p_feat, p_art], axis=1)
    counts = rng.multinomial(k, probs / probs.sum(1, keepdims=True))

    def frac(p: np.ndarray) -> np.ndarray:
        return rng.binomial(k, np.clip(p, 0.0, 1.0)) / k

    bar_p = np.where(c["bar"] > 0, 0.05 + (0.15 + 0.6 * seen * c["bar_flux_frac"] / 0.35) * shown["bar"], 0.05)
    strong = frac(bar_p * 0.6)
    weak = np.minimum(frac(bar_p * 0.4 + 0.1), 1 - strong)
    # "Anything odd?" then "which feature?": a visible ring, a merger or an artefact makes a galaxy odd.
    p_ring = np.where(c["ring"] > 0, 0.05 + 0.8 * shown["ring"] * seen, 0.005)
    p_odd = 1 - (1 - p_ring) * (1 - 0.6 * shown["merger"]) * (1 - np.where(c["artefact"] > 0, 0.5, 0.0)) * 0.95
    odd = rng.binomial(k, np.clip(p_odd, 0.0, 1.0))
    ring_votes = rng.binomial(odd, np.clip(p_ring / p_odd, 0.0, 1.0))
    return {
        VOTE_COLUMNS[0]: counts[:, 0] / k,
        VOTE_COLUMNS[1]: counts[:, 1] / k,
        VOTE_COLUMNS[2]: counts[:, 2] / k,
        VOTE_COLUMNS[3]: frac(np.where(c["edge_on"] > 0, 0.92, 0.04 + 0.1 * (c["cos_incl"] < 0.35))),
        VOTE_COLUMNS[4]: frac(np.where(c["spiral"] > 0, 0.08 + (0.27 + 0.6 * seen) * shown["spiral"], 0.08)),
        VOTE_COLUMNS[5]: strong,
        VOTE_COLUMNS[6]: weak,
        VOTE_COLUMNS[7]: 1 - strong - weak,
        VOTE_COLUMNS[8]: frac(np.where(c["merger"] > 0, 0.03 + (0.27 + 0.6 * seen) * shown["merger"], 0.03)),
        VOTE_COLUMNS[9]: odd / k,
        VOTE_COLUMNS[10]: ring_votes / np.maximum(odd, 1),
    }
