"""2-D maps of the survey: UMAP (McInnes, Healy & Melville 2018) of the galaxies' vectors after a PCA
pre-reduction whose size is chosen by measurement.

Vectors are put on the unit sphere first (embeddings centred, then L2-normalised; sparse codes
L2-normalised), so the Euclidean distance the map preserves is a monotone function of the cosine
distance that the similarity search uses (|a - b|^2 = 2 - 2 cos(a, b)).

UMAP is fitted on training galaxies (at most ``fit_max`` of them) and every other galaxy is placed by
``UMAP.transform``, so how well the map keeps neighbourhoods can be measured on galaxies the map never
saw. The measure is *neighbour preservation*: for a query galaxy, the fraction of its k nearest
neighbours in the full space (cosine) that are also among its k nearest on the map (Venna & Kaski
2006 call its complement the loss of trustworthiness). Each PCA size is scored on validation galaxies;
the chosen map is scored on test galaxies, beside a 2-D PCA map (the classical map) on the same
galaxies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
from sklearn.decomposition import PCA

from galaxyml.index import normalise


def unit_vectors(x: np.ndarray, centre: bool, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows on the unit sphere: minus ``mean`` (the rows' own mean when None) if ``centre``, then L2-normalised."""
    x = np.asarray(x, np.float32)
    if centre:
        x = x - (x.mean(0) if mean is None else mean)
    return normalise(x)


def knn(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest database rows (Euclidean, exact) of each query, the query itself left out
    when it is in the database (it is then its own first neighbour)."""
    db = faiss.IndexFlatL2(database.shape[1])
    db.add(np.ascontiguousarray(database, np.float32))
    _, nn = db.search(np.ascontiguousarray(queries, np.float32), k + 1)
    return nn[:, 1:]


def neighbour_preservation(high: np.ndarray, low: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each query row's k nearest neighbours in ``high`` that are among its k nearest in
    ``low`` (both over the same rows; the query is left out of its own neighbours)."""
    if len(queries) == 0:
        return float("nan")
    a = knn(high, high[queries], k)
    b = knn(low, low[queries], k)
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, b)]))


@dataclass
class MapResult:
    """A fitted map: coordinates of every galaxy and what was measured."""

    coords: np.ndarray
    """(N, 2) float32 map coordinates."""
    pca_dims: int | None
    """PCA components before UMAP (None: the full space)."""
    info: dict


def _umap(n_neighbors: int, min_dist: float, n_epochs: int, seed: int):
    import warnings

    import umap  # numba compiles on first use: imported only when a map is fitted

    warnings.filterwarnings("ignore", message="n_jobs value 1 overridden", category=UserWarning)

    return umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=2, n_epochs=n_epochs,
                     random_state=seed, transform_seed=seed, low_memory=True, n_jobs=1,
                     force_approximation_algorithm=True)  # below 4,096 rows UMAP otherwise loops in Python


def fit_map(x: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray, centre: bool,
            candidates: Sequence[int | None] = (None, 16), n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int = 200,
            fit_max: int = 20000, queries: int = 500, k: int = 10, seed: int = 0, chunk: int = 20000,
            progress: Callable[[int, int, str], None] | None = None) -> MapResult:
    """UMAP of ``x`` for each PCA size in ``candidates`` (None: no reduction; sizes at or above the
    dimension are dropped), fitted on up to ``fit_max`` training rows; the size with the best
    neighbour preservation of ``queries`` validation galaxies (among the fitted galaxies and themselves)
    is kept, every galaxy placed on it, and its preservation on test galaxies reported beside a 2-D PCA
    map's. Deterministic for a given ``seed``."""
    progress = progress or (lambda *a: None)
    rng = np.random.default_rng(seed)
    n, d = x.shape
    fit_rows = np.sort(rng.choice(train, min(len(train), fit_max), replace=False)) if len(train) else train
    if len(fit_rows) < n_neighbors + 2:
        raise ValueError(f"a map needs at least {n_neighbors + 2} training galaxies, this survey has {len(fit_rows)}")
    mean = np.asarray(x[fit_rows], np.float64).mean(0).astype(np.float32) if centre else None
    unit_fit = unit_vectors(x[fit_rows], centre, mean)
    val_q = np.sort(rng.choice(val, min(len(val), queries), replace=False)) if len(val) else val
    unit_val = unit_vectors(x[val_q], centre, mean)
    sizes = list(dict.fromkeys(c if c is None or c < d else None for c in candidates))
    steps = len(sizes) + 2
    scores: dict[str, float] = {}
    fitted: dict = {}
    for i, dims in enumerate(sizes):
        label = "full" if dims is None else str(dims)
        progress(i, steps, f"fitting UMAP on {len(fit_rows):,} galaxies ({label} dims)")
        pca = PCA(n_components=dims, random_state=seed).fit(unit_fit) if dims else None
        reduce = (lambda v, _p=pca: _p.transform(v).astype(np.float32)) if pca else (lambda v: v)
        model = _umap(min(n_neighbors, len(fit_rows) - 1), min_dist, n_epochs, seed).fit(reduce(unit_fit))
        fitted[label] = (dims, pca, reduce, model)
        if len(val_q):
            high = np.concatenate([unit_fit, unit_val])
            low = np.concatenate([model.embedding_, model.transform(reduce(unit_val))])
            scores[label] = neighbour_preservation(high, low, np.arange(len(unit_fit), len(high)), k)
    best = max(scores, key=scores.get) if scores else next(iter(fitted))
    dims, pca, reduce, model = fitted[best]
    coords = np.empty((n, 2), np.float32)
    in_fit = np.zeros(n, bool)
    in_fit[fit_rows] = True
    coords[fit_rows] = model.embedding_
    rest = np.flatnonzero(~in_fit)
    for s in range(0, len(rest), chunk):
        rows = rest[s : s + chunk]
        progress(len(sizes) + s / max(len(rest), 1), steps, f"placing {s + len(rows):,}/{len(rest):,} other galaxies")
        coords[rows] = model.transform(reduce(unit_vectors(x[rows], centre, mean)))
    progress(len(sizes) + 1, steps, "scoring the map on test galaxies")
    info = {"pca_dims": dims, "candidates": {k_: round(v, 4) for k_, v in scores.items()},
            "chosen_on": "validation", "n_fit": int(len(fit_rows)), "n_neighbors": n_neighbors, "min_dist": min_dist,
            "n_epochs": n_epochs, "k": k}
    test_q = np.sort(rng.choice(test, min(len(test), queries), replace=False)) if len(test) else test
    if len(test_q):
        rows = np.concatenate([fit_rows, test_q])
        high = unit_vectors(x[rows], centre, mean)
        queries_ = np.arange(len(fit_rows), len(rows))
        info["test_preservation"] = round(neighbour_preservation(high, coords[rows], queries_, k), 4)
        flat = PCA(n_components=2, random_state=seed).fit(unit_fit).transform(high).astype(np.float32)
        info["pca2_test_preservation"] = round(neighbour_preservation(high, flat, queries_, k), 4)
        info["n_test_queries"] = int(len(test_q))
    progress(steps, steps, "map done")
    return MapResult(coords, dims, info)
