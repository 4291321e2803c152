"""The CenterNet detector and the red-sequence finder fused into one cluster finder.

The two finders fail on different clusters: the detector reads the image and misses faint, high-z
clusters whose galaxies barely rise above the sky; the red-sequence finder reads the galaxy catalogue
and is fooled by chance alignments of red galaxies. Fusion follows the usual stacking of detection
pipelines (a second stage that re-scores the first stages' candidates):

1. candidates: the detector's heatmap peaks and the red-sequence detections, a pair closer than the
   matching radius merged into one candidate (at the detector's position, with the red-sequence z and
   lambda, photometric redshifts being what the red sequence measures best);
2. each candidate gets two features, x = (logit h, S): h the detector's heatmap at the candidate (the
   highest value of the 3 x 3 cells around it, for a red-sequence-only candidate too) and S the
   red-sequence significance (N - B) / sqrt(B + 1) of its red-sequence detection (0 without one);
3. p(cluster | x) = sigma(w . (x - mu) / s + b), a logistic regression fit on the validation tiles'
   candidates labelled by matching to the catalogue. The validation scores are cross-fitted (K folds
   by tile: each tile scored by a model that never saw it), so the threshold chosen on them is not
   chosen on the fit's own points, and the test tiles enter neither the fit nor the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

COLUMNS = ("tile", "x_px", "y_px", "half_size_px", "z", "lambda", "detector_score", "red_sequence_score")
FEATURES = ("detector_logit", "red_sequence_significance")


def merge_candidates(detector: pd.DataFrame, red_sequence: pd.DataFrame, radius_px: float,
                     heat_at: Callable[[int, float, float], float]) -> pd.DataFrame:
    """Candidates of both finders (rows: tile, x_px, y_px, half_size_px, z, lambda, score), merged per tile:
    the strongest detector peaks first take the nearest unclaimed red-sequence detection within
    ``radius_px``. ``heat_at(tile, x_px, y_px)`` reads the detector's heatmap where only the red sequence
    found something."""
    cols = ["x_px", "y_px", "half_size_px", "z", "lambda", "score"]
    rows = []
    rs_by_tile = {t: g[cols].to_numpy(float) for t, g in red_sequence.groupby("tile")}
    for tile in sorted(set(detector["tile"]) | set(red_sequence["tile"])):
        d = detector[detector["tile"] == tile].sort_values("score", ascending=False)[cols].to_numpy(float)
        r = rs_by_tile.get(tile, np.zeros((0, len(cols))))
        free = np.ones(len(r), bool)
        for x, y, half, z, lam, score in d:
            sep = np.where(free, np.hypot(r[:, 0] - x, r[:, 1] - y), np.inf)
            j = int(np.argmin(sep)) if len(sep) else -1
            if j >= 0 and sep[j] <= radius_px:
                free[j] = False
                rows.append((tile, x, y, half, r[j, 3], r[j, 4], score, r[j, 5]))
            else:
                rows.append((tile, x, y, half, z, lam, score, 0.0))
        for x, y, half, z, lam, score in r[free]:
            rows.append((tile, x, y, half, z, lam, heat_at(tile, x, y), score))
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    return out.astype({"tile": np.int64, **{c: np.float64 for c in COLUMNS[1:]}})


def features(candidates: pd.DataFrame) -> np.ndarray:
    """(n, 2): logit of the detector's heatmap, red-sequence significance (negative values as 0)."""
    h = candidates["detector_score"].to_numpy(float).clip(1e-4, 1 - 1e-4)
    return np.stack([np.log(h / (1 - h)), candidates["red_sequence_score"].to_numpy(float).clip(0.0)], 1)


@dataclass
class Fusion:
    """The fitted re-scorer: standardised features -> logistic regression."""

    model: object
    val_scores: np.ndarray
    """Cross-fitted scores of the fitting candidates (each from a model that did not see its tile)."""

    @classmethod
    def fit(cls, candidates: pd.DataFrame, is_cluster: np.ndarray, folds: int = 5) -> Fusion:
        x, y = features(candidates), np.asarray(is_cluster, int)
        if len(np.unique(y)) < 2:
            raise ValueError("fusion needs validation candidates that are clusters and candidates that are not")
        groups = candidates["tile"].to_numpy()
        k = min(folds, len(np.unique(groups)))
        oof = np.empty(len(y))
        for train, held in GroupKFold(k).split(x, y, groups):
            part = _model().fit(x[train], y[train]) if len(np.unique(y[train])) == 2 else None
            oof[held] = part.predict_proba(x[held])[:, 1] if part is not None else y[train].mean()
        return cls(_model().fit(x, y), oof)

    def score(self, candidates: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(features(candidates))[:, 1]

    def weights(self) -> dict[str, float]:
        """Logistic weights per standardised feature, and the intercept."""
        lr = self.model[-1]
        return {**dict(zip(FEATURES, map(float, lr.coef_[0]))), "intercept": float(lr.intercept_[0])}


def _model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
