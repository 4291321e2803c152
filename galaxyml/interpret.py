"""Interpretability of features: how each one relates to catalog properties and to the truth.

All functions take a dense (n, M) activation matrix of a sample of galaxies (the caller draws it from
the sparse codes) and work on every feature at once:

- Spearman rank correlation of every feature with every property (Pearson correlation of ranks);
- novelty = 1 - R^2 of a least-squares fit of a feature's activation on all properties: a feature
  that no property explains is new;
- truth alignment: for a binary factor, the best feature's AUROC (Mann-Whitney from ranks);
- automatic labels from the most correlated properties ("high g_r, low spiral votes");
- ablation effects: what removing a feature from the embeddings does to a model reading them;
- a Matryoshka feature's group and its closest coarser and finer features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def dense_activations(indices: np.ndarray, values: np.ndarray, n_features: int) -> np.ndarray:
    """(n, k) sparse codes -> (n, M) dense float32 activations."""
    out = np.zeros((len(indices), n_features), np.float32)
    np.put_along_axis(out, np.asarray(indices, np.int64), np.asarray(values, np.float32), axis=1)
    return out


def _standardised_ranks(x: np.ndarray) -> np.ndarray:
    """Column-wise average ranks, centred and scaled to unit norm (zero for constant columns)."""
    r = rankdata(x, axis=0).astype(np.float64)
    r -= r.mean(0)
    norm = np.linalg.norm(r, axis=0)
    return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)


def spearman_matrix(acts: np.ndarray, props: pd.DataFrame) -> pd.DataFrame:
    """(M, P) Spearman rho of every feature with every property column.

    Rows with a missing property value are left out of that property's correlation.
    """
    ra = _standardised_ranks(acts)
    out = np.zeros((acts.shape[1], props.shape[1]))
    for j, col in enumerate(props.columns):
        y = props[col].to_numpy(np.float64)
        ok = np.isfinite(y)
        if ok.sum() < 10:
            continue
        a = ra if ok.all() else _standardised_ranks(acts[ok])
        out[:, j] = a.T @ _standardised_ranks(y[ok, None])[:, 0]
    return pd.DataFrame(out, columns=props.columns)


def novelty(acts: np.ndarray, props: pd.DataFrame) -> np.ndarray:
    """1 - R^2 of each feature's activation regressed (least squares) on all properties.

    Missing property values are filled with the column median; properties are standardised.
    Dead features (constant activation) get novelty 0 (nothing to explain).
    """
    p = props.to_numpy(np.float64)
    p = np.where(np.isfinite(p), p, np.nanmedian(p, axis=0))
    p = (p - p.mean(0)) / np.where(p.std(0) > 0, p.std(0), 1.0)
    design = np.column_stack([np.ones(len(p)), p])
    y = acts.astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    total = ((y - y.mean(0)) ** 2).sum(0)
    return np.where(total > 0, (resid**2).sum(0) / np.where(total > 0, total, 1.0), 0.0)


def auroc_matrix(acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M,) AUROC of every feature's activation as a score for the binary ``labels``."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return np.full(acts.shape[1], np.nan)
    ranks = rankdata(acts, axis=0)
    return (ranks[labels].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def truth_alignment(acts: np.ndarray, truth: pd.DataFrame, select: np.ndarray | None = None) -> pd.DataFrame:
    """For each binary truth factor: the best single feature and its AUROC.

    A feature can align with a factor through its absence, so AUROC below 0.5 counts as 1 - AUROC.
    With ``select`` (a boolean mask over the rows), the best feature and its direction are chosen on the
    selected rows and its AUROC is reported on the others (``auroc``), the choosing rows' beside it
    (``auroc_select``): the best of many features scored on the rows that chose it reads too high.
    """
    rows = []
    sel = np.ones(len(acts), bool) if select is None else np.asarray(select, bool)
    score_rows = sel if select is None else ~sel
    for factor in truth.columns:
        labels = truth[factor].to_numpy() > 0
        auc = auroc_matrix(acts[sel], labels[sel])
        if np.all(np.isnan(auc)):
            continue
        score = np.maximum(auc, 1 - auc)
        best = int(np.nanargmax(score))
        high = auc[best] >= 0.5
        held = auroc_matrix(acts[score_rows][:, [best]], labels[score_rows])[0]
        if np.isnan(held):
            continue
        rows.append({"factor": factor, "feature": best, "auroc": float(held if high else 1 - held),
                     "auroc_select": float(score[best]), "direction": "high" if high else "low",
                     "n_positive": int(labels[score_rows].sum()), "n": int(score_rows.sum())})
    return pd.DataFrame(rows)


def best_by_property(rho_select: pd.DataFrame, rho_score: pd.DataFrame) -> pd.DataFrame:
    """Per property, the feature with the largest |rho| on the choosing rows (``rho_select``) and its
    rho on the scoring rows (``rho_score``, same shape): an unbiased "best feature for a property"."""
    best = np.abs(rho_select.to_numpy()).argmax(0)
    cols = np.arange(rho_select.shape[1])
    return pd.DataFrame({"property": rho_select.columns, "feature": best,
                         "rho_select": rho_select.to_numpy()[best, cols], "rho": rho_score.to_numpy()[best, cols]})


def held_out_best_abs_rho(acts: np.ndarray, props: pd.DataFrame, select: np.ndarray) -> pd.Series:
    """Per property, the |rho| on the rows not in ``select`` of the feature with the largest |rho| on the
    ``select`` rows (see :func:`best_by_property`)."""
    table = best_by_property(spearman_matrix(acts[select], props[select].reset_index(drop=True)),
                             spearman_matrix(acts[~select], props[~select].reset_index(drop=True)))
    return table.set_index("property")["rho"].abs()


def labels_from_correlations(rho: pd.DataFrame, n_terms: int = 2, min_abs_rho: float = 0.3,
                             names: dict[str, str] | None = None) -> list[str]:
    """An automatic label per feature from its most correlated properties ("high g_r, low z"), each
    property written as ``names`` gives it (its column name otherwise)."""
    out = []
    values = rho.to_numpy()
    shown = [(names or {}).get(c, c) for c in rho.columns]
    for row in values:
        order = np.argsort(-np.abs(row))[:n_terms]
        terms = [f"{'high' if row[j] > 0 else 'low'} {shown[j]}" for j in order if abs(row[j]) >= min_abs_rho]
        out.append(", ".join(terms) if terms else "unexplained by catalog properties")
    return out


def cooccurrence_top(indices: np.ndarray, values: np.ndarray, n_features: int, top: int = 5) -> np.ndarray:
    """(M, top) features most often active together with each feature (-1 where none)."""
    from scipy.sparse import csr_matrix

    idx = np.asarray(indices, np.int64)
    active = np.asarray(values) > 0
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])[active.ravel()]
    a = csr_matrix((np.ones(len(rows), np.float32), (rows, idx.ravel()[active.ravel()])),
                   shape=(len(idx), n_features))
    co = (a.T @ a).toarray()
    np.fill_diagonal(co, -1)
    order = np.argsort(-co, axis=1)[:, :top]
    return np.where(np.take_along_axis(co, order, 1) > 0, order, -1)


def nearest_by_cosine(directions: np.ndarray, top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(M, top) nearest features by cosine of their decoder directions, and the cosines."""
    d = directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    cos = d @ d.T
    np.fill_diagonal(cos, -np.inf)
    order = np.argsort(-cos, axis=1)[:, :top]
    return order, np.take_along_axis(cos, order, 1)


def quantile_examples(acts: np.ndarray, n_bins: int = 5, per_bin: int = 6, seed: int = 0) -> np.ndarray:
    """(M, n_bins, per_bin) galaxy rows sampled from equal-width bins of each feature's non-zero
    activations (lowest bin first; -1 where a bin has fewer galaxies)."""
    rng = np.random.default_rng(seed)
    m = acts.shape[1]
    out = np.full((m, n_bins, per_bin), -1, np.int64)
    for f in range(m):
        a = acts[:, f]
        nz = np.nonzero(a > 0)[0]
        if not len(nz):
            continue
        lo, hi = a[nz].min(), a[nz].max()
        if hi > lo:
            which = np.clip(((a[nz] - lo) / (hi - lo) * n_bins).astype(int), 0, n_bins - 1)
        else:  # a single activation value: it is both the weakest and the strongest
            which = np.zeros(len(nz), int)
        for b in range(n_bins):
            pool = nz[which == b]
            if len(pool):
                pick = rng.choice(pool, min(per_bin, len(pool)), replace=False)
                out[f, b, : len(pick)] = np.sort(pick)
    return out


def ablation_effects(embeddings: np.ndarray, activations: np.ndarray, direction: np.ndarray,
                     predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mean change of a downstream model's outputs caused by one feature on the given galaxies:
    predict(z) - predict(z - a d), averaged over the rows, where z (n, D) are the galaxies' embeddings,
    a (n,) the feature's activations and d (D,) what one unit of activation adds to an embedding.

    This is the "logit effect" panel of SAE feature dashboards (Bricken et al. 2023, Towards
    Monosemanticity) as an ablation: remove the feature from the embedding and read the head again,
    so the softmax of each question is taken into account rather than a direct linear path.
    """
    z = np.asarray(embeddings, np.float32)
    a = np.asarray(activations, np.float32)[:, None]
    return (predict(z) - predict(z - a * np.asarray(direction, np.float32)[None, :])).mean(0)


def matryoshka_family(directions: np.ndarray, group_sizes: Sequence[int], feature: int, top: int = 3) -> dict:
    """Where one feature of a Matryoshka SAE sits in its nesting (Bussmann et al. 2025, Learning
    Multi-Level Features with Matryoshka Sparse Autoencoders): its group (0-based), the group's latent
    range, and the features of earlier groups (coarser: they must reconstruct without the later ones)
    and of later groups (finer) closest to it by decoder cosine, each as (features, cosines).
    """
    ends = np.cumsum(group_sizes)
    if not 0 <= feature < ends[-1]:
        raise IndexError(f"feature {feature} is outside the {int(ends[-1])} latents of the groups")
    group = int(np.searchsorted(ends, feature, side="right"))
    first = int(ends[group - 1]) if group else 0
    d = directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    cos = d @ d[feature]

    def closest(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        idx = lo + np.argsort(-cos[lo:hi])[:top]
        return idx, cos[idx]

    return {"group": group, "n_groups": len(ends), "first": first, "last": int(ends[group]) - 1,
            "coarser": closest(0, first), "finer": closest(int(ends[group]), int(ends[-1]))}


PROPERTY_WORDS = {
    ("metallicity", "gas metallicity", "oxygen abundance", "12+log(o/h)"): ("oh_12", "oh_p50"),
    ("stellar mass", "mass"): ("log_mstar", "lgm_tot_p50"),
    ("star formation rate", "star formation", "sfr"): ("log_sfr", "sfr_tot_p50"),
    ("specific star formation rate", "specific star formation", "ssfr"): ("log_ssfr", "specsfr_tot_p50"),
    ("colour", "color"): ("g_r",),
    ("redshift",): ("z",),
    ("size", "radius", "half-light radius"): ("r50_kpc",),
    ("bulge", "bulge fraction"): ("bulge_to_total",),
    ("inclination",): ("cos_incl",),
    ("brightness", "magnitude"): ("mag_r",),
}
"""Words a person may search by, and the catalog columns (mock first, MPA-JHU after) they mean."""


def search_text(query: str) -> str:
    """A feature search without its phrasing: "Features correlated with Metallicity" -> "metallicity"."""
    q = query.strip().lower()
    for prefix in ("features correlated with ", "correlated with ", "features of ", "features for "):
        q = q.removeprefix(prefix)
    return q.strip()


def property_for_query(query: str, columns: Sequence[str]) -> str | None:
    """The catalog property a search means ("features correlated with metallicity" -> ``oh_12``): a
    column named exactly, a word of :data:`PROPERTY_WORDS`, or the one column whose name contains the
    query; None when the query names no single property (search the labels then)."""
    q = search_text(query)
    by_lower = {c.lower(): c for c in columns}
    if q in by_lower:
        return by_lower[q]
    for words, candidates in PROPERTY_WORDS.items():
        if q in words:
            return next((c for c in candidates if c in columns), None)
    partial = [c for c in columns if q and q in c.lower()]
    return partial[0] if len(partial) == 1 else None
