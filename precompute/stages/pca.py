"""Stage ``pca``: principal components of the embeddings, the baseline the SAEs are compared with.

Each component i gives two features, +PC_i (index 2i) and -PC_i (index 2i + 1), whose activation is
the size of the projection on that side, so the atlas shows both ends of every component and the
same FeatureSet code path serves PCA and the SAEs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.decomposition import IncrementalPCA

from galaxyml.arrays import fraction_unexplained
from galaxyml.embeddings import input_scale
from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE
from precompute.stage import StageContext, log, register
from precompute.stages.sae import load_embeddings, training_rows


@dataclass(frozen=True)
class PCAConfig:
    """PCA baseline."""

    n_components: int = 32
    """Components kept as features (the SAEs' k, so the L0 is equal; takes ``sae.k`` when only that is
    set)."""
    batch_size: int = 4096
    """Rows per incremental fit step (streams embeddings of any size)."""
    input_norm: Literal["global", "per_dim"] = "global"
    """Embedding scaling, as for the SAEs, so that FVUs compare in the same space."""

    def __post_init__(self) -> None:
        if self.n_components < 1 or self.batch_size < 1:
            raise ValueError("pca.n_components and pca.batch_size must be >= 1")
        if self.input_norm not in ("global", "per_dim"):
            raise ValueError(f"pca.input_norm must be 'global' or 'per_dim', got {self.input_norm!r}")


@register("pca", PCAConfig, inputs=("survey", "embeddings"), version=2)
def fit_pca(ctx: StageContext) -> dict:
    """Fit PCA on the training galaxies, keep the first n_components as signed feature pairs; FVU on the
    held-out galaxies (the training galaxies' beside it)."""
    cfg: PCAConfig = ctx.cfg
    x = load_embeddings(ctx)
    rows = training_rows(ctx)
    n, d = x.shape
    k = min(cfg.n_components, d, len(rows))
    if k < cfg.n_components:
        log.warning("pca: %d components asked for, but the embeddings have %d dimensions and %d training "
                    "galaxies; keeping %d", cfg.n_components, d, len(rows), k)
    sample = rows[: min(len(rows), 20000)]
    scale = input_scale(np.asarray(x[sample], np.float64), cfg.input_norm)
    pca = IncrementalPCA(n_components=min(d, len(rows)), batch_size=max(cfg.batch_size, d))
    step = pca.batch_size
    for s in range(0, len(rows), step):
        chunk = np.asarray(x[rows[s : s + step]], np.float64) / scale
        if s and len(chunk) < pca.n_components:  # a short last chunk joins no fit (IncrementalPCA's rule)
            break
        pca.partial_fit(chunk)
        ctx.progress(min(s + step, len(rows)), len(rows) + n, "fitting components")
    idx = np.empty((n, k), np.int32)
    val = np.empty((n, k), np.float32)
    train_mask = np.zeros(n, bool)
    train_mask[rows] = True
    err = {True: 0.0, False: 0.0}
    sum_x = {True: np.zeros(d), False: np.zeros(d)}
    sum_sq = {True: 0.0, False: 0.0}
    for s in range(0, n, cfg.batch_size):
        xs = np.asarray(x[s : s + cfg.batch_size], np.float64) / scale
        proj = pca.transform(xs)[:, :k]
        recon = proj @ pca.components_[:k] + pca.mean_
        for part in (True, False):
            m = train_mask[s : s + len(xs)] == part
            err[part] += float(((xs[m] - recon[m]) ** 2).sum())
            sum_x[part] += xs[m].sum(0)
            sum_sq[part] += float((xs[m] ** 2).sum())
        order = np.argsort(-np.abs(proj), axis=1)
        proj = np.take_along_axis(proj, order, 1)
        idx[s : s + len(proj)] = 2 * order + (proj < 0)
        val[s : s + len(proj)] = np.abs(proj)
        ctx.progress(len(rows) + min(s + cfg.batch_size, n), len(rows) + n, "projecting")
    fvu = {part: fraction_unexplained(err[part], sum_x[part], sum_sq[part], int((train_mask == part).sum()))
           for part in (True, False)}
    np.save(ctx.out / CODE_INDICES_FILE, idx, allow_pickle=False)
    np.save(ctx.out / CODE_VALUES_FILE, val, allow_pickle=False)
    np.save(ctx.out / "components.npy", pca.components_.astype(np.float32), allow_pickle=False)
    ratio = pca.explained_variance_ratio_
    (ctx.out / "config.json").write_text(json.dumps({"n_latents": 2 * k, "n_components": k, "d_in": d,
                                                     "input_scale": scale.tolist()}, indent=1))
    fvu_at = {str(c): float(1 - ratio[:c].sum()) for c in (1, 2, 4, 8, 16, 32, 64, d) if c <= len(ratio)}
    fired = np.bincount(idx[val > 0], minlength=2 * k)  # a side of a component no galaxy falls on is dead
    return {"fvu": fvu[False], "fvu_train": fvu[True], "fvu_split": "held_out", "l0": float((val > 0).sum(1).mean()),
            "n_latents": 2 * k, "n_components": k, "dead_fraction": float((fired == 0).mean()),
            "n_train": int(len(rows)), "fvu_by_components_train": fvu_at}
