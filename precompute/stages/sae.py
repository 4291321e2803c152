"""Stage ``sae``: train a TopK sparse autoencoder on the embeddings and store sparse codes."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
import torch

from galaxyml.arrays import fraction_unexplained
from galaxyml.data.survey import Survey
from galaxyml.embeddings import input_scale
from galaxyml.embeddings import load_embeddings as embeddings_of
from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE
from galaxyml.models.device import check_device, device_name, resolve_device
from galaxyml.models.sae import MatryoshkaSAE, TopKSAE, dead_mask, default_lr, save_sae, train_step
from precompute.stage import StageContext, log, register
from precompute.stages.embeddings import embeddings_source

HISTORY_FILE = "history.json"


REPLICATE_FILES = ("replicate_{i}_indices.npy", "replicate_{i}_values.npy")
"""Codes of the ``spread_seeds`` replicate SAEs (seed + i), in the layout of the atlas's codes."""


@dataclass(frozen=True)
class SAEConfig:
    """TopK SAE size and training schedule (Gao et al. 2024 defaults, scaled to the demo)."""

    expansion: int = 8
    """Latents per embedding dimension: M = expansion x d."""
    k: int = 32
    """Active latents per galaxy."""
    galaxies_per_latent: float = 2.0
    """Small surveys get a smaller dictionary: at most (training galaxies / this) latents, rounded down to
    a power of two (0: always expansion x d). The demo's 3,500 training galaxies keep 1,024 latents."""
    epochs: int = 0
    """Passes over the embeddings; 0 chooses by what made them: 100 for the Zoobot-style network's, 200
    (the precedent's count) for any other. Measured on the demo (k = 32, 1,024 latents, per-dimension
    scaling): on the Zoobot-style embeddings FVU 0.0067 after 100 epochs (22 s on 2 cores) and 0.0044
    after 200 (48 s), against PCA's 0.016 at 32 components, with the same truth alignment; on the
    encoder's embeddings 0.0028 after 60 epochs, 0.0015 after 120 (PCA's 0.0015), 0.0011 after 200, and
    with the default global scaling 100 epochs leave FVU 0.00132, above PCA's 0.00109."""
    batch_size: int = 256
    """Galaxies per step."""
    lr: float = 3e-3
    """Adam learning rate; 0 uses the scaling law 2e-4 / sqrt(M / 2^14) of Gao et al. (8e-4 for 1024
    latents). Measured on the demo embeddings (`bench/precompute.py --preset demo`): 3e-3 leaves 6%
    of latents dead, the scaling-law rate 62%, with FVU 0.002 and 0.004."""
    warmup_steps: int = 50
    """Linear warm-up steps, then linear decay to zero."""
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss."""
    dead_after_galaxies: int = 2048
    """A latent is dead after this many galaxies without firing (AuxK then revives it)."""
    input_norm: Literal["global", "per_dim"] = "global"
    """Embedding scaling before the SAE: one scalar for all dimensions (the default), or each dimension
    to unit variance (FVU then of the standardised embeddings). Measured on the demo, 100 epochs: on the
    Zoobot-style embeddings ``global`` gives FVU 0.0045 against PCA's 0.0094, 0.9% dead latents and beats
    PCA's max |rho| on 72% of the properties, ``per_dim`` 0.0068 against 0.0156, 4.3% and 63%; on the
    encoder's embeddings the dead fractions are equal (3.3%) and ``global`` reaches the lower FVU
    relative to PCA (0.00132 against 0.00109, ``per_dim`` 0.00177 against 0.00154)."""
    seed: int = 0
    """Seed of initialisation and batch order."""
    spread_seeds: int = 2
    """Further SAEs trained with seeds seed+1, seed+2, ... only to measure how much a result moves with
    the seed (the ``features`` stage reports the spread of "beats PCA" over all of them); their codes are
    stored beside the atlas's, which browses the SAE of ``seed``. One SAE is one draw: on the demo the
    share of properties on which it beats PCA moves by several hundredths between seeds
    (``python bench/features.py --run demo --seeds 5``)."""
    device: str = "auto"
    """Where to train and encode: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``. On a GPU
    the gradient scatters use atomic adds, so the same seed gives a close but not identical SAE."""

    def __post_init__(self) -> None:
        check_device(self.device, "sae.device")
        if self.spread_seeds < 0:
            raise ValueError("sae.spread_seeds must be >= 0")
        if self.input_norm not in ("global", "per_dim"):
            raise ValueError(f"sae.input_norm must be 'global' or 'per_dim', got {self.input_norm!r}")
        if self.expansion < 1 or self.k < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError("sae.expansion, sae.k and sae.batch_size must be >= 1, sae.epochs >= 0")
        if self.lr < 0 or self.auxk_alpha < 0:
            raise ValueError("sae.lr and sae.auxk_alpha must be >= 0")


def latents_for_survey(n_latents: int, n_train: int, k: int, galaxies_per_latent: float) -> int:
    """The dictionary size for a survey: ``n_latents``, or fewer on a small survey, the largest power of
    two at most ``n_train / galaxies_per_latent`` (never below 2k), so that every latent sees enough
    galaxies to be trained instead of dying."""
    if galaxies_per_latent <= 0 or n_train / galaxies_per_latent >= n_latents:
        return n_latents
    cap = 2 ** int(np.floor(np.log2(max(n_train / galaxies_per_latent, 1))))
    return int(min(n_latents, max(cap, 2 * k)))


def get_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up then linear decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


@torch.no_grad()
def encode_all(sae: TopKSAE, x: np.ndarray, scale: np.ndarray, train_mask: np.ndarray, batch: int = 4096
               ) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Sparse codes of every row (strongest latent first) on the SAE's device, and the FVU (Σ‖x − x̂‖² /
    Σ‖x − x̄‖², x̄ the mean of the rows scored) of the training rows and of the held-out rows (the rest),
    each a list with, for a Matryoshka SAE, the FVU of every prefix of groups (the last is the full FVU)."""
    n = len(x)
    dev = sae.b_pre.device
    idx = np.empty((n, sae.k), np.int32)
    val = np.empty((n, sae.k), np.float32)
    n_groups = len(sae.group_sizes) if isinstance(sae, MatryoshkaSAE) else 1
    parts = {"train": train_mask, "held_out": ~train_mask}
    err = {p: np.zeros(n_groups) for p in parts}
    sum_x = {p: np.zeros(x.shape[1]) for p in parts}  # Σx and Σ‖x‖² give Σ‖x − x̄‖² in one pass
    sum_sq = dict.fromkeys(parts, 0.0)
    for s in range(0, n, batch):
        xb = torch.from_numpy(np.asarray(x[s : s + batch], np.float32) / scale).to(dev)
        acts, ind = sae.encode(xb)
        masks = {p: torch.from_numpy(m[s : s + batch]).to(dev) for p, m in parts.items()}
        for g in range(n_groups):
            x_hat = sae.prefix_decode(acts, ind, g + 1) if n_groups > 1 else sae.decode(acts, ind)
            row_err = (xb - x_hat).pow(2).sum(1)
            for p, m in masks.items():
                err[p][g] += row_err[m].sum().item()
        xd = xb.double()
        for p, m in masks.items():
            sum_x[p] += xd[m].sum(0).cpu().numpy()
            sum_sq[p] += xd[m].pow(2).sum().item()
        order = acts.argsort(dim=1, descending=True)
        idx[s : s + batch] = ind.gather(1, order).cpu().numpy()
        val[s : s + batch] = acts.gather(1, order).cpu().numpy()
    fvu = {p: fraction_unexplained(err[p], sum_x[p], sum_sq[p], int(m.sum())).tolist() for p, m in parts.items()}
    return idx, val, fvu


def fit_sparse_coder(sae: TopKSAE, x: np.ndarray, scale: np.ndarray, cfg, rng: np.random.Generator,
                     ctx: StageContext, rows: np.ndarray) -> tuple[list[dict], float]:
    """Train ``sae`` on the rows ``rows`` of ``x`` / ``scale`` on ``cfg.device`` (the SAE is moved there):
    Adam (fused), warm-up then linear decay, AuxK on latents dead for ``cfg.dead_after_galaxies``
    galaxies, unit-norm decoder rows."""
    n = len(rows)
    dev = resolve_device(cfg.device, f"{ctx.name}.device")
    sae.to(dev)
    lr = cfg.lr or default_lr(sae.n_latents)
    optimiser = torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    total = cfg.epochs * math.ceil(n / cfg.batch_size)
    since_fired = torch.zeros(sae.n_latents, dtype=torch.long, device=dev)
    history: list[dict] = []
    step, t0 = 0, time.time()
    for epoch in range(cfg.epochs):
        order = rng.permutation(rows)
        fvus, auxs = [], []  # 0-d tensors: read once an epoch, so a GPU is not synchronised every step
        for s in range(0, n, cfg.batch_size):
            xb = torch.from_numpy(np.asarray(x[np.sort(order[s : s + cfg.batch_size])], np.float32) / scale)
            for group in optimiser.param_groups:
                group["lr"] = get_lr(step, total, lr, cfg.warmup_steps)
            out = train_step(sae, optimiser, xb.to(dev, non_blocking=True), since_fired, cfg.dead_after_galaxies,
                             cfg.auxk_alpha)
            fvus.append(out.fvu.detach())
            auxs.append(out.auxk_loss.detach())
            step += 1
            if step % 20 == 0 or s + cfg.batch_size >= n:
                recent = torch.stack(fvus[-20:]).mean().item()
                ctx.progress(step, total, f"epoch {epoch + 1}/{cfg.epochs}, FVU {recent:.3f}")
        fvus, auxs = torch.stack(fvus).cpu().numpy(), torch.stack(auxs).cpu().numpy()
        history.append({"epoch": epoch + 1, "fvu": float(np.mean(fvus)), "auxk_loss": float(np.mean(auxs)),
                        "dead_fraction": float(dead_mask(since_fired, cfg.dead_after_galaxies).float().mean())})
    return history, time.time() - t0


DENSE_THRESHOLD = 0.1
"""A feature is dense when it is active on more than this share of galaxies."""


def write_codes(sae: TopKSAE, x: np.ndarray, scale: np.ndarray, cfg, history: list[dict], seconds: float,
                out: Path, train_rows: np.ndarray) -> dict:
    """Encode every galaxy, save weights, codes and history; return the stage's metrics (FVU on the
    held-out galaxies, the training galaxies' beside it)."""
    sae.eval()
    train_mask = np.zeros(len(x), bool)
    train_mask[train_rows] = True
    idx, val, fvu = encode_all(sae, x, scale, train_mask)
    np.save(out / CODE_INDICES_FILE, idx, allow_pickle=False)
    np.save(out / CODE_VALUES_FILE, val, allow_pickle=False)
    save_sae(sae, out, input_norm=cfg.input_norm, input_scale=scale.tolist())
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    active = val > 0
    counts = np.bincount(idx[active], minlength=sae.n_latents)
    metrics = {
        "fvu": fvu["held_out"][-1], "fvu_train": fvu["train"][-1], "fvu_split": "held_out",
        "l0": float(active.sum(1).mean()),
        "dead_fraction": float((counts == 0).mean()),
        "dense_fraction": float((counts > DENSE_THRESHOLD * len(x)).mean()),
        "dense_threshold": DENSE_THRESHOLD,
        "n_latents": sae.n_latents, "k": sae.k, "epochs": cfg.epochs,
        "samples_per_s": cfg.epochs * len(train_rows) / seconds, "n_train": int(len(train_rows)),
        "device": device_name(sae.b_pre.device),
    }
    if len(fvu["held_out"]) > 1:
        metrics["group_fvu"] = fvu["held_out"]
    return metrics


def load_embeddings(ctx: StageContext) -> np.ndarray:
    """The embeddings stage's (N, d) embeddings, memory-mapped."""
    return embeddings_of(ctx.inputs["embeddings"])


def training_rows(ctx: StageContext) -> np.ndarray:
    """The rows the feature models fit on: the survey's train split (held-out galaxies score them)."""
    return Survey.load(ctx.inputs["survey"]).split().train


EPOCHS_BY_SOURCE = {"zoobot": 100}
"""Epochs an SAE trains with ``epochs = 0``, by what made the embeddings (else :data:`DEFAULT_EPOCHS`)."""
DEFAULT_EPOCHS = 200


def with_epochs(ctx: StageContext):
    """The stage's config with ``epochs = 0`` resolved by the embeddings' source."""
    if ctx.cfg.epochs:
        return ctx.cfg
    return dataclasses.replace(ctx.cfg, epochs=EPOCHS_BY_SOURCE.get(embeddings_source(ctx.inputs["embeddings"]),
                                                                    DEFAULT_EPOCHS))


@torch.no_grad()
def start_at_mean(sae: TopKSAE, rows: np.ndarray, scale: np.ndarray) -> None:
    """Set the pre-encoder bias to the mean of the scaled ``rows`` (the geometric-median stand-in of
    Gao et al. and sparsify)."""
    sae.b_pre.copy_(torch.from_numpy(np.asarray(rows).mean(0) / scale).float())


def prepare(x: np.ndarray, cfg, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Seeded generator, a sample of the training ``rows``, and the input scale."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sample = np.asarray(x[np.sort(rng.choice(rows, min(len(rows), 20000), replace=False))], np.float64)
    return sample, input_scale(sample, cfg.input_norm), rng


@register("sae", SAEConfig, inputs=("survey", "embeddings"), version=7)
def train_sae(ctx: StageContext) -> dict:
    """Train the TopK SAE on the embeddings; store weights and sparse codes of every galaxy."""
    cfg: SAEConfig = with_epochs(ctx)
    x = load_embeddings(ctx)
    d = x.shape[1]
    rows = training_rows(ctx)
    n_latents = latents_for_survey(cfg.expansion * d, len(rows), cfg.k, cfg.galaxies_per_latent)
    if n_latents < cfg.expansion * d:
        log.info("sae: %d latents instead of %d for %d training galaxies (sae.galaxies_per_latent = %g)",
                 n_latents, cfg.expansion * d, len(rows), cfg.galaxies_per_latent)
    if cfg.k > n_latents:
        raise ValueError(f"sae.k = {cfg.k} exceeds the number of latents {n_latents} (expansion x {d}, capped by "
                         f"the {len(rows)} training galaxies); lower sae.k")
    sample, scale, rng = prepare(x, cfg, rows)
    sae = TopKSAE(d, n_latents, cfg.k)
    start_at_mean(sae, sample, scale)
    history, seconds = fit_sparse_coder(sae, x, scale, cfg, rng, ctx, rows)
    metrics = write_codes(sae, x, scale, cfg, history, seconds, ctx.out, rows)
    mask = np.zeros(len(x), bool)
    mask[rows] = True
    for i in range(1, cfg.spread_seeds + 1):  # replicates: the same SAE with other seeds, for the seed spread
        rep_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
        _, _, rep_rng = prepare(x, rep_cfg, rows)
        rep = TopKSAE(d, n_latents, cfg.k)
        start_at_mean(rep, sample, scale)
        rep_ctx = SimpleNamespace(name=ctx.name, progress=lambda step, total, message, _i=i: ctx.progress(
            step, total, f"seed spread, SAE {_i + 1} of {cfg.spread_seeds + 1}: {message}"))
        fit_sparse_coder(rep, x, scale, rep_cfg, rep_rng, rep_ctx, rows)
        idx, val, _ = encode_all(rep.eval(), x, scale, mask)
        np.save(ctx.out / REPLICATE_FILES[0].format(i=i), idx, allow_pickle=False)
        np.save(ctx.out / REPLICATE_FILES[1].format(i=i), val, allow_pickle=False)
    metrics["spread_seeds"] = cfg.spread_seeds
    return metrics
