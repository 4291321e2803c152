"""One galaxy's stars, one unconditional flow: split the stars, fit, score against the references."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from galaxyml.forge.evaluate import c2st_auc, gaussian_nll, gaussian_sample, profile_errors, w1_per_dim
from galaxyml.forge.prep import CleanConfig, Standardiser, clean, sample_inside
from galaxyml.forge.tables import ParticleSet
from galaxyml.models.flows import FlowSpec, ProgressFn, build_flow, mean_nll, sample, train_flow


@dataclass(frozen=True)
class FitConfig:
    """Settings of a one-galaxy fit (``python -m galaxyml.forge fit``)."""

    flow: str = "nsf"
    holdout: float = 0.2
    """Share of the stars held out for scoring."""
    val_share: float = 0.1
    """Share of the remaining stars that picks the checkpoint."""
    steps: int = 2000
    batch: int = 512
    lr: float = 2e-3
    transforms: int = 5
    hidden: tuple[int, ...] = (128, 128)
    max_eval: int = 10_000
    """Held-out stars used by the C2ST (its cost grows with them)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout <= 0.5 or not 0.02 <= self.val_share <= 0.5:
            raise ValueError("--holdout must be in [0.05, 0.5] and the validation share in [0.02, 0.5]")
        if self.steps < 1 or self.batch < 8:
            raise ValueError("--steps must be >= 1 and --batch >= 8")
        if not 0 < self.lr < 1 or self.transforms < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("--lr must be in (0, 1), --transforms >= 1 and --hidden positive widths")


def split_rows(n: int, holdout: float, val_share: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / held-out star indices."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(holdout * n))
    n_val = int(round(val_share * (n - n_test)))
    return perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]


def fit_galaxy(ps: ParticleSet, cfg: FitConfig, clean_cfg: CleanConfig = CleanConfig(),
               progress: ProgressFn | None = None) -> tuple[torch.nn.Module, FlowSpec, Standardiser, dict]:
    """Clean ``ps``, fit ``cfg.flow`` on the training stars, score it on held-out stars beside a Gaussian
    fitted to the same training stars and beside other true stars; returns (flow, spec, standardiser, metrics)."""
    cleaned, removed = clean(ps, clean_cfg)
    train, val, test = split_rows(len(cleaned), cfg.holdout, cfg.val_share, cfg.seed)
    std = Standardiser(cleaned.columns).fit(cleaned.data[train])
    z = std.transform(cleaned.data)
    spec = FlowSpec(cfg.flow, z.shape[1], 0, cfg.transforms, tuple(cfg.hidden))
    torch.manual_seed(cfg.seed)
    flow = build_flow(spec)
    result = train_flow(flow, z[train], None, z[val], None, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                        seed=cfg.seed, progress=progress)
    rng = np.random.default_rng(cfg.seed)
    held = z[test][rng.permutation(len(test))[: cfg.max_eval]]
    t0 = time.perf_counter()
    r_max = removed.get("r_max_kpc")
    torch.manual_seed(cfg.seed)
    fake = sample_inside(lambda k: sample(flow, k), len(held), std, r_max)
    sample_s = time.perf_counter() - t0
    gauss = gaussian_sample(z[train], len(held), seed=cfg.seed)
    real_ref = z[train][rng.permutation(len(train))[: len(held)]]
    held_phys = std.inverse(held)
    metrics = {
        "flow": cfg.flow, "columns": list(cleaned.columns), "stars": {"read": len(ps), "after_cleaning": len(cleaned),
        "train": len(train), "validation": len(val), "held_out": len(test), "scored": len(held)},
        "cleaning_removed": removed, "notes": list(ps.notes),
        "nll": mean_nll(flow, z[test], None), "nll_gaussian": gaussian_nll(z[train], z[test]),
        "c2st_auc": c2st_auc(held, fake, seed=cfg.seed), "c2st_auc_gaussian": c2st_auc(held, gauss, seed=cfg.seed),
        "c2st_auc_real": c2st_auc(held, real_ref, seed=cfg.seed),
        "w1": dict(zip(cleaned.columns, w1_per_dim(held, fake).round(5).tolist())),
        "w1_gaussian": dict(zip(cleaned.columns, w1_per_dim(held, gauss).round(5).tolist())),
        "profile_error": profile_errors(held_phys, std.inverse(fake), cleaned.columns),
        "profile_error_gaussian": profile_errors(held_phys, std.inverse(gauss), cleaned.columns),
        "train_seconds": round(result.seconds, 2), "best_step": result.best_step, "steps": cfg.steps,
        "stars_per_second": round(len(held) / max(sample_s, 1e-9)),
        "scored_on": "held-out stars of this galaxy (never trained on), in the standardised space",
    }
    return flow, spec, std, metrics
