"""Reading an atlas's galaxy embeddings and scaling them the way the feature models see them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMBEDDINGS_FILE = "embeddings.npy"


def load_embeddings(folder: Path) -> np.ndarray:
    """The (N, d) float32 embeddings of an ``embeddings`` stage folder, memory-mapped."""
    return np.load(Path(folder) / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)


def input_scale(sample: np.ndarray, input_norm: str) -> np.ndarray:
    """Per-dimension divisor of the embeddings before an SAE or PCA: one shared scalar (``global``: the
    centred data then has unit mean variance per dimension), or each dimension's standard deviation
    (``per_dim``), measured on ``sample`` (training galaxies)."""
    if input_norm == "global":
        scale = np.full(sample.shape[1], np.sqrt(sample.var(0).mean()) or 1.0)
    else:
        scale = np.sqrt(sample.var(0)) + 1e-8
    return scale.astype(np.float32)
