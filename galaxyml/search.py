"""Finding galaxies: by sky position, by a set of positive and negative examples, and how well a
neighbour search retrieves galaxies that share a structure.

Two spaces are searched: the embeddings (centred, cosine; :mod:`galaxyml.index`) and the sparse SAE
codes (cosine of the L2-normalised activation vectors, so two galaxies are close when the same
features fire with similar strengths).

Example-set search ranks every galaxy by a query built from several examples: Rocchio's relevance
feedback (Rocchio 1971; q = mean(positives) - beta * mean(negatives) on unit vectors) or, with enough
of both, a logistic-regression classifier of positives against negatives whose decision function
ranks the survey.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from galaxyml.index import normalise

STRUCTURE_FLAGS = ("spiral", "bar", "ring", "merger", "edge_on", "dust_lane", "agn", "artefact")
"""Truth flags of the mock whose retrieval is measured (and, where the mock records it, the visible
version ``<flag>_visible``: what an image shows)."""


def dense_codes(indices: np.ndarray, values: np.ndarray, n_latents: int, rows: slice | np.ndarray | None = None
                ) -> np.ndarray:
    """(N, n_latents) float32 activations from the top-k (indices, values) layout of the SAE stages."""
    idx = np.asarray(indices[rows] if rows is not None else indices)
    val = np.asarray(values[rows] if rows is not None else values, np.float32)
    out = np.zeros((len(idx), n_latents), np.float32)
    np.put_along_axis(out, idx.astype(np.int64), np.maximum(val, 0.0), axis=1)
    return out


def rocchio(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray | None = None,
            beta: float = 0.5) -> np.ndarray:
    """Rocchio query: the mean of the positives' unit vectors minus ``beta`` times the negatives'."""
    unit = normalise(vectors[positives])
    q = unit.mean(axis=0)
    if negatives is not None and len(negatives):
        q = q - beta * normalise(vectors[negatives]).mean(axis=0)
    return q


def example_scores(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
                   method: str = "auto") -> tuple[np.ndarray, str]:
    """A score for every row (higher: more like the positives): Rocchio, or with at least 3 positives and
    3 negatives (``auto``) a logistic classifier's decision function. Returns (scores, method used)."""
    positives, negatives = np.asarray(positives, int), np.asarray(negatives, int)
    if len(positives) == 0:
        raise ValueError("give at least one positive example")
    if set(positives.tolist()) & set(negatives.tolist()):
        raise ValueError("a galaxy cannot be both a positive and a negative example")
    use_logistic = method == "logistic" or (method == "auto" and len(positives) >= 3 and len(negatives) >= 3)
    unit = normalise(vectors)
    if use_logistic:
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([unit[positives], unit[negatives]])
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, y)
        return clf.decision_function(unit), "logistic"
    return unit @ normalise(rocchio(vectors, positives, negatives)[None])[0], "rocchio"


def precision_at_k(neighbours: np.ndarray, flag: np.ndarray, k: int = 10) -> float:
    """Mean share of the first ``k`` neighbours (rows of indices) that have ``flag``."""
    return float(flag[neighbours[:, :k]].mean()) if len(neighbours) else float("nan")


def retrieval_table(search, vectors: np.ndarray, catalog: pd.DataFrame, queries: np.ndarray, k: int = 10,
                    max_queries: int = 300, n_examples: int = 5, seed: int = 0) -> dict[str, dict]:
    """Per structure flag: precision@k of the neighbours of held-out galaxies with the flag (the query
    itself left out), the flag's base rate, and the precision@k of an example-set query (``n_examples``
    positives and as many negatives drawn from the queries; its top k among the other galaxies).

    ``search(rows, k)`` returns (similarities, indices) of the k nearest galaxies of those rows."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict] = {}
    for name in [c for f in STRUCTURE_FLAGS for c in (f, f"{f}_visible") if c in catalog]:
        flag = catalog[name].to_numpy().astype(bool)
        with_flag = queries[flag[queries]]
        if len(with_flag) < 2:
            continue
        q = rng.choice(with_flag, min(len(with_flag), max_queries), replace=False)
        _, nn = search(q, k + 1)
        nn = np.array([[j for j in row if j != i and j >= 0][:k] for i, row in zip(q, nn)])
        entry = {"p10": precision_at_k(nn, flag, k), "base_rate": float(flag.mean()), "n_queries": int(len(q))}
        without = queries[~flag[queries]]
        if len(with_flag) >= n_examples + k and len(without) >= n_examples:
            trials = []
            for _ in range(10):
                pos = rng.choice(with_flag, n_examples, replace=False)
                neg = rng.choice(without, n_examples, replace=False)
                scores, method = example_scores(vectors, pos, neg)
                scores[np.r_[pos, neg]] = -np.inf
                trials.append(flag[np.argsort(-scores)[:k]].mean())
            entry["p10_examples"] = float(np.mean(trials))
            entry["examples"] = f"{n_examples} positives + {n_examples} negatives ({method})"
        out[name] = entry
    return out


_SEXAGESIMAL = re.compile(r"[hdms:°′″'\"]")


def parse_position(text: str):
    """An astropy ``SkyCoord`` from 'RA Dec' in degrees ('150.1 2.2', '150.1, -2.2') or sexagesimal
    ('10h00m28.6s +02d12m21s', '10:00:28.6 +02:12:21'); raises ValueError naming what is wrong."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    parts = text.replace(",", " ").split()
    if len(parts) < 2:
        raise ValueError(f"'{text}': give RA and Dec, e.g. '150.1 2.2' (degrees) or '10h00m28s +02d12m21s'")
    try:
        if _SEXAGESIMAL.search(text) or len(parts) == 6:
            ra, dec = (" ".join(parts[:3]), " ".join(parts[3:])) if len(parts) == 6 else (parts[0], parts[1])
            return SkyCoord(ra, dec, unit=(u.hourangle, u.deg))
        ra, dec = float(parts[0]), float(parts[1])
    except (ValueError, TypeError) as e:
        raise ValueError(f"'{text}' is not a sky position ({e})") from e
    if not 0 <= ra < 360 or not -90 <= dec <= 90:
        raise ValueError(f"RA must be in [0, 360) and Dec in [-90, 90] degrees; got RA {ra}, Dec {dec}")
    return SkyCoord(ra * u.deg, dec * u.deg)


def nearest_galaxy(catalog: pd.DataFrame, position) -> tuple[int, float]:
    """Row of the catalog galaxy nearest to ``position`` (a SkyCoord) and its separation in arcsec."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if not {"ra", "dec"} <= set(catalog):
        raise ValueError("this survey's catalog has no ra / dec columns: search by position needs them")
    ok = np.isfinite(catalog["ra"].to_numpy()) & np.isfinite(catalog["dec"].to_numpy())
    rows = np.nonzero(ok)[0]
    if not len(rows):
        raise ValueError("no galaxy of this survey has a finite ra / dec")
    cat = SkyCoord(catalog["ra"].to_numpy()[rows] * u.deg, catalog["dec"].to_numpy()[rows] * u.deg)
    i, sep, _ = position.match_to_catalog_sky(cat)
    return int(rows[int(np.ravel(i)[0])]), float(np.ravel(sep.to(u.arcsec).value)[0])
