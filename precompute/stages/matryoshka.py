"""Stage ``matryoshka``: a Matryoshka TopK SAE on the embeddings (nested groups of latents)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from galaxyml.models.device import check_device
from galaxyml.models.sae import MatryoshkaSAE
from precompute.stage import StageContext, register
from precompute.stages.sae import (
    fit_sparse_coder, latents_for_survey, load_embeddings, prepare, start_at_mean, training_rows, with_epochs,
    write_codes,
)


@dataclass(frozen=True)
class MatryoshkaConfig:
    """Matryoshka SAE. The precedent (Euclid Q1 atlas) used groups (64, 64, 128, 256, 512, 1024),
    k = 64, lr 1e-4, 200 epochs on 640-d Zoobot embeddings; the demo scales the groups to 8 d."""

    group_sizes: tuple[int, ...] = (64, 64, 128, 256, 512)
    """Sizes of the nested groups of latents (their sum is the number of latents)."""
    k: int = 32
    """Active latents per galaxy (takes ``sae.k`` when only that is set, so the L0 stays equal)."""
    galaxies_per_latent: float = 2.0
    """On a small survey the groups shrink in proportion to at most (training galaxies / this) latents
    (see ``sae.galaxies_per_latent``)."""
    epochs: int = 0
    """Passes over the embeddings; 0 chooses by what made them, as for the ``sae`` stage (100 for the
    Zoobot-style network's, else the precedent's 200). On the demo's
    Zoobot-style embeddings (per-dimension scaling) FVU 0.0064 after 100 epochs (31 s on 2 cores), 0.0048
    after 200, against PCA's 0.016 at 32 components; on the encoder's embeddings 0.0021 after 60 epochs,
    0.0013 after 120, 0.0010 after 200, against PCA's 0.0015."""
    batch_size: int = 256
    """Galaxies per step."""
    lr: float = 3e-3
    """Adam learning rate; 0 uses the scaling law 2e-4 / sqrt(M / 2^14) (see the ``sae`` stage)."""
    warmup_steps: int = 50
    """Linear warm-up steps, then linear decay to zero."""
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss."""
    dead_after_galaxies: int = 2048
    """A latent is dead after this many galaxies without firing."""
    input_norm: Literal["global", "per_dim"] = "global"
    """Embedding scaling before the SAE (see the ``sae`` stage)."""
    seed: int = 0
    """Seed of initialisation and batch order."""
    device: str = "auto"
    """Where to train and encode: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda`` (see the
    ``sae`` stage)."""

    def __post_init__(self) -> None:
        check_device(self.device, "matryoshka.device")
        if not self.group_sizes or min(self.group_sizes) < 1:
            raise ValueError(f"matryoshka.group_sizes must be positive sizes, got {self.group_sizes}")
        if not 0 < self.k <= sum(self.group_sizes):
            raise ValueError(f"matryoshka.k = {self.k} must be in [1, sum(group_sizes) = {sum(self.group_sizes)}]")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("matryoshka.epochs must be >= 0 and matryoshka.batch_size >= 1")
        if self.input_norm not in ("global", "per_dim"):
            raise ValueError(f"matryoshka.input_norm must be 'global' or 'per_dim', got {self.input_norm!r}")


def scaled_groups(cfg: MatryoshkaConfig, n_train: int) -> tuple[int, ...]:
    """The group sizes, shrunk in proportion on a small survey to the dictionary size the ``sae`` stage's
    rule gives (:func:`precompute.stages.sae.latents_for_survey`)."""
    total = sum(cfg.group_sizes)
    target = latents_for_survey(total, n_train, cfg.k, cfg.galaxies_per_latent)
    if target == total:
        return tuple(cfg.group_sizes)
    return tuple(max(1, round(g * target / total)) for g in cfg.group_sizes)


@register("matryoshka", MatryoshkaConfig, inputs=("survey", "embeddings"), version=6)
def train_matryoshka(ctx: StageContext) -> dict:
    """Train the Matryoshka SAE; store weights, sparse codes and the FVU of every group prefix."""
    cfg: MatryoshkaConfig = with_epochs(ctx)
    x = load_embeddings(ctx)
    rows = training_rows(ctx)
    sample, scale, rng = prepare(x, cfg, rows)
    sae = MatryoshkaSAE(x.shape[1], scaled_groups(cfg, len(rows)), cfg.k)
    start_at_mean(sae, sample, scale)
    history, seconds = fit_sparse_coder(sae, x, scale, cfg, rng, ctx, rows)
    return write_codes(sae, x, scale, cfg, history, seconds, ctx.out, rows)
