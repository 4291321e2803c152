"""How visible each structure of a mock galaxy is in its image.

A structure drawn into a galaxy is in the truth, but whether it is in the pixels depends on its light
against the sky noise and on the resolution: a faint ring on a small, distant disk is below the noise
or inside the PSF. Volunteers vote only what they see (Galaxy Zoo), and no model can find what the
image does not hold, so each structure gets

- its signal-to-noise ratio: the matched-filter S/N of the component's own r-band light over the sky
  noise, S/N = F / (sigma_sky sqrt(N_eff)), where N_eff = 1 / sum(p^2) is the effective number of
  pixels of its PSF-convolved, unit-flux profile p (analytic for the Gaussian shapes the renderer draws);
- for the structures that sit on the disk (bars, rings, arms), its resolution: how far its scale
  exceeds the PSF FWHM, from 0 (inside the PSF) to 1 (at least one FWHM beyond it);
- and a ``<structure>_visible`` flag: present, S/N >= :data:`MIN_SNR` and resolved >= 0.5.

The shapes follow :mod:`galaxyml.data.mock.render`: a bar is a Gaussian of sigma a = 0.5 L r_e along
its axis and 0.22 a across; a ring a Gaussian annulus at R = f r_e of radial sigma 0.12 R; arms modulate
the exponential disk by their strength outside 0.6 r_e; a companion is a disk of r_e sqrt(ratio).
"""

from __future__ import annotations

import numpy as np

from galaxyml.data.mock.config import MockConfig

MIN_SNR = 5.0
"""Matched-filter S/N above which a resolved structure counts as visible."""
ZERO_POINT_MAG = 22.5
STRUCTURES = ("bar", "ring", "spiral", "merger")
SCALE_LENGTH_PER_RE = 1 / 1.678
"""Exponential disk scale length per half-light radius."""
BAR_CALIBRATION, ARM_CALIBRATION, MERGER_CALIBRATION = 0.7, 0.19, 1.28
"""Factors that bring the analytic S/N to the S/N of the rendered component (the image with the
structure minus the image without it, over the sky noise), measured on the median of 40 mock galaxies
each (``tests/test_visibility.py``): the bar and the ring take their light from the disk, the arms'
modulation fades inside 0.6 r_e and shares light with the knots, the companion is an inclined disk."""


def _resolved(scale_px: np.ndarray, fwhm_px: float) -> np.ndarray:
    return np.clip((scale_px - fwhm_px) / fwhm_px, 0.0, 1.0)


def structure_visibility(cfg: MockConfig, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per galaxy: ``<s>_snr``, ``<s>_resolved`` and ``<s>_visible`` for bars, rings, spiral arms and
    mergers (zero where the structure is absent), from the catalog columns ``c``.

    Examples
    --------
    A ring of 15% of a bright, large disk is visible; the same ring on a faint disk 4x smaller is not.
    """
    px, sigma_psf = cfg.pixel_scale_arcsec, cfg.psf_sigma_px
    fwhm = 2.3548 * sigma_psf
    sky = float(cfg.sky_sigma_nmgy[list(cfg.bands).index("r")])
    sky = max(sky, 1e-9)  # a noiseless mock: every resolved structure is visible
    flux_r = 10.0 ** (-0.4 * (c["mag_r"] - ZERO_POINT_MAG))
    host = flux_r * (1.0 - c.get("agn_flux_fraction", 0.0))
    disk = (1.0 - c["bulge_to_total"]) * host
    re = c["r_e_disk_arcsec"] / px
    q = np.clip(c["q_disk"], 0.05, 1.0)
    out: dict[str, np.ndarray] = {}

    def emit(name: str, present: np.ndarray, snr: np.ndarray, resolved: np.ndarray) -> None:
        snr = np.where(present, snr, 0.0)
        resolved = np.where(present, resolved, 0.0)
        out[f"{name}_snr"] = snr
        out[f"{name}_resolved"] = resolved
        out[f"{name}_visible"] = (present & (snr >= MIN_SNR) & (resolved >= 0.5)).astype(np.int8)

    # Bar: a 2-D Gaussian (sigma a, 0.22 a) in the disk plane, projected (minor axis times ~sqrt(q)).
    a = 0.5 * c["bar_length_frac"] * re
    sx = np.sqrt(a**2 + sigma_psf**2)
    sy = np.sqrt((0.22 * a * np.sqrt(q)) ** 2 + sigma_psf**2)
    snr = BAR_CALIBRATION * c["bar_flux_frac"] * disk / (sky * np.sqrt(4 * np.pi * sx * sy))
    emit("bar", c["bar"] > 0, snr, _resolved(2 * a, fwhm))

    # Ring: a Gaussian annulus of radius R, radial sigma w, seen as an ellipse of perimeter ~ pi R (1 + q).
    radius = c["ring_radius_frac"] * re
    w = np.sqrt((0.12 * radius) ** 2 + sigma_psf**2)
    n_ring = np.pi * radius * (1 + q) * 2 * np.sqrt(np.pi) * w
    emit("ring", c["ring"] > 0, c["ring_flux_frac"] * disk / (sky * np.sqrt(np.maximum(n_ring, 1e-6))),
         _resolved(radius * np.sqrt(q), fwhm))

    # Arms: a modulation of amplitude A of the disk light (outside 0.6 r_e), spread over the disk's
    # N_eff = 8 pi h^2 q; the share of it a matched filter keeps is measured (ARM_CALIBRATION).
    h = SCALE_LENGTH_PER_RE * re
    n_disk = 8 * np.pi * (h**2 + sigma_psf**2) * q
    # Arms are told apart when their separation round the disk at r_e exceeds the PSF (with half the
    # separation instead, a CNN trained on the images still found the "hidden" spirals at AUROC 0.99).
    arm_spacing = 2 * np.pi * re * np.sqrt(q) / np.maximum(c["n_arms"], 1)
    emit("spiral", c["spiral"] > 0, ARM_CALIBRATION * c["arm_strength"] * disk / (sky * np.sqrt(n_disk)),
         _resolved(arm_spacing, fwhm))

    # Merger: the companion (a disk of r_e sqrt(ratio), exponential) at 2.5-5 arcsec, always outside the PSF.
    rc = SCALE_LENGTH_PER_RE * re * np.sqrt(np.maximum(c["companion_flux_ratio"], 1e-6))
    n_comp = 8 * np.pi * (rc**2 + sigma_psf**2)
    emit("merger", c["merger"] > 0, MERGER_CALIBRATION * c["companion_flux_ratio"] * flux_r / (sky * np.sqrt(n_comp)),
         _resolved(c["companion_sep_arcsec"] / px, fwhm))
    return out
