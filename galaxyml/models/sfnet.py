"""Sparse feature network (SFNet; Wu 2024, "Learning Galaxy Astrophysics from Interpretable Sparse
Feature Networks"): a residual CNN whose penultimate layer keeps only its k largest activations,
z = TopK(ReLU(GAP(CNN(x)))), followed by a linear head, y = W z + b. Each prediction is then a sum of
k feature contributions z_j W_j (plus the bias), which is what makes the k features interpretable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

K_CHOICES = (1, 2, 4, 8, 16, 32, 0)
"""Sparsities of the paper's sweep; 0 keeps every feature (no top-k)."""


@dataclass(frozen=True)
class SFNetConfig:
    """Shape of the network."""

    n_chan: int = 3
    """Input bands."""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of the four residual stages (each halves the resolution); the last is the number of features."""
    k: int = 0
    """Active penultimate features per galaxy; 0 keeps all of them."""
    n_targets: int = 1
    """Outputs of the linear head (1 for 12+log(O/H), 2 for the BPT ratios N2 and O3)."""
    stem_stride: int = 1
    """Stride of the first convolution: 2 halves the resolution before the first stage (as in ResNet),
    about 3x less compute for a network that needs no pixel-scale detail."""

    def __post_init__(self) -> None:
        if self.k not in K_CHOICES:
            raise ValueError(f"sfnet k must be one of {K_CHOICES} (0 = no top-k), got {self.k}")
        if self.k > self.widths[-1]:
            raise ValueError(f"sfnet k = {self.k} exceeds the {self.widths[-1]} features")
        if self.n_targets < 1:
            raise ValueError("sfnet n_targets must be >= 1")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"sfnet stem_stride must be 1 or 2, got {self.stem_stride}")


def topk_mask(z: Tensor, k: int) -> Tensor:
    """Keep the k largest entries of each row of z (B, F), zero the rest; k = 0 keeps all."""
    if k == 0 or k >= z.shape[1]:
        return z
    values, indices = z.topk(k, dim=1)
    return torch.zeros_like(z).scatter(1, indices, values)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 strided) shortcut (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ForwardOutput(NamedTuple):
    """Output of :meth:`SFNet.forward`."""

    prediction: Tensor
    """(B, T) predicted targets."""
    features: Tensor
    """(B, F) penultimate activations after the top-k (at most k non-zero per row)."""


class SFNet(nn.Module):
    r"""Residual CNN with a top-k penultimate layer and a linear head.

    Learning Galaxy Astrophysics from Interpretable Sparse Feature Networks (Wu, 2024), submitted to
    the AAS journals

    Arguments:
        cfg: The :class:`SFNetConfig`.

    Shapes: images (B, C, H, W) -> features (B, F) with F = widths[-1] -> prediction (B, T).
    """

    def __init__(self, cfg: SFNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Sequential(nn.Conv2d(cfg.n_chan, w[0], 3, cfg.stem_stride, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        stages, c_in = [], w[0]
        for i, c_out in enumerate(w):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(w[-1], cfg.n_targets)

    def features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, F) sparse penultimate activations."""
        z = F.relu(self.stages(self.stem(images)).mean(dim=(2, 3)))  # global average pool
        return topk_mask(z, self.cfg.k)

    def forward(self, images: Tensor) -> ForwardOutput:
        z = self.features(images)
        return ForwardOutput(self.head(z), z)

    def contributions(self, features: Tensor) -> Tensor:
        """(B, F) features -> (B, F, T) contributions z_j W_j; summed over F plus the bias they give
        the prediction."""
        return features.unsqueeze(-1) * self.head.weight.T.unsqueeze(0)

    def config(self) -> dict:
        return asdict(self.cfg)
