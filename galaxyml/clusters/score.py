"""Scores of cluster finders against the truth on held-out tiles.

A detection matches a true cluster of its tile when their centres are within ``match_arcsec`` (each
true cluster matches at most one detection, the strongest). Completeness: matched true clusters /
true clusters; purity: matched detections / detections, both above a score threshold chosen on the
validation tiles (the highest F1) and applied unchanged to the test tiles. Redshift: sigma_z = NMAD
of dz / (1 + z) = 1.4826 median |dz / (1 + z) - median|; richness: the standard deviation of
log10 lambda_pred - log10 lambda_true [dex].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

LAMBDA_BINS = (20.0, 30.0, 50.0, 1e9)
Z_BINS = (0.0, 0.25, 0.4, 10.0)


def match(detections: pd.DataFrame, truth: pd.DataFrame, match_arcsec: float, scale_of: dict) -> pd.DataFrame:
    """``detections`` (tile, x_px, y_px, score, ...) with ``matched`` (the true cluster's row label or -1)
    and ``sep_arcsec``; strongest detections claim their cluster first."""
    det = detections.sort_values("score", ascending=False, kind="stable").copy()
    det["matched"], det["sep_arcsec"] = -1, np.nan
    taken: set = set()
    by_tile = {t: g for t, g in truth.groupby("tile")}
    matched, seps = [], []
    for row in det.itertuples():
        cand = by_tile.get(row.tile)
        hit, sep = -1, np.nan
        if cand is not None:
            d = np.hypot(cand["x_px"].to_numpy() - row.x_px, cand["y_px"].to_numpy() - row.y_px) * scale_of[row.tile]
            for j in np.argsort(d):
                if d[j] <= match_arcsec and cand.index[j] not in taken:
                    hit, sep = cand.index[j], float(d[j])
                    taken.add(hit)
                    break
        matched.append(hit), seps.append(sep)
    det["matched"], det["sep_arcsec"] = matched, seps
    return det


def completeness_purity(det: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> tuple[float, float]:
    kept = det[det["score"] >= threshold]
    hits = set(kept.loc[kept["matched"] >= 0, "matched"])
    comp = len(hits) / len(truth) if len(truth) else float("nan")
    pur = float((kept["matched"] >= 0).mean()) if len(kept) else float("nan")
    return comp, pur


def best_threshold(det: pd.DataFrame, truth: pd.DataFrame) -> float:
    """The score threshold with the highest F1 of completeness and purity (chosen on validation tiles)."""
    best, best_f1 = 1.0, -1.0
    for t in np.unique(det["score"]):
        c, p = completeness_purity(det, truth, t)
        f1 = 2 * c * p / (c + p) if c + p > 0 else 0.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


def binned(det: pd.DataFrame, truth: pd.DataFrame, threshold: float, method: str) -> pd.DataFrame:
    """Completeness per true lambda and z bin, purity per detected lambda and z bin (rows of a curves table)."""
    rows = []
    kept = det[det["score"] >= threshold]
    hits = set(kept.loc[kept["matched"] >= 0, "matched"])
    for col, edges, det_col in (("richness", LAMBDA_BINS, "lambda"), ("z", Z_BINS, "z")):
        for lo, hi in zip(edges[:-1], edges[1:]):
            t = truth[(truth[col] >= lo) & (truth[col] < hi)]
            d = kept[(kept[det_col] >= lo) & (kept[det_col] < hi)]
            rows.append({"method": method, "by": col, "lo": lo, "hi": hi if hi < 1e8 else np.inf,
                         "n_true": len(t), "completeness": len(hits & set(t.index)) / len(t) if len(t) else np.nan,
                         "n_detected": len(d), "purity": float((d["matched"] >= 0).mean()) if len(d) else np.nan})
    return pd.DataFrame(rows)


def sigma_z(z_pred: np.ndarray, z_true: np.ndarray) -> float:
    """NMAD of (z_pred - z_true) / (1 + z_true)."""
    dz = (np.asarray(z_pred) - np.asarray(z_true)) / (1 + np.asarray(z_true))
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def richness_scatter(log_lambda_pred: np.ndarray, lambda_true: np.ndarray) -> float:
    """Standard deviation of log10 lambda_pred - log10 lambda_true [dex]."""
    return float(np.std(np.asarray(log_lambda_pred) - np.log10(np.asarray(lambda_true))))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")
