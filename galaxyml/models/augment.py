"""Image augmentation shared by every trained image model."""

from __future__ import annotations

import torch


def flip_rotate(x: torch.Tensor, gen: torch.Generator, shift_px: int = 0) -> torch.Tensor:
    """Random flip and rotation by a multiple of 90 degrees, drawn per galaxy (galaxies have no
    preferred orientation, and these maps keep the pixel grid exact), and with ``shift_px`` > 0 a random
    shift by up to that many whole pixels along each axis (cutouts are centred to a pixel or two; the
    edge that leaves comes back on the other side, which is sky at these sizes).

    Parameters
    ----------
    x : (B, C, H, W) images, H == W.
    gen : the seeded generator every draw comes from.
    """
    b = x.shape[0]
    ops = torch.randint(8, (b,), generator=gen)  # the 8 symmetries of the square
    out = torch.empty_like(x)
    for op in range(8):
        rows = (ops == op).nonzero().flatten()
        if len(rows):
            y = x[rows].flip(-1) if op >= 4 else x[rows]
            out[rows] = torch.rot90(y, op % 4, dims=(-2, -1))
    if shift_px > 0:
        shifts = torch.randint(-shift_px, shift_px + 1, (b, 2), generator=gen)
        for i in range(b):
            dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
            if dy or dx:
                out[i] = torch.roll(out[i], (dy, dx), dims=(-2, -1))
    return out
