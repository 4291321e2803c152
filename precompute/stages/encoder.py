"""Stage ``encoder``: train the astroPT-style encoder by next-patch regression."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields

import numpy as np
import torch

from galaxyml.data.survey import Survey
from galaxyml.models.augment import flip_rotate
from galaxyml.models.device import check_device, device_name, resolve_device
from galaxyml.models.encoder import AstroPT, AstroPTConfig, Normalisation, save_encoder
from precompute.stage import StageContext, register

HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class EncoderConfig(AstroPTConfig):
    """Encoder shape (see :class:`AstroPTConfig`) and its training schedule."""

    epochs: int = 6
    """Passes over the training galaxies."""
    batch_size: int = 64
    """Galaxies per optimisation step."""
    lr: float = 1e-3
    """Peak AdamW learning rate (cosine decay after a linear warm-up)."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    val_fraction: float = 0.1
    """Share of the training galaxies held out for the validation loss when the survey's validation split
    is empty (the survey's validation galaxies are used otherwise)."""
    softening_nmgy: float = 0.02
    """asinh softening of the input fluxes [nanomaggies], about 3 sigma of the r-band sky; with
    ``per_galaxy_scale`` it is relative to each cutout's central peak instead."""
    per_galaxy_scale: bool = False
    """Divide each cutout by its central r-band peak first (shape and colour, not brightness)."""
    augment: bool = True
    """Random flips and 90-degree rotations during training."""
    seed: int = 0
    """Seed of initialisation, split and batch order."""
    device: str = "auto"
    """Where to train: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``. Training on a GPU
    is not bitwise reproducible (its reductions use atomic adds): the same seed gives a close but not
    identical network."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_device(self.device, "encoder.device")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("encoder.epochs and encoder.batch_size must be >= 1")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"encoder.val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.lr <= 0 or self.softening_nmgy <= 0:
            raise ValueError("encoder.lr and encoder.softening_nmgy must be positive")

    def model_config(self) -> AstroPTConfig:
        return AstroPTConfig(**{f.name: getattr(self, f.name) for f in fields(AstroPTConfig)})


def get_lr(step: int, total: int, cfg: EncoderConfig) -> float:
    """Linear warm-up then cosine decay to 10% of the peak (nanoGPT's schedule)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model: AstroPT, images: np.ndarray, idx: np.ndarray, norm: Normalisation, batch: int) -> float:
    model.eval()
    dev = model.order.device
    losses = [model(norm(images[np.sort(idx[s : s + batch])]).to(dev)).loss.item() for s in range(0, len(idx), batch)]
    model.train()
    return float(np.mean(losses))


# Deferred: when the catalog has votes the embeddings come from the zoobot stage, and the feature
# pages are ready before this encoder has trained (on the demo, about 85 s of 490 s on 2 cores sooner).
@register("encoder", EncoderConfig, inputs=("survey",), deferred=True, version=2)
def train_encoder(ctx: StageContext) -> dict:
    """Train the astroPT-style encoder on the survey images (next-patch regression)."""
    cfg: EncoderConfig = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    images = survey.images
    n, c, h, w = images.shape
    if (c, h) != (cfg.n_chan, cfg.image_size):
        raise ValueError(f"encoder expects {cfg.n_chan}x{cfg.image_size}px images, the survey has {c}x{h}px; "
                         f"set encoder.n_chan / encoder.image_size")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    split = survey.split()  # trains on the survey's train split only: held-out galaxies stay unseen
    if len(split.val):
        val_idx, train_idx = split.val, rng.permutation(split.train)
    else:
        perm = rng.permutation(split.train)
        n_val = max(1, int(round(cfg.val_fraction * len(perm))))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    norm = Normalisation.fit(np.asarray(images[np.sort(train_idx[:2048])]), cfg.softening_nmgy, cfg.per_galaxy_scale)

    dev = resolve_device(cfg.device, "encoder.device")
    model = AstroPT(cfg.model_config()).to(dev)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    history: list[dict] = []
    step, t0 = 0, time.time()
    for epoch in range(cfg.epochs):
        order = rng.permutation(train_idx)
        running = []
        for s in range(0, len(order), cfg.batch_size):
            x = norm(images[np.sort(order[s : s + cfg.batch_size])])
            if cfg.augment:
                x = flip_rotate(x, gen)
            for group in optimiser.param_groups:
                group["lr"] = get_lr(step, total_steps, cfg)
            loss = model(x.to(dev, non_blocking=True)).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            running.append(loss.detach())  # read every 20 steps, so a GPU is not synchronised every step
            step += 1
            if step % 20 == 0 or s + cfg.batch_size >= len(order):
                recent = torch.stack(running[-20:]).mean().item()
                ctx.progress(step, total_steps, f"epoch {epoch + 1}/{cfg.epochs}, loss {recent:.4f}")
        running = torch.stack(running).cpu().numpy()
        val = evaluate(model, images, val_idx, norm, 256)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(running)), "val_loss": val})
    save_encoder(model.cpu(), norm, ctx.out)
    (ctx.out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    return {
        "train_loss": history[-1]["train_loss"], "val_loss": history[-1]["val_loss"],
        "epochs": cfg.epochs, "n_params": sum(p.numel() for p in model.parameters()),
        "galaxies_per_s": cfg.epochs * len(train_idx) / (time.time() - t0),
        "device": device_name(dev),
    }
