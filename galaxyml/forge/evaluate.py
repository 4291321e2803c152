"""How close sampled stars are to a galaxy's true ones, with a floor and a ceiling beside each number.

- C2ST (Lopez-Paz & Oquab 2017, arXiv:1610.06545): a classifier tries to tell true held-out stars from
  as many sampled ones; a ``HistGradientBoostingClassifier`` with default settings, out-of-fold
  probabilities over 5 stratified folds pooled into one ROC AUC. 0.5: indistinguishable; 1: disjoint.
- W1: the 1-D Wasserstein distance per dimension (scipy), in standardised units.
- References: a multivariate Gaussian fitted to the same stars (what a classical fit reaches) and
  true stars against other true stars (the best any model can score at this sample size).
- Profiles: surface density, rotation, age and metallicity against cylindrical radius.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict


def c2st_auc(real: np.ndarray, fake: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Pooled out-of-fold ROC AUC of a default gradient-boosted classifier separating ``real`` from ``fake``."""
    n = min(len(real), len(fake))
    if n < 2 * folds:
        raise ValueError(f"a C2ST needs at least {2 * folds} stars on each side, got {n}")
    rng = np.random.default_rng(seed)
    real = real[rng.choice(len(real), n, replace=False)]
    fake = fake[rng.choice(len(fake), n, replace=False)]
    x = np.nan_to_num(np.concatenate([real, fake]).astype(np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
    y = np.r_[np.zeros(n), np.ones(n)]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p = cross_val_predict(HistGradientBoostingClassifier(random_state=seed), x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def w1_per_dim(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """1-D Wasserstein-1 distance of each column."""
    return np.array([wasserstein_distance(real[:, i], fake[:, i]) for i in range(real.shape[1])])


def gaussian_sample(fit_on: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` draws from the multivariate Gaussian with the mean and covariance of ``fit_on``."""
    rng = np.random.default_rng(seed)
    x = np.asarray(fit_on, np.float64)
    return rng.multivariate_normal(x.mean(0), np.cov(x.T), n).astype(np.float32)


def gaussian_nll(fit_on: np.ndarray, x: np.ndarray) -> float:
    """Mean NLL [nats] of ``x`` under the Gaussian fitted to ``fit_on``."""
    from scipy.stats import multivariate_normal

    f = np.asarray(fit_on, np.float64)
    return float(-multivariate_normal(f.mean(0), np.cov(f.T), allow_singular=True).logpdf(np.asarray(x, np.float64)).mean())


def radial_profiles(particles: np.ndarray, columns: tuple[str, ...], edges_kpc: np.ndarray) -> dict[str, np.ndarray]:
    """Profiles in cylindrical radius R (disk in the x-y plane) over ``edges_kpc``: surface density
    [share of stars per kpc^2], mean rotation v_phi [km/s], median age [Gyr], median log10 Z."""
    col = {c: i for i, c in enumerate(columns)}
    x, y = particles[:, col["x"]], particles[:, col["y"]]
    r = np.hypot(x, y)
    which = np.digitize(r, edges_kpc) - 1
    nb = len(edges_kpc) - 1
    area = np.pi * (edges_kpc[1:] ** 2 - edges_kpc[:-1] ** 2)
    counts = np.bincount(which[(which >= 0) & (which < nb)], minlength=nb)
    out = {"r_kpc": 0.5 * (edges_kpc[1:] + edges_kpc[:-1]), "surface_density": counts / max(len(x), 1) / area}

    def per_bin(v: np.ndarray, fn) -> np.ndarray:
        return np.array([fn(v[which == b]) if (which == b).sum() >= 5 else np.nan for b in range(nb)])

    if {"vx", "vy"} <= col.keys():
        vphi = (x * particles[:, col["vy"]] - y * particles[:, col["vx"]]) / np.maximum(r, 1e-6)
        out["v_phi"] = per_bin(vphi, np.mean)
    if "age" in col:
        out["age"] = per_bin(particles[:, col["age"]], np.median)
    if "Z" in col:
        out["log_Z"] = per_bin(np.log10(np.maximum(particles[:, col["Z"]], 1e-12)), np.median)
    return out


PROFILE_ERRORS = {"surface_density": "dex", "v_phi": "km/s", "age": "Gyr", "log_Z": "dex"}
"""Each profile's error name and unit (surface density compared in log10)."""
PROFILE_SYMBOLS = {"surface_density": ("Σ", "Sigma"), "v_phi": ("v_φ", "v_phi"), "age": ("age", "age"),
                   "log_Z": ("log Z", "log Z")}
"""Each profile's symbol, in Unicode and in ASCII (for terminals)."""


def profile_error_label(key: str, ascii_only: bool = False) -> str:
    """The header of a profile error, e.g. 'v_φ(R) err [km/s]'."""
    return f"{PROFILE_SYMBOLS[key][int(ascii_only)]}(R) err [{PROFILE_ERRORS[key]}]"


def profile_errors(true: np.ndarray, fake: np.ndarray, columns: tuple[str, ...], bins: int = 12) -> dict[str, float]:
    """Mean absolute difference of the radial profiles of ``fake`` from those of ``true`` (physical units),
    over ``bins`` radial bins out to the true stars' 95th-percentile cylindrical radius: surface density
    in dex, rotation v_phi in km/s, median age in Gyr, median log10 Z in dex (bins empty on either side skipped)."""
    col = {c: i for i, c in enumerate(columns)}
    edges = np.linspace(0.0, float(np.percentile(np.hypot(true[:, col["x"]], true[:, col["y"]]), 95)), bins + 1)
    a, b = radial_profiles(true, columns, edges), radial_profiles(fake, columns, edges)
    out = {}
    for key in PROFILE_ERRORS:
        if key not in a:
            continue
        u, v = a[key], b[key]
        if key == "surface_density":
            ok = (u > 0) & (v > 0)
            u, v = np.log10(np.where(ok, u, 1.0)), np.log10(np.where(ok, v, 1.0))
        else:
            ok = np.isfinite(u) & np.isfinite(v)
        out[key] = float(np.abs(u - v)[ok].mean()) if ok.any() else float("nan")
    return out
