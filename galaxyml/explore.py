"""What a selection of galaxies on the survey map is: range filters on catalog columns (as a deep-link
expression), which sparse features fire more often in the selection than in the survey, and how its
properties differ from the survey's.

Feature enrichment: a feature *fires* in a galaxy when it is among the galaxy's top-k SAE activations
with a positive value. With N galaxies in view, K of which fire the feature, and a selection of n
holding a firing ones, the one-sided p-value of drawing at least a firing galaxies in n draws without
replacement is the hypergeometric tail P(X >= a), X ~ Hypergeom(N, K, n) (Fisher's exact test, one
sided). The p-values of all features are corrected for multiple testing by Benjamini & Hochberg
(1995): q-values controlling the false discovery rate.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy import stats

FILTER_SEPARATOR = ";"


def parse_filters(text: str, columns) -> dict[str, tuple[float, float]]:
    """``col:lo:hi;col2:lo:hi`` (either bound may be empty: unbounded) -> {column: (lo, hi)}; a
    ValueError names the part that cannot be read or the column that does not exist."""
    out: dict[str, tuple[float, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(FILTER_SEPARATOR))):
        bits = part.rsplit(":", 2)
        if len(bits) != 3:
            raise ValueError(f"cannot read the filter '{part}': write column:min:max (e.g. z:0.05:0.1)")
        name, lo, hi = bits
        if name not in columns:
            raise ValueError(f"the filter '{part}' names the column '{name}', which this catalog does not have")
        try:
            bounds = (float(lo) if lo.strip() else -math.inf, float(hi) if hi.strip() else math.inf)
        except ValueError:
            raise ValueError(f"cannot read the bounds of the filter '{part}': they must be numbers") from None
        if bounds[0] > bounds[1]:
            raise ValueError(f"the filter '{part}' has its minimum above its maximum")
        out[name] = bounds
    return out


def format_filters(ranges: dict[str, tuple[float, float]]) -> str:
    """The deep-link expression of ``ranges`` (inverse of :func:`parse_filters`)."""
    def num(v: float) -> str:
        return "" if math.isinf(v) else f"{v:.6g}"

    return FILTER_SEPARATOR.join(f"{c}:{num(lo)}:{num(hi)}" for c, (lo, hi) in ranges.items())


def filter_mask(catalog: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    """Galaxies inside every range (a galaxy with no value in a filtered column is left out)."""
    keep = np.ones(len(catalog), bool)
    for col, (lo, hi) in ranges.items():
        v = pd.to_numeric(catalog[col], errors="coerce").to_numpy(np.float64)
        keep &= (v >= lo) & (v <= hi)
    return keep


def parse_id_list(text: str) -> list[str]:
    """Galaxy ids separated by commas, spaces, semicolons or lines."""
    return [t for t in re.split(r"[\s,;]+", text.strip()) if t]


def fire_counts(indices: np.ndarray, values: np.ndarray, rows: np.ndarray, n_features: int,
                chunk: int = 1 << 18) -> np.ndarray:
    """How many of ``rows`` each feature fires in (top-k layout of the SAE stages), streamed."""
    counts = np.zeros(n_features, np.int64)
    rows = np.sort(np.asarray(rows, np.int64))
    for s in range(0, len(rows), chunk):
        r = rows[s : s + chunk]
        idx, val = np.asarray(indices[r]), np.asarray(values[r])
        counts += np.bincount(idx[val > 0].ravel().astype(np.int64), minlength=n_features)[:n_features]
    return counts


def enrichment(selected: np.ndarray, in_view: np.ndarray, indices: np.ndarray, values: np.ndarray,
               n_features: int, min_count: int = 3) -> pd.DataFrame:
    """Features firing more often in the ``selected`` rows than in the rows ``in_view`` (selection included):
    counts, rates, enrichment ratio, one-sided hypergeometric p and Benjamini-Hochberg q, sorted by q then
    ratio. Features firing in fewer than ``min_count`` selected galaxies are left out of the table (they
    still count in the correction)."""
    selected = np.intersect1d(selected, in_view)
    n_view, n_sel = len(in_view), len(selected)
    if n_sel == 0 or n_view == 0:
        return pd.DataFrame(columns=["feature", "in_selection", "selection_rate", "survey_rate", "ratio", "p", "q"])
    k_view = fire_counts(indices, values, in_view, n_features)
    a_sel = fire_counts(indices, values, selected, n_features)
    p = stats.hypergeom.sf(a_sel - 1, n_view, k_view, n_sel)
    p = np.where(a_sel > 0, np.clip(p, 0.0, 1.0), 1.0)
    q = stats.false_discovery_control(p, method="bh")
    sel_rate, view_rate = a_sel / n_sel, k_view / n_view
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(view_rate > 0, sel_rate / view_rate, np.nan)
    table = pd.DataFrame({"feature": np.arange(n_features), "in_selection": a_sel, "selection_rate": sel_rate,
                          "survey_rate": view_rate, "ratio": ratio, "p": p, "q": q})
    table = table[(table["in_selection"] >= min_count) & (table["ratio"] > 1)]
    return table.sort_values(["q", "ratio"], ascending=[True, False]).reset_index(drop=True)


def property_shifts(catalog: pd.DataFrame, selected: np.ndarray, in_view: np.ndarray, columns,
                    max_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """For each numeric column: the selection's and the survey's (in view) medians and the two-sample
    Kolmogorov-Smirnov statistic and p-value (selection against the rest in view), largest first; with
    ``max_rows``, each side is a seeded random sample of at most that many galaxies (the test stays exact
    for the samples; only its power drops)."""
    rest = np.setdiff1d(in_view, selected)
    if max_rows:
        rng = np.random.default_rng(seed)
        selected, rest, in_view = (np.sort(rng.choice(r, max_rows, replace=False)) if len(r) > max_rows else r
                                   for r in (selected, rest, in_view))
    rows = []
    for col in columns:
        v = pd.to_numeric(catalog[col], errors="coerce").to_numpy(np.float64)
        a, b = v[selected], v[rest]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        ks = stats.ks_2samp(a, b)
        rows.append({"property": col, "selection_median": float(np.median(a)), "survey_median":
                     float(np.median(v[in_view][np.isfinite(v[in_view])])), "ks": float(ks.statistic),
                     "p": float(ks.pvalue)})
    table = pd.DataFrame(rows, columns=["property", "selection_median", "survey_median", "ks", "p"])
    if len(table):
        table["q"] = stats.false_discovery_control(table["p"].to_numpy(), method="bh")
    return table.sort_values("ks", ascending=False).reset_index(drop=True)
