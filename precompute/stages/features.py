"""Stage ``features``: for every feature model, per-feature statistics, top galaxies, histograms and
interpretability (property correlations, novelty, truth alignment, labels, nearest and co-occurring
features, quantile and random examples)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxyml import interpret
from galaxyml.atlas import EMBEDDING_FEATURE_MODELS
from galaxyml.data.split import scoring_sample
from galaxyml.data.survey import Survey, vote_label
from galaxyml.features import (CODE_INDICES_FILE, CODE_VALUES_FILE, STATS_FILE, decoder_directions, summarise_codes,
                               write_summary)
from precompute.stage import StageContext, register
from precompute.stages.sae import REPLICATE_FILES

FEATURE_MODELS = EMBEDDING_FEATURE_MODELS
"""Stages whose sparse codes are summarised here."""
TRUTH_FACTORS = ("spiral", "bar", "ring", "merger", "edge_on", "dust_lane", "agn", "quenched", "artefact",
                 "spiral_visible", "bar_visible", "ring_visible", "merger_visible")
"""Binary generating factors of the mock universe scored by truth alignment; ``<s>_visible`` is the
structure where the image shows it (:mod:`galaxyml.data.mock.visibility`), so that a feature is measured
against what the pixels hold as well as against all the structure drawn."""


@dataclass(frozen=True)
class FeaturesConfig:
    """How features are summarised."""

    top_n: int = 30
    """Top-activating galaxies kept per feature."""
    n_bins: int = 40
    """Bins of each feature's activation histogram."""
    chunk: int = 65536
    """Galaxies read per streaming step."""
    sample_galaxies: int = 20000
    """Held-out galaxies (at most this many, seeded) used for correlations, novelty and truth alignment."""
    seed: int = 0
    """Seed of the sample and of the example galaxies."""

    def __post_init__(self) -> None:
        if self.top_n < 1 or self.n_bins < 2 or self.chunk < 1 or self.sample_galaxies < 100:
            raise ValueError("features.top_n >= 1, features.n_bins >= 2, features.chunk >= 1 and "
                             "features.sample_galaxies >= 100 are required")


def interpret_model(ctx: StageContext, model: str, folder: Path, survey: Survey, sample: np.ndarray,
                    select: np.ndarray, props: pd.DataFrame, idx: np.ndarray, val: np.ndarray, stats: pd.DataFrame,
                    out: Path, directions: np.ndarray | None = None) -> dict:
    """Correlations, novelty, labels, neighbours, examples and truth alignment of one model's features.

    ``props`` are the property rows of the held-out galaxies ``sample``
    (:func:`galaxyml.data.split.scoring_sample`); ``select`` marks those that choose a best property per
    feature and a best feature per property and per truth factor, whose scores come from the other rows.
    ``idx``/``val`` are their sparse codes, and ``stats`` the model's statistics table, extended and
    rewritten here. Nearest features are by the cosine of ``directions`` (M, d), by default the model's
    decoder directions in embedding space.
    """
    n_features = len(stats)
    acts = interpret.dense_activations(idx, val, n_features)
    rho = interpret.spearman_matrix(acts, props)
    rho.to_parquet(out / "rho.parquet", index=False)
    rho_select = interpret.spearman_matrix(acts[select], props[select].reset_index(drop=True))
    rho_score = interpret.spearman_matrix(acts[~select], props[~select].reset_index(drop=True))
    interpret.best_by_property(rho_select, rho_score).to_parquet(out / "best_by_property.parquet", index=False)
    stats = stats.copy()
    if props.shape[1]:  # each feature's best property: chosen on one part, scored on the other
        best = np.abs(rho_select.to_numpy()).argmax(1)
        stats["best_property"] = rho.columns[best]
        stats["rho_best"] = rho_score.to_numpy()[np.arange(len(rho)), best]
    else:
        stats["best_property"], stats["rho_best"] = "", 0.0
    stats["max_abs_rho"] = np.abs(stats["rho_best"])
    stats["novelty"] = interpret.novelty(acts, props)
    stats["label"] = interpret.labels_from_correlations(
        rho, names={c: f"{vote_label(c)} votes" for c in survey.vote_columns()})
    stats.to_parquet(out / STATS_FILE, index=False)
    nearest, cosine = interpret.nearest_by_cosine(
        decoder_directions(folder, model) if directions is None else directions)
    np.save(out / "nearest.npy", nearest, allow_pickle=False)
    np.save(out / "nearest_cos.npy", cosine.astype(np.float32), allow_pickle=False)
    np.save(out / "cooccurrence.npy", interpret.cooccurrence_top(idx, val, n_features), allow_pickle=False)
    rows = interpret.quantile_examples(acts, seed=ctx.cfg.seed)
    np.save(out / "quantile_examples.npy", np.where(rows >= 0, sample[np.maximum(rows, 0)], -1), allow_pickle=False)
    rng = np.random.default_rng(ctx.cfg.seed)
    rand = np.full((n_features, 12), -1, np.int64)
    for f in range(n_features):
        nz = np.nonzero(acts[:, f] > 0)[0]
        if len(nz):
            rand[f, : min(12, len(nz))] = np.sort(sample[rng.choice(nz, min(12, len(nz)), replace=False)])
    np.save(out / "random_examples.npy", rand, allow_pickle=False)
    metrics = {"mean_max_abs_rho": float(stats.loc[~stats["dead"], "max_abs_rho"].mean()),
               "median_novelty": float(stats.loc[~stats["dead"], "novelty"].median())}
    factors = [f for f in TRUTH_FACTORS if f in survey.catalog and survey.is_mock]
    if factors:
        table = interpret.truth_alignment(acts, survey.catalog[factors].iloc[sample].reset_index(drop=True), select)
        table.to_parquet(out / "truth_alignment.parquet", index=False)
        metrics["truth_alignment"] = {r.factor: round(r.auroc, 4) for r in table.itertuples()}
    return metrics


def replicate_beats_pca(sae_folder: Path, sample: np.ndarray, select: np.ndarray, props: pd.DataFrame,
                        pca_best: pd.Series) -> list[float]:
    """For each replicate SAE of the ``sae`` stage (other seeds), the share of properties on which its
    best feature (chosen on the ``select`` rows of ``sample``, |rho| on the others) beats PCA's."""
    n_latents = json.loads((sae_folder / "config.json").read_text())["n_latents"]
    shares, i = [], 1
    while (sae_folder / REPLICATE_FILES[0].format(i=i)).is_file():
        idx = np.load(sae_folder / REPLICATE_FILES[0].format(i=i), mmap_mode="r", allow_pickle=False)
        val = np.load(sae_folder / REPLICATE_FILES[1].format(i=i), mmap_mode="r", allow_pickle=False)
        acts = interpret.dense_activations(np.asarray(idx[sample]), np.asarray(val[sample]), n_latents)
        shares.append(float((interpret.held_out_best_abs_rho(acts, props, select) > pca_best).mean()))
        i += 1
    return shares


@register("features", FeaturesConfig, inputs=("survey", *FEATURE_MODELS), version=8)
def summarise_features(ctx: StageContext) -> dict:
    """Statistics, top galaxies, histograms and interpretability of every feature model."""
    survey = Survey.load(ctx.inputs["survey"])
    sample, select = scoring_sample(survey.split(), ctx.cfg.sample_galaxies, ctx.cfg.seed)
    props = survey.properties(sample)
    metrics = {}
    for model in FEATURE_MODELS:
        folder = ctx.inputs[model]
        idx = np.load(folder / CODE_INDICES_FILE, mmap_mode="r", allow_pickle=False)
        val = np.load(folder / CODE_VALUES_FILE, mmap_mode="r", allow_pickle=False)
        n_latents = json.loads((folder / "config.json").read_text())["n_latents"]
        summary = summarise_codes(idx, val, n_latents, ctx.cfg.top_n, ctx.cfg.n_bins, ctx.cfg.chunk,
                                  progress=lambda s, t, m: ctx.progress(s, t, f"{model}: {m}"))
        write_summary(summary, ctx.out / model)
        stats = summary.stats
        metrics[model] = {
            "n_features": len(stats), "dead": int(stats["dead"].sum()),
            "median_density": float(stats.loc[~stats["dead"], "density"].median()),
            "dense_over_10pct": int((stats["density"] > 0.1).sum()),
        }
        ctx.progress(0, 1, f"{model}: correlations and truth alignment")
        metrics[model].update(interpret_model(ctx, model, folder, survey, sample, select, props,
                                              np.asarray(idx[sample]), np.asarray(val[sample]), stats, ctx.out / model))
    best = {m: pd.read_parquet(ctx.out / m / "best_by_property.parquet").set_index("property")["rho"].abs()
            for m in FEATURE_MODELS}
    for model in ("sae", "matryoshka"):
        metrics[model]["beats_pca_fraction"] = float((best[model] > best["pca"]).mean())
    metrics["sae_beats_pca_fraction"] = metrics["sae"]["beats_pca_fraction"]
    seeds = replicate_beats_pca(ctx.inputs["sae"], sample, select, props, best["pca"])
    if seeds:  # the atlas's SAE and its replicates: how much "beats PCA" moves with the seed
        shares = [metrics["sae"]["beats_pca_fraction"], *seeds]
        metrics["sae"]["beats_pca_by_seed"] = shares
        metrics["sae"]["beats_pca_seed_std"] = float(np.std(shares, ddof=1))
    metrics["scored_on"] = {"split": "held_out", "n_select": int(select.sum()), "n_score": int((~select).sum())}
    return metrics
