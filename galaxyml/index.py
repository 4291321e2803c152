"""Similarity search over galaxy embeddings with FAISS (Douze et al. 2024, arXiv:2401.08281).

Embeddings are centred on the survey mean and L2-normalised, so inner product is the cosine
similarity of what distinguishes galaxies (mean-pooled transformer states share a large common
component that would otherwise make every pair look alike). The index type follows the survey
size: exact (``IndexFlatIP``) up to ``EXACT_MAX_ROWS``, HNSW graph search above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from galaxyml.arrays import streamed_mean

EXACT_MAX_ROWS = 100_000
INDEX_FILE = "embeddings.faiss"
MEAN_FILE = "mean.npy"
INFO_FILE = "index.json"


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, C-contiguous, as FAISS expects)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class SimilarityIndex:
    """A FAISS index with the centring applied to every query."""

    index: faiss.Index
    mean: np.ndarray

    @property
    def kind(self) -> str:
        return "exact" if isinstance(self.index, faiss.IndexFlatIP) else "hnsw"

    def search(self, queries: np.ndarray, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and galaxy indices of the k nearest neighbours of each query row."""
        return self.index.search(normalise(np.atleast_2d(queries) - self.mean), k)


def build_index(embeddings: np.ndarray, chunk: int = 65536, hnsw_m: int = 32) -> SimilarityIndex:
    """Index (N, D) embeddings, added in chunks so a memory-mapped array is streamed."""
    n, d = embeddings.shape
    mean = streamed_mean(embeddings, chunk).astype(np.float32)
    index = faiss.IndexFlatIP(d) if n <= EXACT_MAX_ROWS else faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    for start in range(0, n, chunk):
        index.add(normalise(embeddings[start : start + chunk] - mean))
    return SimilarityIndex(index, mean)


def save_index(sim: SimilarityIndex, folder: Path) -> None:
    faiss.write_index(sim.index, str(folder / INDEX_FILE))
    np.save(folder / MEAN_FILE, sim.mean, allow_pickle=False)
    (folder / INFO_FILE).write_text(json.dumps({"kind": sim.kind, "n": sim.index.ntotal, "d": sim.index.d,
                                                "metric": "cosine of centred embeddings"}))


def load_index(folder: Path) -> SimilarityIndex:
    return SimilarityIndex(faiss.read_index(str(folder / INDEX_FILE)), np.load(folder / MEAN_FILE, allow_pickle=False))
