"""Learning-rate schedules shared by the training loops."""

from __future__ import annotations

import torch


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Smith's one-cycle schedule (warm-up over the first 10% of ``steps``, then cosine annealing);
    a constant rate for runs too short to warm up (10 steps or fewer)."""
    if steps <= 10:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.1)
