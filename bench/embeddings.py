"""How informative and well-spread are an atlas's embeddings?

Prints the share of variance in the first principal components, the effective rank
(exp of the entropy of the normalised PCA spectrum, Roy & Vetterli 2007), 3-fold
cross-validated ridge-probe R^2 from the standardised embeddings to catalog properties, and
(mock surveys) logistic-probe AUROC for each binary generating factor: an upper bound on what
any single sparse feature can reach in truth alignment. With ``--supervised EPOCHS`` it also
trains a CNN (the demo SFNet, all features kept) on the images to predict every factor
at once and prints its test AUROC: what the images themselves allow, whatever the embedding, beside
the atlas's truth alignment (each model's best feature, chosen on the validation galaxies and scored
on the test galaxies) and its gap to that ceiling. Everything is on the survey's split: probes are
cross-validated on the held-out galaxies, the CNN trains on the train split, stops early on the
validation split and is scored on the test split. Factors include the visible structure
(``<s>_visible``) of the mock.

    python bench/embeddings.py --run demo [--home runs] [--supervised 14]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression, RidgeCV  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import cross_val_predict, cross_val_score  # noqa: E402

from galaxyml.atlas import Atlas, home  # noqa: E402

from precompute.stages.features import TRUTH_FACTORS as FACTORS  # noqa: E402
PROPERTIES = ("mag_r", "log_mstar", "z", "log_ssfr", "g_r", "bulge_to_total", "q_disk", "r50_kpc", "oh_12")


def effective_rank(x: np.ndarray) -> tuple[float, np.ndarray]:
    c = x - x.mean(0)
    s = np.linalg.svd(c, compute_uv=False) ** 2
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p + 1e-30)).sum())), p


def supervised_auroc(atlas: Atlas, factors: list[str], epochs: int) -> dict[str, float]:
    """Test AUROC of a CNN trained on the images to predict the binary ``factors`` (the survey's split)."""
    import torch

    from galaxyml.models.sfnet import SFNetConfig
    from galaxyml.models.sfnet_training import SFNetTrainConfig, fit_sfnet, predict, training_normalisation
    from precompute.stages.sfnet import SFNetStageConfig

    torch.set_num_threads(2)
    survey = atlas.survey()
    split = survey.split()
    y = (survey.catalog[factors].to_numpy() > 0).astype(np.float32)
    norm = training_normalisation(survey.images, survey.bands, split.train, 0)
    fit = fit_sfnet(survey.images, y, split.train, SFNetConfig(widths=SFNetStageConfig().widths, k=0,
                                                               n_targets=len(factors)),
                    SFNetTrainConfig(epochs=epochs), norm, val_idx=split.val)
    pred, _ = predict(fit.model, np.asarray(survey.images[split.test]), norm)
    return {f: float(roc_auc_score(y[split.test, j], pred[:, j])) for j, f in enumerate(factors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="demo")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--supervised", type=int, metavar="EPOCHS", default=0,
                    help="also train a CNN on the images for every factor and print its test AUROC")
    args = ap.parse_args()
    atlas = Atlas.open((args.home or home()) / args.run)
    held = atlas.split().held_out
    x = np.asarray(atlas.embeddings()[held], np.float64)
    cat = atlas.catalog().iloc[held]
    rank, p = effective_rank(x)
    print(f"atlas {atlas.name}: embeddings of dimension {x.shape[1]}; {len(held):,} held-out galaxies")
    print(f"variance in PC1 {p[0]:.3f}, PC1-2 {p[:2].sum():.3f}, PC1-10 {p[:10].sum():.3f}; effective rank {rank:.1f}")
    z = (x - x.mean(0)) / (x.std(0) + 1e-12)
    print(f"{'property':<16}{'probe R2':>9}")
    for prop in PROPERTIES:
        if prop not in cat:
            continue
        y = cat[prop].to_numpy(np.float64)
        ok = np.isfinite(y)
        r2 = cross_val_score(RidgeCV(alphas=np.logspace(-2, 3, 8)), z[ok], y[ok], cv=3, scoring="r2").mean()
        print(f"{prop:<16}{r2:>9.3f}")
    factors = [f for f in FACTORS if f in cat and cat[f].nunique() > 1]
    cnn = supervised_auroc(atlas, factors, args.supervised) if args.supervised and factors else {}
    models = [m for m in ("sae", "matryoshka", "pca") if atlas.ready(m) and atlas.ready("features")]
    align = {}
    for m in models:
        table = atlas.feature_set(m).truth_alignment
        align[m] = table.set_index("factor")["auroc"] if table is not None else {}
    head = f"{'factor':<16}{'probe':>7}" + "".join(f"{m:>12}" for m in models)
    print(head + (f"{'CNN':>7}{'gap':>7}" if cnn else ""))
    for factor in factors:
        y = cat[factor].to_numpy() > 0
        pr = cross_val_predict(LogisticRegression(max_iter=2000), z, y, cv=3, method="predict_proba")[:, 1]
        feats = [align[m].get(factor, np.nan) for m in models]
        line = f"{factor:<16}{roc_auc_score(y, pr):>7.3f}" + "".join(f"{a:>12.3f}" for a in feats)
        if cnn:
            line += f"{cnn[factor]:>7.3f}{cnn[factor] - np.nanmax(feats):>+7.3f}"
        print(line)
    if cnn:
        print("probe: logistic, 3-fold CV on the held-out galaxies; models: best feature chosen on validation, "
              "AUROC on test; CNN: trained on the train split, AUROC on test; gap: CNN minus the best model")


if __name__ == "__main__":
    main()
