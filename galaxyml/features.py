"""Per-feature statistics of sparse codes, computed by streaming, and the ``FeatureSet`` view.

Sparse codes are (N, k) latent indices with (N, k) values. Every statistic here reads them in
chunks, so a survey of millions of galaxies never needs a dense (N, M) activation matrix: top-N
galaxies per feature by streaming selection, density, maximum, mean, and activation histograms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

STATS_FILE = "stats.parquet"
TOP_GALAXIES_FILE = "top_galaxies.npy"
TOP_VALUES_FILE = "top_values.npy"
HIST_COUNTS_FILE = "hist_counts.npy"
HIST_EDGES_FILE = "hist_edges.npy"
CODE_INDICES_FILE = "codes_indices.npy"
CODE_VALUES_FILE = "codes_values.npy"


def decoder_directions(folder: Path, model: str) -> np.ndarray:
    """(M, d) unit direction of every feature of the model in ``folder`` (an ``sae``, ``matryoshka`` or
    ``pca`` stage), in the scaled embedding space the model was fitted in; for PCA the signed pairs
    +c_j, -c_j of the kept components, in feature order."""
    if model == "pca":
        comps = np.load(folder / "components.npy", allow_pickle=False)
        k = json.loads((folder / "config.json").read_text())["n_components"]
        return np.stack([comps[:k], -comps[:k]], axis=1).reshape(2 * k, -1)
    return load_file(str(folder / "sae.safetensors"))["W_dec"]


def iter_chunks(indices: np.ndarray, values: np.ndarray, chunk: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (first galaxy, indices, values) blocks of ``chunk`` rows, read into memory one at a time."""
    for start in range(0, len(indices), chunk):
        yield start, np.asarray(indices[start : start + chunk]), np.asarray(values[start : start + chunk])


def merge_topn(
    top_gal: np.ndarray, top_val: np.ndarray, features: np.ndarray, galaxies: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge candidate (feature, galaxy, value) triples into the running top-N tables.

    ``top_gal``/``top_val`` are (M, N), padded with -1 / -inf. Returns the new (M, N) tables,
    each row sorted by decreasing value.
    """
    m, n = top_val.shape
    feat = np.concatenate([np.repeat(np.arange(m), n), features])
    val = np.concatenate([top_val.ravel(), values])
    gal = np.concatenate([top_gal.ravel(), galaxies])
    order = np.lexsort((-val, feat))  # by feature, then by decreasing value
    feat, val, gal = feat[order], val[order], gal[order]
    counts = np.bincount(feat, minlength=m)
    starts = np.cumsum(counts) - counts
    keep = (np.arange(len(feat)) - starts[feat]) < n  # the first n of each feature's group
    return gal[keep].reshape(m, n), val[keep].reshape(m, n)


@dataclass
class FeatureSummary:
    """What :func:`summarise_codes` computes."""

    stats: pd.DataFrame
    top_galaxies: np.ndarray
    top_values: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray


def summarise_codes(
    indices: np.ndarray, values: np.ndarray, n_features: int, top_n: int = 30, n_bins: int = 40,
    chunk: int = 65536, progress: Callable[[int, int, str], None] | None = None,
) -> FeatureSummary:
    """Density, max, mean, top-N galaxies and histograms of every feature, in two streaming passes.

    Parameters
    ----------
    indices, values : (N, k) sparse codes (memory-mapped arrays are read chunk by chunk).
    n_features : M, the number of latents.
    top_n : galaxies kept per feature.
    n_bins : histogram bins per feature, spanning (0, max activation].

    Returns
    -------
    FeatureSummary with ``stats`` columns feature, n_active, density, max_activation,
    mean_activation (over all galaxies), mean_when_active, dead.
    """
    n_gal = len(indices)
    count = np.zeros(n_features, np.int64)
    total = np.zeros(n_features, np.float64)
    vmax = np.zeros(n_features, np.float64)
    top_gal = np.full((n_features, top_n), -1, np.int64)
    top_val = np.full((n_features, top_n), -np.inf, np.float32)
    for start, idx, val in iter_chunks(indices, values, chunk):
        active = val > 0
        f, v = idx[active].astype(np.int64), val[active]
        g = (start + np.nonzero(active)[0]).astype(np.int64)
        count += np.bincount(f, minlength=n_features)
        total += np.bincount(f, weights=v, minlength=n_features)
        np.maximum.at(vmax, f, v)
        top_gal, top_val = merge_topn(top_gal, top_val, f, g, v)
        if progress:
            progress(min(start + chunk, n_gal), 2 * n_gal, "top galaxies and densities")

    hist = np.zeros(n_features * n_bins, np.int64)
    safe_max = np.where(vmax > 0, vmax, 1.0)
    for start, idx, val in iter_chunks(indices, values, chunk):
        active = val > 0
        f, v = idx[active].astype(np.int64), val[active]
        b = np.minimum((v / safe_max[f] * n_bins).astype(np.int64), n_bins - 1)
        hist += np.bincount(f * n_bins + b, minlength=n_features * n_bins)
        if progress:
            progress(n_gal + min(start + chunk, n_gal), 2 * n_gal, "activation histograms")

    stats = pd.DataFrame({
        "feature": np.arange(n_features),
        "n_active": count,
        "density": count / max(n_gal, 1),
        "max_activation": vmax,
        "mean_activation": total / max(n_gal, 1),
        "mean_when_active": np.divide(total, count, out=np.zeros_like(total), where=count > 0),
        "dead": count == 0,
    })
    top_val = np.where(np.isfinite(top_val), top_val, 0.0).astype(np.float32)
    edges = np.linspace(0.0, 1.0, n_bins + 1)[None, :] * safe_max[:, None]
    return FeatureSummary(stats, top_gal, top_val, hist.reshape(n_features, n_bins), edges)


def write_summary(summary: FeatureSummary, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    summary.stats.to_parquet(folder / STATS_FILE, index=False)
    np.save(folder / TOP_GALAXIES_FILE, summary.top_galaxies, allow_pickle=False)
    np.save(folder / TOP_VALUES_FILE, summary.top_values, allow_pickle=False)
    np.save(folder / HIST_COUNTS_FILE, summary.hist_counts, allow_pickle=False)
    np.save(folder / HIST_EDGES_FILE, summary.hist_edges, allow_pickle=False)


@dataclass
class FeatureSet:
    """One uniform view of a feature model: sparse codes, per-feature statistics, top galaxies.

    Every feature model (TopK and Matryoshka SAEs, PCA, SFNet penultimate layers) is read through
    this class, so one atlas page renders any of them.
    """

    model: str
    stats: pd.DataFrame
    top_galaxies: np.ndarray
    top_values: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    code_indices: np.ndarray
    code_values: np.ndarray
    rho: pd.DataFrame | None = None
    """(M, P) Spearman rho of every feature with every catalog property."""
    nearest: np.ndarray | None = None
    """(M, 5) nearest features by decoder cosine, with ``nearest_cos``."""
    nearest_cos: np.ndarray | None = None
    cooccurrence: np.ndarray | None = None
    """(M, 5) features most often active together with each feature."""
    quantile_examples: np.ndarray | None = None
    """(M, 5, 6) galaxies from 5 activation bins (-1 padding)."""
    random_examples: np.ndarray | None = None
    """(M, 12) random galaxies on which the feature is active (-1 padding)."""
    truth_alignment: pd.DataFrame | None = None
    """Best feature and AUROC per generating factor (mock surveys): chosen on the validation galaxies,
    AUROC on the test galaxies (``auroc_select`` on the choosing ones)."""
    best_by_property: pd.DataFrame | None = None
    """Per property, the feature with the largest |rho| on the validation galaxies and its rho on the test
    galaxies (``property``, ``feature``, ``rho_select``, ``rho``)."""

    def best_abs_rho(self) -> pd.Series | None:
        """Per property, the held-out |rho| of the feature chosen for it on other galaxies (an atlas built
        before that choice was recorded: the in-sample maximum over features)."""
        if self.best_by_property is not None:
            return self.best_by_property.set_index("property")["rho"].abs()
        return None if self.rho is None else self.rho.abs().max(axis=0)

    def best_feature_for(self, prop: str) -> int:
        """The feature chosen for a property (on the validation galaxies, when the atlas records it)."""
        if self.best_by_property is not None:
            return int(self.best_by_property.set_index("property").loc[prop, "feature"])
        return int(self.rho[prop].abs().idxmax())

    @classmethod
    def load(cls, atlas, model: str = "sae") -> "FeatureSet":
        """Read the codes of stage ``model`` and their summary: from the ``features`` stage, or from
        the model's own folder for models that summarise their features themselves (SFNets)."""
        own = atlas.stage_dir(model)
        folder = own if (own / STATS_FILE).is_file() else atlas.stage_dir("features") / model
        if not folder.is_dir():
            from galaxyml.atlas import AtlasError

            raise AtlasError(f"atlas '{atlas.name}' has no feature summary for model '{model}'")
        load = lambda name: np.load(folder / name, allow_pickle=False)  # noqa: E731
        optional = lambda name: load(name) if (folder / name).is_file() else None  # noqa: E731
        table = lambda name: pd.read_parquet(folder / name) if (folder / name).is_file() else None  # noqa: E731
        return cls(
            model=model,
            stats=pd.read_parquet(folder / STATS_FILE),
            top_galaxies=load(TOP_GALAXIES_FILE),
            top_values=load(TOP_VALUES_FILE),
            hist_counts=load(HIST_COUNTS_FILE),
            hist_edges=load(HIST_EDGES_FILE),
            code_indices=atlas.load_npy(model, CODE_INDICES_FILE),
            code_values=atlas.load_npy(model, CODE_VALUES_FILE),
            rho=table("rho.parquet"),
            nearest=optional("nearest.npy"),
            nearest_cos=optional("nearest_cos.npy"),
            cooccurrence=optional("cooccurrence.npy"),
            quantile_examples=optional("quantile_examples.npy"),
            random_examples=optional("random_examples.npy"),
            truth_alignment=table("truth_alignment.parquet"),
            best_by_property=table("best_by_property.parquet"),
        )

    @property
    def n_features(self) -> int:
        return len(self.stats)

    @cached_property
    def labels(self) -> np.ndarray:
        """(M,) automatic label of every feature ("" where the summary has none)."""
        if "label" in self.stats:
            return self.stats["label"].fillna("").to_numpy(str)
        return np.full(self.n_features, "")

    def check_feature(self, feature: int) -> int:
        if not 0 <= feature < self.n_features:
            raise IndexError(f"feature {feature} does not exist: model '{self.model}' has features 0-{self.n_features - 1}")
        return int(feature)

    def top(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """Galaxy indices and activations of a feature's top galaxies (padding removed)."""
        f = self.check_feature(feature)
        keep = self.top_galaxies[f] >= 0
        return self.top_galaxies[f][keep], self.top_values[f][keep]

    def features_of(self, galaxy: int) -> pd.DataFrame:
        """The features active on one galaxy, strongest first (columns feature, activation)."""
        idx, val = np.asarray(self.code_indices[galaxy]), np.asarray(self.code_values[galaxy])
        keep = val > 0
        df = pd.DataFrame({"feature": idx[keep].astype(int), "activation": val[keep]})
        return df.sort_values("activation", ascending=False, ignore_index=True)

    def activations(self, feature: int, chunk: int = 1 << 18) -> np.ndarray:
        """Dense (N,) activation of one feature over all galaxies (zero where inactive)."""
        f = self.check_feature(feature)
        out = np.zeros(len(self.code_indices), np.float32)
        for start, idx, val in iter_chunks(self.code_indices, self.code_values, chunk):
            rows, cols = np.nonzero(idx == f)
            out[start + rows] = val[rows, cols]
        return out
