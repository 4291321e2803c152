"""Seed spread of the sparse-feature metrics on an atlas's embeddings.

One SAE is one draw: its share of properties on which it beats PCA moves by several hundredths with
the seed (a property counts as won or lost on a difference of a few thousandths of Spearman rho).
For each seed this trains the TopK SAE (and with ``--matryoshka`` the Matryoshka SAE) as the stages
do, with the atlas's own settings unless overridden, and prints its FVU, dead share, the share of
catalog properties on which its best |rho| beats that of PCA at the same number of components, and
the truth alignment (best single feature's AUROC) of every generating factor; then mean and standard
deviation over the seeds, and the properties PCA wins on (with the mean margin and in how many seeds).

    python bench/features.py --run demo --home runs --seeds 5
    python bench/features.py --run demo --home runs --seeds 5 --k 64 --matryoshka
    python bench/features.py --run demo --seeds 3 --expansion 2 --matryoshka --groups 32,32,64,128
    python bench/features.py --run demo --seeds 3 --embeddings encoder_emb.npy --epochs 200
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from galaxyml import interpret  # noqa: E402
from galaxyml.atlas import Atlas, home  # noqa: E402
from galaxyml.models.sae import MatryoshkaSAE, TopKSAE  # noqa: E402
from galaxyml.data.split import scoring_sample  # noqa: E402
from galaxyml.embeddings import input_scale  # noqa: E402
from precompute.stages.features import TRUTH_FACTORS  # noqa: E402
from precompute.stages.matryoshka import MatryoshkaConfig, scaled_groups  # noqa: E402
from precompute.stages.sae import (  # noqa: E402
    SAEConfig, encode_all, fit_sparse_coder, latents_for_survey, start_at_mean,
)


def pca_halves(x: np.ndarray, k: int, train: np.ndarray) -> tuple[np.ndarray, float]:
    """The PCA baseline's features (+PC_i and -PC_i of the first k components, as the ``pca`` stage), fitted
    on the rows ``train``, and its FVU on the other rows."""
    pca = PCA(n_components=k).fit(x[train])
    p = pca.transform(x)
    held = np.setdiff1d(np.arange(len(x)), train)
    recon = pca.inverse_transform(p[held])
    fvu = ((x[held] - recon) ** 2).sum() / ((x[held] - x[held].mean(0)) ** 2).sum()
    return np.concatenate([np.maximum(p, 0), np.maximum(-p, 0)], 1).astype(np.float32), float(fvu)


def train(sae: TopKSAE, x: np.ndarray, scale: np.ndarray, cfg, seed: int, rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Dense activations (N, M) of a freshly trained ``sae`` (fitted on ``rows``) and its FVU on the others."""
    start_at_mean(sae, x[rows], scale)
    ctx = SimpleNamespace(name="bench", progress=lambda *a: None)
    fit_sparse_coder(sae, x, scale, cfg, np.random.default_rng(seed), ctx, rows)
    sae.eval()
    mask = np.zeros(len(x), bool)
    mask[rows] = True
    idx, val, fvu = encode_all(sae, x, scale, mask)
    return interpret.dense_activations(idx, val, sae.n_latents), fvu["held_out"][-1]


def best_rho(acts: np.ndarray, props: pd.DataFrame, sample: np.ndarray, select: np.ndarray) -> pd.Series:
    """Per property, |rho| on the scoring galaxies of the feature chosen on the selecting ones."""
    return interpret.held_out_best_abs_rho(acts[sample], props.iloc[sample].reset_index(drop=True), select)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="demo")
    p.add_argument("--home", type=Path)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--k", type=int, help="active latents (default: the atlas's sae.k)")
    p.add_argument("--expansion", type=int, help="latents per embedding dimension (default: the atlas's)")
    p.add_argument("--epochs", type=int, help="default: what the sae stage chose for this atlas")
    p.add_argument("--input-norm", choices=("global", "per_dim"), help="embedding scaling (default: the atlas's)")
    p.add_argument("--matryoshka", action="store_true", help="also the Matryoshka SAE (the atlas's groups)")
    p.add_argument("--groups", type=lambda s: tuple(int(g) for g in s.split(",")),
                   help="Matryoshka group sizes, comma-separated (default: the atlas's)")
    p.add_argument("--embeddings", type=Path, help="an (N, d) npy of other embeddings of the atlas's galaxies, "
                                                   "in catalog order (default: the atlas's)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    atlas = Atlas.open((args.home or home()) / args.run)
    x = np.asarray(np.load(args.embeddings, allow_pickle=False) if args.embeddings else atlas.embeddings(), np.float32)
    survey = atlas.survey()
    if x.ndim != 2 or len(x) != len(survey):
        raise SystemExit(f"error: embeddings of shape {x.shape}, but the atlas has {len(survey):,} galaxies")
    props = survey.properties()
    factors = [f for f in TRUTH_FACTORS if f in survey.catalog] if survey.is_mock else []
    split = survey.split()
    sample, select = scoring_sample(split, 20000, 0)  # features chosen on validation, scored on test galaxies
    truth = survey.catalog[factors].iloc[sample].reset_index(drop=True)
    stages = atlas.manifest["stages"]  # the settings the atlas was built with
    sae_cfg = SAEConfig(**{k: v for k, v in stages["sae"]["config"].items() if k in SAEConfig.__dataclass_fields__})
    sae_cfg = dataclasses.replace(sae_cfg, epochs=args.epochs or stages["sae"]["metrics"]["epochs"],
                                  **{k: v for k, v in (("k", args.k), ("expansion", args.expansion),
                                                     ("input_norm", args.input_norm)) if v})
    scale = input_scale(x[split.train].astype(np.float64), sae_cfg.input_norm)
    pca_acts, pca_fvu = pca_halves(x / scale, sae_cfg.k, split.train)
    pca_rho = best_rho(pca_acts, props, sample, select)
    print(f"atlas '{args.run}': {len(x):,} galaxies ({split.describe()}), d = {x.shape[1]}, {props.shape[1]} "
          f"properties; k = {sae_cfg.k}, {sae_cfg.expansion * x.shape[1]} latents, {sae_cfg.epochs} epochs; "
          f"PCA-{sae_cfg.k} held-out FVU {pca_fvu:.5f}. Fitted on the train split; FVU on the held-out galaxies; "
          f"best features chosen on {int(select.sum())} validation and scored on {int((~select).sum())} test galaxies")
    n_latents = latents_for_survey(sae_cfg.expansion * x.shape[1], len(split.train), sae_cfg.k,
                                   sae_cfg.galaxies_per_latent)
    models = {"TopK": lambda: TopKSAE(x.shape[1], n_latents, sae_cfg.k)}
    configs = {"TopK": sae_cfg}
    if args.matryoshka:
        m_raw = stages["matryoshka"]["config"]
        m_cfg = MatryoshkaConfig(**{k: tuple(v) if k == "group_sizes" else v for k, v in m_raw.items()
                                    if k in MatryoshkaConfig.__dataclass_fields__})
        m_cfg = dataclasses.replace(m_cfg, epochs=sae_cfg.epochs, k=sae_cfg.k,
                                    group_sizes=args.groups or m_cfg.group_sizes)
        models["Matryoshka"] = lambda: MatryoshkaSAE(x.shape[1], scaled_groups(m_cfg, len(split.train)), m_cfg.k)
        configs["Matryoshka"] = m_cfg
    rows, margins = [], []
    for name, make in models.items():
        for seed in range(args.seeds):
            t0 = time.time()
            cfg = dataclasses.replace(configs[name], seed=seed)
            torch.manual_seed(seed)
            acts, fvu = train(make(), x, scale, cfg, seed, split.train)
            rho = best_rho(acts, props, sample, select)
            row = {"model": name, "seed": seed, "fvu": fvu, "dead": float((acts.max(0) <= 0).mean()),
                   "beats_pca": float((rho > pca_rho).mean())}
            margins.append((rho - pca_rho).rename((name, seed)))
            if factors:
                table = interpret.truth_alignment(acts[sample], truth, select)
                row.update({r.factor: r.auroc for r in table.itertuples()})
            rows.append(row)
            print(f"{name:>10} seed {seed}: FVU {fvu:.5f}  dead {row['dead']:.1%}  beats PCA on {row['beats_pca']:.1%}"
                  f" of properties  ({time.time() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    cols = ["fvu", "dead", "beats_pca", *factors]
    print(f"\nmean +- standard deviation over {args.seeds} seed(s); factors: best single feature's AUROC")
    print(f"{'':>11}" + "".join(f"{c:>20}" for c in cols))
    for name, group in table.groupby("model", sort=False):
        digits = {c: 5 if c == "fvu" else 3 for c in cols}
        spread = group[cols].std(ddof=1).fillna(0.0)  # one seed: no spread
        cells = [f"{group[c].mean():.{digits[c]}f} +- {spread[c]:.{digits[c]}f}" for c in cols]
        print(f"{name:>11}" + "".join(f"{c:>20}" for c in cells))
    margin = pd.concat(margins, axis=1)
    print("\nproperties PCA wins on in at least one seed: SAE best |rho| - PCA best |rho| (mean over seeds), "
          "seeds lost")
    for name in models:
        m = margin.loc[:, [c for c in margin.columns if c[0] == name]]
        lost = (m <= 0).sum(axis=1)
        order = m.mean(axis=1)[lost > 0].sort_values().index
        print(f"{name}: " + ", ".join(f"{p} {m.loc[p].mean():+.3f} ({lost[p]})" for p in order))


if __name__ == "__main__":
    main()
