"""Stage ``features``: per-feature statistics, top galaxies and histograms of each feature model."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE, summarise_codes, write_summary
from precompute.stage import StageContext, register

FEATURE_MODELS = ("sae", "matryoshka", "pca")
"""Stages whose sparse codes are summarised here."""


@dataclass(frozen=True)
class FeaturesConfig:
    """How features are summarised."""

    top_n: int = 30
    """Top-activating galaxies kept per feature."""
    n_bins: int = 40
    """Bins of each feature's activation histogram."""
    chunk: int = 65536
    """Galaxies read per streaming step."""

    def __post_init__(self) -> None:
        if self.top_n < 1 or self.n_bins < 2 or self.chunk < 1:
            raise ValueError("features.top_n must be >= 1, features.n_bins >= 2 and features.chunk >= 1")


@register("features", FeaturesConfig, inputs=FEATURE_MODELS)
def summarise_features(ctx: StageContext) -> dict:
    """Density, max, mean, top galaxies and histograms of every feature, by streaming selection."""
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
    return metrics
