"""Image augmentation shared by every trained image model."""

from __future__ import annotations

import torch


def flip_rotate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and rotation by a multiple of 90 degrees, one draw per batch (galaxies
    have no preferred orientation, and these maps keep the pixel grid exact)."""
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    return torch.rot90(x, int(torch.randint(4, (), generator=gen)), dims=(-2, -1))
