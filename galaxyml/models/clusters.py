"""Networks that find galaxy clusters and measure them.

- :class:`TileClassifier`: a CNN scoring a sky tile as cluster / no cluster (binary cross-entropy).
- :class:`CenterNetDetector`: "Objects as Points" (Zhou, Wang & Krähenbühl 2019): a heatmap of cluster
  centres at stride 4 trained with the penalty-reduced focal loss (their eq. 1, alpha = 2, beta = 4)
  against Gaussians splatted at the true centres, and, read at each centre, an L1-regressed sub-cell
  offset, the box half-size (r_lambda in pixels), the redshift and log10 richness. Peaks are kept where
  the heatmap equals its 3 x 3 max-pool (CenterNet's NMS), then closer than a matching radius to a
  stronger peak are suppressed. A heatmap rather than YOLO anchors: a tile holds at most a few
  clusters whose sizes span a factor of ten, there are no aspect ratios to anchor, and the centre
  is what a cluster catalogue records.
- :class:`CatalogueMLP`: a fully connected network on a field's galaxy catalogue, binned into
  counts on a sky grid x colour bins -> cluster presence, the cell holding its centre, and its redshift.
- :class:`DeepSets` (Zaheer et al. 2017: rho(sum_i phi(x_i))) and :class:`Janossy` (k-ary Janossy
  pooling, Murphy et al. 2019: rho(mean over sampled permutations pi of f(x_pi(1), ..., x_pi(k)))):
  member set -> (z, log10 lambda), each with a predicted Gaussian sigma trained on the Gaussian
  negative log-likelihood, the per-cluster uncertainty.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEMBER_FEATURES = ("dx", "dy", "mag_r", "g_r", "r_z", "p")
"""Per-member inputs of the set regressors: offset from the P-weighted centre [r_lambda-free units:
arcmin], r magnitude relative to 20, two colours and the membership probability."""


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TileClassifier(nn.Module):
    """Cluster / no cluster from a (B, C, H, W) tile (64 x 64 is enough: a cluster is an excess of red
    galaxies over arcminutes): four conv blocks with 2x pooling, global average pooling, one logit."""

    def __init__(self, in_channels: int = 3, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(_conv_block(in_channels, w), nn.MaxPool2d(2), _conv_block(w, 2 * w),
                                      nn.MaxPool2d(2), _conv_block(2 * w, 4 * w), nn.MaxPool2d(2),
                                      _conv_block(4 * w, 4 * w))
        self.head = nn.Linear(4 * w, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


DETECTOR_HEADS = ("heat", "off_x", "off_y", "log_size", "z", "log_lambda")


class CenterNetDetector(nn.Module):
    """A stride-4 heatmap of cluster centres plus per-cell regressions (see the module docstring): two
    1 x 1 convolutions that read each pixel's colour, a stride-2 stem, a conv block at 1/2, one at 1/4, then dilated convolutions (2, 4, 8) that see a
    low-redshift cluster whole."""

    stride = 4

    def __init__(self, in_channels: int = 3, width: int = 12):
        super().__init__()
        w = width
        # Per-pixel colour first (1 x 1 convolutions: galaxies are a pixel or two here), then space.
        self.colour = nn.Sequential(nn.Conv2d(in_channels, 8, 1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 1),
                                    nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(8, w, 3, stride=2, padding=1), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True), _conv_block(w, 2 * w), nn.MaxPool2d(2),
                                  _conv_block(2 * w, 4 * w))
        self.context = nn.Sequential(*[nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=d, dilation=d),
                                                     nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True)) for d in (2, 4, 8)])
        self.heads = nn.Conv2d(4 * w, len(DETECTOR_HEADS), 1)
        with torch.no_grad():  # CenterNet's prior: the heatmap starts near 0.1% everywhere
            self.heads.bias.zero_()
            self.heads.bias[0] = -6.9

    def forward(self, x: Tensor) -> Tensor:
        """(B, 6, H/4, W/4): heat logit, sub-cell offsets, log box half-size [px], z, log10 lambda."""
        return self.heads(self.context(self.down(self.colour(x))))


def gaussian_targets(shape: tuple[int, int, int], centres: list[np.ndarray], sigma_cells: float) -> np.ndarray:
    """(B, h, w) heatmap targets: a Gaussian of ``sigma_cells`` at each centre (x, y in cells), max-combined."""
    b, h, w = shape
    out = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, cs in enumerate(centres):
        for cx, cy in np.asarray(cs, float).reshape(-1, 2):
            out[i] = np.maximum(out[i], np.exp(-((xx - np.floor(cx)) ** 2 + (yy - np.floor(cy)) ** 2) / (2 * sigma_cells**2)))
    return out


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss (Zhou et al. 2019, eq. 1), per object."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -((1 - p) ** alpha) * torch.log(p) * pos
    neg_loss = -((1 - target) ** beta) * (p**alpha) * torch.log(1 - p) * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def detector_loss(out: Tensor, heat: Tensor, centres: list[np.ndarray], regress: list[np.ndarray]) -> Tensor:
    """Focal loss on the heatmap plus L1 on offsets, log size, z and log lambda at the true centre cells.
    ``centres[i]``: (n, 2) centres in cells; ``regress[i]``: (n, 3) log half-size [px], z, log10 lambda."""
    loss = focal_loss(out[:, 0], heat)
    rows, cols, tiles, targets = [], [], [], []
    for i, (cs, rg) in enumerate(zip(centres, regress)):
        for (cx, cy), r in zip(np.asarray(cs, float).reshape(-1, 2), np.asarray(rg, float).reshape(-1, 3)):
            ix, iy = int(np.clip(np.floor(cx), 0, heat.shape[2] - 1)), int(np.clip(np.floor(cy), 0, heat.shape[1] - 1))
            tiles.append(i), rows.append(iy), cols.append(ix)
            targets.append([cx - np.floor(cx), cy - np.floor(cy), *r])
    if tiles:
        pred = out[tiles, 1:, rows, cols]
        loss = loss + F.l1_loss(pred, torch.as_tensor(np.array(targets), dtype=pred.dtype))
    return loss


def decode_detections(out: Tensor, stride: int, max_per_tile: int = 5, min_score: float = 0.01,
                      suppress_px: float = 0.0) -> list[np.ndarray]:
    """Per tile, detections as rows (x_px, y_px, half_size_px, score, z, log10_lambda), strongest
    first: heatmap peaks (3 x 3 max-pool NMS) above ``min_score``, then peaks within ``suppress_px``
    of a stronger one dropped."""
    heat = torch.sigmoid(out[:, 0])
    peaks = heat * (F.max_pool2d(heat[:, None], 3, stride=1, padding=1)[:, 0] == heat)
    result = []
    for i in range(out.shape[0]):
        scores, flat = peaks[i].flatten().topk(min(max_per_tile * 4, peaks[i].numel()))
        keep = []
        w = peaks.shape[2]
        for s, f in zip(scores.tolist(), flat.tolist()):
            if s < min_score or len(keep) >= max_per_tile:
                break
            iy, ix = divmod(f, w)
            reg = out[i, 1:, iy, ix].tolist()
            x, y = (ix + reg[0]) * stride, (iy + reg[1]) * stride
            if any(np.hypot(x - k[0], y - k[1]) < suppress_px for k in keep):
                continue
            keep.append((x, y, float(np.exp(reg[2])), s, reg[3], reg[4]))
        result.append(np.array(keep, np.float64).reshape(-1, 6))
    return result


class CatalogueMLP(nn.Module):
    """Fully connected network on a field's binned galaxy catalogue (``grid`` x ``grid`` cells x colour
    bins) -> a presence logit, one logit per cell for where the cluster is (a softmax over the cells), and
    the redshift."""

    def __init__(self, n_in: int, grid: int, hidden: int = 256):
        super().__init__()
        self.grid = grid
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 2 + grid * grid))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 2 + grid^2): presence logit, z, cell logits (row-major, y then x)."""
        return self.net(x)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class DeepSets(nn.Module):
    """rho([sum_i phi(x_i) / 100, mean_i phi(x_i)]) over the unmasked members (Zaheer et al. 2017):
    invariant to member order; the sum keeps the set's size (richness), the mean its typical member.
    Output (B, 4): mean z, log sigma z, mean log10 lambda, log sigma log10 lambda."""

    def __init__(self, n_features: int = len(MEMBER_FEATURES), hidden: int = 64):
        super().__init__()
        self.phi = _mlp(n_features, hidden, hidden)
        self.rho = _mlp(2 * hidden, hidden, 4)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.phi(x) * mask[..., None]
        n = mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.rho(torch.cat([h.sum(1) / 100.0, h.sum(1) / n], dim=1))


class Janossy(nn.Module):
    """k-ary Janossy pooling with sampled permutations (Murphy et al. 2019, pi-SGD): each of
    ``n_perm`` random permutations splits the set into consecutive k-tuples, f embeds every tuple, and
    rho reads [sum / 100, mean] of those embeddings averaged over the permutations. Exactly invariant
    in expectation; at evaluation the permutations are drawn from a fixed seed, so a prediction
    changes with member order only by the Monte-Carlo spread (measured in the tests)."""

    def __init__(self, n_features: int = len(MEMBER_FEATURES), hidden: int = 64, k: int = 2, n_perm: int = 4):
        super().__init__()
        self.k, self.n_perm = k, n_perm
        self.f = _mlp(k * n_features, hidden, hidden)
        self.rho = _mlp(2 * hidden, hidden, 4)

    def forward(self, x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, n, d = x.shape
        k = self.k
        n_tup = n // k
        if n_tup == 0:
            raise ValueError(f"Janossy pooling of arity {k} needs sets padded to at least {k} members")
        pooled = 0.0
        for _ in range(self.n_perm):
            # A random order of the members, padding sent last, so tuples are of real members first.
            keys = torch.rand(b, n, generator=generator, device=x.device) + (1 - mask) * 2.0
            order = keys.argsort(dim=1)
            xs = torch.gather(x, 1, order[..., None].expand(b, n, d))[:, : n_tup * k]
            ms = torch.gather(mask, 1, order)[:, : n_tup * k].reshape(b, n_tup, k).amin(2)  # whole tuples only
            h = self.f(xs.reshape(b, n_tup, k * d)) * ms[..., None]
            cnt = ms.sum(1, keepdim=True).clamp(min=1.0)
            pooled = pooled + torch.cat([h.sum(1) * k / 100.0, h.sum(1) / cnt], dim=1)
        return self.rho(pooled / self.n_perm)


def gaussian_nll_2(out: Tensor, z: Tensor, log_lambda: Tensor) -> Tensor:
    """Gaussian NLL of (z, log10 lambda) under the set regressor's (mean, log sigma) pairs."""
    loss = 0.0
    for j, target in ((0, z), (2, log_lambda)):
        mu, log_s = out[:, j], out[:, j + 1].clamp(-7, 3)
        loss = loss + (0.5 * ((target - mu) / log_s.exp()) ** 2 + log_s).mean()
    return loss


def load_detector(path, width: int) -> CenterNetDetector:
    """A trained :class:`CenterNetDetector` from its safetensors file (input bands read from the weights)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    model = CenterNetDetector(state["colour.0.weight"].shape[1], width)
    model.load_state_dict(state)
    return model.eval()
