"""Stage ``index``: a FAISS similarity index over the embeddings (exact below 1e5 galaxies)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galaxyml import index as gindex
from precompute.stage import StageContext, register

VERSION = 2  # 2: centred embeddings


@dataclass(frozen=True)
class IndexConfig:
    """Index construction."""

    hnsw_m: int = 32
    """Graph degree of the HNSW index used above 1e5 galaxies."""

    def __post_init__(self) -> None:
        if self.hnsw_m < 4:
            raise ValueError("index.hnsw_m must be >= 4")


@register("index", IndexConfig, inputs=("embeddings",), version=VERSION)
def build_index(ctx: StageContext) -> dict:
    """Index the centred, L2-normalised embeddings for cosine similarity search."""
    x = np.load(ctx.inputs["embeddings"] / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    ctx.progress(0, 1, f"indexing {len(x):,} embeddings")
    sim = gindex.build_index(x, hnsw_m=ctx.cfg.hnsw_m)
    gindex.save_index(sim, ctx.out)
    ctx.progress(1, 1, "index written")
    return {"n": int(sim.index.ntotal), "kind": sim.kind}
