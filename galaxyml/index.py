"""Similarity search over galaxy embeddings with FAISS (Douze et al. 2024, arXiv:2401.08281).

Embeddings are L2-normalised, so inner product is cosine similarity. The index type follows the
survey size: exact (``IndexFlatIP``) below ``EXACT_MAX_ROWS``, HNSW graph search above.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

EXACT_MAX_ROWS = 100_000
INDEX_FILE = "embeddings.faiss"
INFO_FILE = "index.json"


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, C-contiguous, as FAISS expects)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def build_index(embeddings: np.ndarray, chunk: int = 65536, hnsw_m: int = 32) -> faiss.Index:
    """Index (N, D) embeddings, added in chunks so a memory-mapped array is streamed."""
    n, d = embeddings.shape
    index = faiss.IndexFlatIP(d) if n <= EXACT_MAX_ROWS else faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    for start in range(0, n, chunk):
        index.add(normalise(embeddings[start : start + chunk]))
    return index


def save_index(index: faiss.Index, folder: Path) -> None:
    faiss.write_index(index, str(folder / INDEX_FILE))
    kind = "exact (IndexFlatIP)" if isinstance(index, faiss.IndexFlatIP) else "HNSW (IndexHNSWFlat)"
    (folder / INFO_FILE).write_text(json.dumps({"kind": kind, "n": index.ntotal, "d": index.d, "metric": "cosine"}))


def load_index(folder: Path) -> faiss.Index:
    return faiss.read_index(str(folder / INDEX_FILE))


def search(index: faiss.Index, queries: np.ndarray, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and galaxy indices of the k nearest neighbours of each query row."""
    sims, ids = index.search(normalise(np.atleast_2d(queries)), k)
    return sims, ids
