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

from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE
from precompute.stage import StageContext, register
from precompute.stages.sae import input_scale, load_embeddings


@dataclass(frozen=True)
class PCAConfig:
    """PCA baseline."""

    n_components: int = 32
    """Components kept as features (the SAEs' k, so the L0 is equal)."""
    batch_size: int = 4096
    """Rows per incremental fit step (streams embeddings of any size)."""
    input_norm: Literal["global", "per_dim"] = "global"
    """Embedding scaling, as for the SAEs, so that FVUs compare in the same space."""

    def __post_init__(self) -> None:
        if self.n_components < 1 or self.batch_size < 1:
            raise ValueError("pca.n_components and pca.batch_size must be >= 1")
        if self.input_norm not in ("global", "per_dim"):
            raise ValueError(f"pca.input_norm must be 'global' or 'per_dim', got {self.input_norm!r}")


@register("pca", PCAConfig, inputs=("embeddings",))
def fit_pca(ctx: StageContext) -> dict:
    """Fit PCA (all components), keep the first n_components as signed feature pairs."""
    cfg: PCAConfig = ctx.cfg
    x = load_embeddings(ctx)
    n, d = x.shape
    if cfg.n_components > d:
        raise ValueError(f"pca.n_components = {cfg.n_components} exceeds the embedding size {d}")
    scale = input_scale(np.asarray(x[: min(n, 20000)], np.float64), cfg.input_norm)
    pca = IncrementalPCA(n_components=d, batch_size=max(cfg.batch_size, d))
    for s in range(0, n, pca.batch_size):
        chunk = np.asarray(x[s : s + pca.batch_size], np.float64) / scale
        if len(chunk) >= d:  # IncrementalPCA needs at least d rows per partial fit
            pca.partial_fit(chunk)
        ctx.progress(min(s + pca.batch_size, n), 2 * n, "fitting components")
    k = cfg.n_components
    idx = np.empty((n, k), np.int32)
    val = np.empty((n, k), np.float32)
    for s in range(0, n, cfg.batch_size):
        proj = pca.transform(np.asarray(x[s : s + cfg.batch_size], np.float64) / scale)[:, :k]
        order = np.argsort(-np.abs(proj), axis=1)
        proj = np.take_along_axis(proj, order, 1)
        idx[s : s + len(proj)] = 2 * order + (proj < 0)
        val[s : s + len(proj)] = np.abs(proj)
        ctx.progress(n + min(s + cfg.batch_size, n), 2 * n, "projecting")
    np.save(ctx.out / CODE_INDICES_FILE, idx, allow_pickle=False)
    np.save(ctx.out / CODE_VALUES_FILE, val, allow_pickle=False)
    np.save(ctx.out / "components.npy", pca.components_.astype(np.float32), allow_pickle=False)
    ratio = pca.explained_variance_ratio_
    (ctx.out / "config.json").write_text(json.dumps({"n_latents": 2 * k, "n_components": k, "d_in": d,
                                                     "input_scale": scale.tolist()}, indent=1))
    fvu_at = {str(c): float(1 - ratio[:c].sum()) for c in (1, 2, 4, 8, 16, 32, 64, d) if c <= d}
    return {"fvu": float(1 - ratio[:k].sum()), "l0": float(k), "n_latents": 2 * k, "dead_fraction": 0.0,
            "fvu_by_components": fvu_at}
