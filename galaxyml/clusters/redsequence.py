"""The classical cluster finder beside the networks: a red-sequence model (in the spirit of redMaPPer,
Rykoff et al. 2014) calibrated on the training clusters' members, then

- redshift of a member set: z minimising chi^2(z) = sum_i p_i [(g-r)_i - gr(z)]^2 / s_gr^2 +
  [(r-z)_i - rz(z)]^2 / s_rz^2 on a grid, its 1-sigma from where chi^2 rises by 1;
- richness: log10 lambda = a + b log10(sum_i p_i), fitted on the training clusters (redMaPPer's
  lambda is the sum of membership probabilities);
- detection on a field's galaxy catalogue: at each trial z, galaxies within 2 sigma of the red
  sequence and brighter than m*(z) + 1.75 (0.2 L*) are counted in an aperture of r_lambda(lambda=30)
  around every point of a grid; the significance (N - B) / sqrt(B + 1), with B the colour-selected
  background density of the training fields without a cluster, peaks at the cluster and at its z;
  the detection is centred, as redMaPPer centres its clusters, on a bright red-sequence galaxy: of
  those brighter than m*(z) within 3 sigma of the red sequence and half the aperture of the peak, the one with the most red-sequence
  neighbours within a third of the aperture (the brightest of equals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve

from galaxyml.data.mock.clusters import m_star_r, r_lambda_arcsec

Z_GRID = np.round(np.arange(0.05, 0.75, 0.01), 3)


@dataclass
class RedSequence:
    """Quadratic g - r (z) and r - z (z) of cluster members with their scatter, and the richness law."""

    gr: np.ndarray
    rz: np.ndarray
    s_gr: float
    s_rz: float
    richness: np.ndarray
    """(b, a) of log10 lambda = a + b log10 sum p."""
    background: np.ndarray | None = None
    """Colour-selected galaxies per arcmin^2 at each z of Z_GRID, from training fields without a cluster."""

    @classmethod
    def fit(cls, members: pd.DataFrame, z_of: dict, lambda_of: dict) -> RedSequence:
        """Calibrate on training members (``MEM_MATCH_ID``, P, MODEL_MAG_G/R/Z) with their clusters' z and lambda."""
        m = members[members["MEM_MATCH_ID"].isin(z_of) & (members["P"] > 0.5)]
        z = m["MEM_MATCH_ID"].map(z_of).to_numpy(float)
        gr = (m["MODEL_MAG_G"] - m["MODEL_MAG_R"]).to_numpy(float)
        rz = (m["MODEL_MAG_R"] - m["MODEL_MAG_Z"]).to_numpy(float)
        ok = np.isfinite(gr) & np.isfinite(rz) & np.isfinite(z)
        if ok.sum() < 10:
            raise ValueError("the red-sequence baseline needs at least 10 training members with g, r and z magnitudes")
        c_gr, c_rz = np.polyfit(z[ok], gr[ok], 2), np.polyfit(z[ok], rz[ok], 2)
        s_gr = float(np.std(gr[ok] - np.polyval(c_gr, z[ok])))
        s_rz = float(np.std(rz[ok] - np.polyval(c_rz, z[ok])))
        sums = members[members["MEM_MATCH_ID"].isin(lambda_of)].groupby("MEM_MATCH_ID")["P"].sum()
        lam = sums.index.map(lambda_of).to_numpy(float)
        richness = np.polyfit(np.log10(sums.to_numpy(float).clip(1.0)), np.log10(lam), 1)
        return cls(c_gr, c_rz, max(s_gr, 0.02), max(s_rz, 0.02), richness)

    def colours(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.polyval(self.gr, z), np.polyval(self.rz, z)

    def redshift(self, gr: np.ndarray, rz: np.ndarray, p: np.ndarray) -> tuple[float, float]:
        """(z, sigma_z) of one member set from its colours and membership probabilities."""
        mg, mr = self.colours(Z_GRID)
        chi2 = (p[:, None] * ((gr[:, None] - mg) ** 2 / self.s_gr**2 + (rz[:, None] - mr) ** 2 / self.s_rz**2)).sum(0)
        fine = np.linspace(Z_GRID[0], Z_GRID[-1], 1401)
        chi2 = np.interp(fine, Z_GRID, chi2)
        best = int(np.argmin(chi2))
        within = fine[chi2 <= chi2[best] + 1.0]
        return float(fine[best]), float(max((within.max() - within.min()) / 2, 1e-3))

    def log_richness(self, p: np.ndarray) -> float:
        return float(np.polyval(self.richness, np.log10(max(p.sum(), 1.0))))

    def selected(self, gal: pd.DataFrame, z: float, n_sigma: float = 2.0, faint: float = 1.75) -> np.ndarray:
        """Galaxies on the red sequence at ``z`` (within ``n_sigma`` in both colours) brighter than m*(z) + ``faint``."""
        mg, mr = self.colours(z)
        return ((np.abs(gal["g_r"].to_numpy() - mg) < n_sigma * self.s_gr)
                & (np.abs(gal["r_z"].to_numpy() - mr) < n_sigma * self.s_rz) & (gal["mag_r"].to_numpy() < m_star_r(z) + faint))

    def fit_background(self, galaxies: pd.DataFrame, empty_tiles: np.ndarray, area_arcmin2: float) -> None:
        g = galaxies[galaxies["tile"].isin(empty_tiles)]
        n = max(len(empty_tiles), 1)
        self.background = np.array([self.selected(g, z).sum() / (n * area_arcmin2) for z in Z_GRID])


def aperture_arcsec(z: float) -> float:
    """r_lambda of a lambda = 30 cluster at ``z`` [arcsec]: the counting aperture."""
    return float(r_lambda_arcsec(30.0, z))


def detect(rs: RedSequence, gal: pd.DataFrame, size_px: int, scale_arcsec: float, cell_px: int = 4,
           match_arcsec: float = 60.0, max_detections: int = 3) -> np.ndarray:
    """Detections of one tile as rows (x_px, y_px, half_size_px, score, z, log10 lambda), strongest first."""
    n = size_px // cell_px
    cell_arcmin = cell_px * scale_arcsec / 60.0
    best = np.full((n, n), -np.inf)
    best_z = np.zeros((n, n))
    excess_at = np.zeros((n, n))
    gx, gy, mag = gal["x_px"].to_numpy(), gal["y_px"].to_numpy(), gal["mag_r"].to_numpy()
    xi = np.clip(((gx + 0.5) / cell_px).astype(int), 0, n - 1)
    yi = np.clip(((gy + 0.5) / cell_px).astype(int), 0, n - 1)
    for j, z in enumerate(Z_GRID):
        sel = rs.selected(gal, z)
        counts = np.zeros((n, n))
        np.add.at(counts, (yi[sel], xi[sel]), 1.0)
        r_cells = aperture_arcsec(z) / (cell_px * scale_arcsec)
        k = int(np.ceil(r_cells))
        yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
        disk = (np.hypot(xx, yy) <= r_cells).astype(float)
        n_ap = fftconvolve(counts, disk, mode="same")
        b = rs.background[j] * disk.sum() * cell_arcmin**2
        sig = (n_ap - b) / np.sqrt(b + 1.0)
        better = sig > best
        best[better], best_z[better], excess_at[better] = sig[better], z, (n_ap - b)[better]
    out, memo = [], {}
    order = np.argsort(best, axis=None)[::-1]
    for f in order:
        iy, ix = divmod(int(f), n)
        x, y = (ix + 0.5) * cell_px - 0.5, (iy + 0.5) * cell_px - 0.5
        z = best_z[iy, ix]
        if z not in memo:
            memo[z] = rs.selected(gal, z), rs.selected(gal, z, 3.0, 0.0), aperture_arcsec(z) / scale_arcsec
        sel, bright, ap_px = memo[z]
        if any(np.hypot(x - o[0], y - o[1]) < max(1.5 * o[2], 2 * match_arcsec / scale_arcsec) for o in out):
            continue  # inside a stronger detection already (checked at the peak first: cheaper)
        cand = np.flatnonzero(bright & (np.hypot(gx - x, gy - y) <= ap_px / 2))
        if len(cand):  # the central: the bright red-sequence galaxy with the densest red-sequence core
            sx, sy = gx[sel], gy[sel]
            core = np.array([(np.hypot(sx - gx[j], sy - gy[j]) <= ap_px / 3).sum() for j in cand])
            j = cand[np.lexsort((mag[cand], -core))[0]]
            x, y = gx[j], gy[j]
        # Percolation, as redMaPPer: a weaker peak inside a stronger detection's aperture is that cluster.
        if any(np.hypot(x - o[0], y - o[1]) < max(1.5 * o[2], 2 * match_arcsec / scale_arcsec) for o in out):
            continue
        lam = rs.richness[0] * np.log10(max(excess_at[iy, ix], 1.0)) + rs.richness[1]
        out.append((x, y, ap_px, best[iy, ix], z, lam))
        if len(out) >= max_detections:
            break
    return np.array(out, np.float64).reshape(-1, 6)
