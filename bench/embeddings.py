"""How informative and well-spread are an atlas's embeddings?

Prints the share of variance in the first principal components, the effective rank
(exp of the entropy of the normalised PCA spectrum, Roy & Vetterli 2007), 3-fold
cross-validated ridge-probe R^2 from the standardised embeddings to catalog properties, and
(mock surveys) logistic-probe AUROC for each binary generating factor: an upper bound on what
any single sparse feature can reach in truth alignment. With ``--supervised EPOCHS`` it also
trains a CNN (the demo SFNet, all features kept) on the images to predict every factor
at once and prints its held-out AUROC: what the images themselves allow, whatever the embedding.

    python bench/embeddings.py --run demo [--home runs] [--supervised 10]
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

FACTORS = ("spiral", "bar", "ring", "merger", "edge_on", "dust_lane", "agn", "quenched", "artefact")
PROPERTIES = ("mag_r", "log_mstar", "z", "log_ssfr", "g_r", "bulge_to_total", "q_disk", "r50_kpc", "oh_12")


def effective_rank(x: np.ndarray) -> tuple[float, np.ndarray]:
    c = x - x.mean(0)
    s = np.linalg.svd(c, compute_uv=False) ** 2
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p + 1e-30)).sum())), p


def supervised_auroc(atlas: Atlas, factors: list[str], n: int, epochs: int) -> dict[str, float]:
    """Held-out AUROC of a CNN trained on the images to predict the binary ``factors`` (80/20 split)."""
    import torch

    from galaxyml.models.sfnet import SFNetConfig
    from galaxyml.models.sfnet_training import SFNetTrainConfig, fit_sfnet, input_normalisation, predict
    from precompute.stages.sfnet import SFNetStageConfig

    torch.set_num_threads(2)
    survey = atlas.survey()
    images = np.asarray(survey.images[:n])
    y = (survey.catalog[factors].to_numpy()[:n] > 0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(y))
    test, train = np.sort(perm[: len(y) // 5]), np.sort(perm[len(y) // 5 :])
    norm = input_normalisation(images[:2048], survey.bands)
    fit = fit_sfnet(images, y, train, SFNetConfig(widths=SFNetStageConfig().widths, k=0, n_targets=len(factors)),
                    SFNetTrainConfig(epochs=epochs), norm)
    pred, _ = predict(fit.model, images[test], norm)
    return {f: float(roc_auc_score(y[test, j], pred[:, j])) for j, f in enumerate(factors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="demo")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--max-galaxies", type=int, default=5000)
    ap.add_argument("--supervised", type=int, metavar="EPOCHS", default=0,
                    help="also train a CNN on the images for every factor and print its test AUROC")
    args = ap.parse_args()
    atlas = Atlas.open((args.home or home()) / args.run)
    x = np.asarray(atlas.embeddings()[: args.max_galaxies], np.float64)
    cat = atlas.catalog().iloc[: len(x)]
    rank, p = effective_rank(x)
    print(f"atlas {atlas.name}: {x.shape[0]:,} embeddings of dimension {x.shape[1]}")
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
    factors = [f for f in FACTORS if f in cat]
    cnn = supervised_auroc(atlas, factors, len(x), args.supervised) if args.supervised and factors else {}
    print(f"{'factor':<16}{'probe AUROC':>12}" + (f"{'CNN AUROC':>11}" if cnn else ""))
    for factor in factors:
        y = cat[factor].to_numpy() > 0
        p = cross_val_predict(LogisticRegression(max_iter=2000), z, y, cv=3, method="predict_proba")[:, 1]
        print(f"{factor:<16}{roc_auc_score(y, p):>12.3f}" + (f"{cnn[factor]:>11.3f}" if cnn else ""))


if __name__ == "__main__":
    main()
