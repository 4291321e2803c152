"""Stage ``probes``: linear probes from the embeddings to every catalog property, astroPT's
downstream test (Smith et al. 2024): how much of each property a linear map of the embedding
recovers. When the atlas's embeddings come from elsewhere (the vote network, a file), the
astroPT-style encoder's embeddings are probed too, so the two can be compared.

The probes are fitted and scored (cross-validated) on the held-out galaxies only, the validation and
test splits: the embedding networks never trained on them, so a network that memorised its training
galaxies' labels (the vote network, whose votes the mock derives from the truth) cannot flatter them.

Continuous properties get a ridge regression (regularisation chosen by internal cross-validation)
scored by the cross-validated R2; binary properties (flags such as bar or AGN) get an L2 logistic
regression scored by cross-validated accuracy and AUROC, with the majority-class accuracy beside it
as the baseline. Embeddings are standardised per dimension inside each fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from galaxyml.data.survey import Survey
from precompute.stage import StageContext, StageNotApplicable, register
from precompute.stages.embeddings import EmbeddingsConfig, embeddings_source, encode_survey
from precompute.stages.sae import load_embeddings

PROBES_FILE = "probes.parquet"
ENCODER_PROBES_FILE = "probes_encoder.parquet"


@dataclass(frozen=True)
class ProbesConfig:
    """Linear-probe evaluation."""

    folds: int = 5
    """Cross-validation folds."""
    sample_galaxies: int = 20000
    """Held-out galaxies (at most this many, seeded) the probes are fitted and cross-validated on."""
    min_class_count: int = 10
    """Binary properties need this many galaxies in the rarer class to be probed."""
    seed: int = 0
    """Seed of the sample and the folds."""
    compare_encoder: bool = True
    """Also probe the astroPT-style encoder's embeddings (light-pooled) when the atlas's embeddings come
    from elsewhere, for the comparison on the predictions page."""

    def __post_init__(self) -> None:
        if self.folds < 2 or self.sample_galaxies < 50 or self.min_class_count < 2:
            raise ValueError("probes.folds >= 2, probes.sample_galaxies >= 50 and probes.min_class_count >= 2")


def probe_property(x: np.ndarray, y: np.ndarray, folds: int, seed: int, min_class_count: int) -> dict | None:
    """Cross-validated score of a linear probe x -> y (rows with a non-finite y are left out)."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    values = np.unique(y)
    if len(values) < 2 or len(y) < 2 * folds:
        return None
    if len(values) == 2:
        labels = (y == values[1]).astype(int)
        if min(labels.sum(), len(labels) - labels.sum()) < max(min_class_count, folds):
            return None
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200))
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        proba = cross_val_predict(model, x, labels, cv=cv, method="predict_proba")[:, 1]
        return {"kind": "binary", "score": accuracy_score(labels, proba > 0.5), "metric": "accuracy",
                "auroc": roc_auc_score(labels, proba), "baseline": max(labels.mean(), 1 - labels.mean()), "n": len(y)}
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    pred = cross_val_predict(model, x, y, cv=KFold(folds, shuffle=True, random_state=seed))
    return {"kind": "continuous", "score": r2_score(y, pred), "metric": "r2",
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2))), "baseline": 0.0, "n": len(y)}


def probe_table(x: np.ndarray, props: pd.DataFrame, units: dict, cfg: ProbesConfig,
                progress: Callable[[int, int, str], None]) -> pd.DataFrame:
    """One row per probed property of ``props`` (the rows of ``x``)."""
    rows = []
    for i, col in enumerate(props.columns):
        progress(i, len(props.columns), f"probing {col}")
        result = probe_property(x, props[col].to_numpy(np.float64), cfg.folds, cfg.seed, cfg.min_class_count)
        if result is not None:
            rows.append({"property": col, "unit": units.get(col, ""), **result})
    return pd.DataFrame(rows, columns=["property", "unit", "kind", "score", "metric", "auroc", "baseline", "rmse", "n"])


def median_r2(table: pd.DataFrame) -> float | None:
    """The median cross-validated R2 of a probe table's continuous properties (None without any)."""
    cont = table[table["kind"] == "continuous"]
    return float(cont["score"].median()) if len(cont) else None


def _reads(cfg: ProbesConfig, built: set[str]) -> set[str]:
    return {"survey", "embeddings", "encoder"} if cfg.compare_encoder else {"survey", "embeddings"}


@register("probes", ProbesConfig, inputs=("survey", "embeddings", "encoder"), optional=("encoder",), reads=_reads,
          version=3)
def linear_probes(ctx: StageContext) -> dict:
    """Cross-validated ridge / logistic probes from the embeddings to every catalog property."""
    cfg: ProbesConfig = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    emb = load_embeddings(ctx)
    rng = np.random.default_rng(cfg.seed)
    held_out = survey.split().held_out
    sample = np.sort(rng.choice(held_out, min(len(held_out), cfg.sample_galaxies), replace=False))
    props = survey.properties(sample)
    units = survey.meta.get("units", {})
    table = probe_table(np.asarray(emb[sample], np.float64), props, units, cfg, ctx.progress)
    if table.empty:
        raise StageNotApplicable(f"no catalog property of the {len(sample)} held-out galaxies can be probed (a "
                                 f"property needs {2 * cfg.folds} finite values that are not all equal, a flag "
                                 f"{cfg.min_class_count} galaxies in each class)")
    table.to_parquet(ctx.out / PROBES_FILE, index=False)
    cont = table[table["kind"] == "continuous"]
    binary = table[table["kind"] == "binary"]
    metrics = {"n_properties": len(table), "r2": dict(zip(cont["property"], cont["score"].round(4))),
               "auroc": dict(zip(binary["property"], binary["auroc"].astype(float).round(4))),
               "median_r2": median_r2(table), "n_galaxies": len(sample), "scored_on": "held_out"}
    if cfg.compare_encoder and "encoder" in ctx.inputs and embeddings_source(ctx.inputs["embeddings"]) != "encoder":
        pooling = EmbeddingsConfig().pooling
        enc = encode_survey(ctx.inputs["encoder"], survey, pooling, 256,
                            lambda s, t, m: ctx.progress(s, t, f"astroPT encoder: {m}"), rows=sample)
        other = probe_table(enc.astype(np.float64), props, units, cfg,
                            lambda s, t, m: ctx.progress(s, t, f"astroPT encoder embeddings: {m}"))
        other.to_parquet(ctx.out / ENCODER_PROBES_FILE, index=False)
        metrics["encoder_median_r2"] = median_r2(other)
    return metrics
