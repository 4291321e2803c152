"""Training loops of the cluster finders: AdamW with a one-cycle schedule, the checkpoint with the
lowest validation loss kept (seeded; the same config gives the same weights)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from galaxyml.clusters.prep import dihedral
from galaxyml.models.clusters import (CatalogueMLP, CenterNetDetector, DeepSets, Janossy, TileClassifier,
                                      detector_loss, gaussian_nll_2, gaussian_targets)
from galaxyml.models.schedule import one_cycle

Report = Callable[[int, int, str], None]


def fit(model: nn.Module, loss: Callable[[np.ndarray, bool, np.random.Generator], torch.Tensor], n_train: int,
        n_val: int, epochs: int, batch: int, lr: float, seed: int, name: str, report: Report | None = None) -> dict:
    """Train ``model`` on minibatches of training indices; ``loss(idx, train, rng)``; the best-validation
    weights are loaded back. Returns the training record."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, -(-n_train // batch))
    sched = one_cycle(opt, lr, epochs * steps_per_epoch)
    best, best_state, history = np.inf, None, []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n_train)
        for s in range(steps_per_epoch):
            opt.zero_grad()
            loss(order[s * batch:(s + 1) * batch], True, rng).backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            val = float(np.mean([loss(np.arange(i, min(i + 256, n_val)), False, rng).item() for i in range(0, n_val, 256)]))
        history.append(val)
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        if report:
            report(epoch + 1, epochs, f"{name}: epoch {epoch + 1}/{epochs}, validation loss {val:.3f}")
    model.load_state_dict(best_state)
    model.eval()
    return {"best_val_loss": best, "best_epoch": int(np.argmin(history)) + 1, "val_loss": history}


def train_classifier(x_tr, y_tr, x_va, y_va, width, epochs, batch, lr, seed, report=None):
    torch.manual_seed(seed)  # the initial weights too: a resumed build in a fresh process makes the same model
    model = TileClassifier(x_tr.shape[1], width)
    yt, yv = torch.tensor(y_tr, dtype=torch.float32), torch.tensor(y_va, dtype=torch.float32)

    def loss(idx, train, rng):
        x, y = (x_tr, yt) if train else (x_va, yv)
        xb = dihedral(x[idx], [np.zeros((0, 2))] * len(idx), rng)[0] if train else x[idx]
        return F.binary_cross_entropy_with_logits(model(_nhwc(xb)), y[idx])

    model.to(memory_format=torch.channels_last)
    record = fit(model, loss, len(x_tr), len(x_va), epochs, batch, lr, seed, "classifier", report)
    return model.to(memory_format=torch.contiguous_format), record


def _nhwc(x: np.ndarray) -> torch.Tensor:
    """A batch of images in channels-last memory: oneDNN's convolutions on the CPU are about 1.25x faster on
    it (a detector training step: 0.115 s against 0.143 s on 2 cores). Trained so, saved contiguous."""
    return torch.as_tensor(x).contiguous(memory_format=torch.channels_last)


def train_detector(x_tr, c_tr, r_tr, x_va, c_va, r_va, width, epochs, batch, lr, seed, sigma_cells=1.0, report=None):
    """``c_*``: per tile (n, 2) cluster centres in continuous model pixels; ``r_*``: (n, 3) log half-size
    [model px], z, log10 lambda."""
    torch.manual_seed(seed)
    model = CenterNetDetector(x_tr.shape[1], width)
    stride = model.stride
    h = x_tr.shape[-1] // stride

    def loss(idx, train, rng):
        x, c, r = (x_tr, c_tr, r_tr) if train else (x_va, c_va, r_va)
        xb, cb = dihedral(x[idx], [c[i] for i in idx], rng, roll=True) if train else (x[idx], [c[i] for i in idx])
        cells = [p / stride for p in cb]
        heat = torch.as_tensor(gaussian_targets((len(idx), h, h), cells, sigma_cells))
        return detector_loss(model(_nhwc(xb)), heat, cells, [r[i] for i in idx])

    model.to(memory_format=torch.channels_last)
    record = fit(model, loss, len(x_tr), len(x_va), epochs, batch, lr, seed, "detector", report)
    return model.to(memory_format=torch.contiguous_format), record


def train_catalogue(f_tr, t_tr, f_va, t_va, grid, epochs, batch, lr, seed, report=None):
    """``t_*``: (N, 3) presence, the centre's cell (row-major; -1 without a cluster), z (NaN without)."""
    torch.manual_seed(seed)
    model = CatalogueMLP(f_tr.shape[1], grid)
    ft, fv = torch.as_tensor(f_tr), torch.as_tensor(f_va)
    tt, tv = torch.as_tensor(t_tr, dtype=torch.float32), torch.as_tensor(t_va, dtype=torch.float32)

    n_col = f_tr.shape[1] // (grid * grid)

    def loss(idx, train, rng):
        f, t = (ft, tt) if train else (fv, tv)
        fb, tb = f[idx], t[idx].clone()
        if train:  # a random flip / quarter turn of the sky grid, and of the cluster's cell with it
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            cube = fb.reshape(-1, grid, grid, n_col)
            cells = torch.zeros(len(idx), grid, grid)
            pos_rows = (tb[:, 1] >= 0).nonzero().flatten()
            cells.view(len(idx), -1)[pos_rows, tb[pos_rows, 1].long()] = 1
            if flip:
                cube, cells = cube.flip(2), cells.flip(2)
            cube, cells = torch.rot90(cube, k, (1, 2)), torch.rot90(cells, k, (1, 2))
            fb = cube.reshape(len(idx), -1)
            tb[pos_rows, 1] = cells.reshape(len(idx), -1)[pos_rows].argmax(1).float()
        out = model(fb)
        pos = tb[:, 0] > 0.5
        value = F.binary_cross_entropy_with_logits(out[:, 0], tb[:, 0])
        if pos.any():
            value = value + F.cross_entropy(out[pos, 2:], tb[pos, 1].long()) + 5 * F.l1_loss(out[pos, 1], tb[pos, 2])
        return value

    return model, fit(model, loss, len(f_tr), len(f_va), epochs, batch, lr, seed, "catalogue network", report)


def train_set(kind, x_tr, m_tr, y_tr, x_va, m_va, y_va, epochs, batch, lr, seed, report=None):
    """``kind`` 'deepsets' or 'janossy'; ``y_*``: (N, 2) z and log10 lambda."""
    torch.manual_seed(seed)
    model = DeepSets() if kind == "deepsets" else Janossy()
    data = {True: (torch.as_tensor(x_tr), torch.as_tensor(m_tr), torch.as_tensor(y_tr, dtype=torch.float32)),
            False: (torch.as_tensor(x_va), torch.as_tensor(m_va), torch.as_tensor(y_va, dtype=torch.float32))}

    def loss(idx, train, rng):
        x, m, y = data[train]
        return gaussian_nll_2(model(x[idx], m[idx]), y[idx, 0], y[idx, 1])

    return model, fit(model, loss, len(x_tr), len(x_va), epochs, batch, lr, seed, kind, report)


@torch.no_grad()
def predict_sets(model, x, m, seed: int = 0) -> np.ndarray:
    """(N, 4) z, sigma_z, log10 lambda, sigma_log10_lambda; Janossy permutations from a fixed seed."""
    kwargs = {"generator": torch.Generator().manual_seed(seed)} if isinstance(model, Janossy) else {}
    out = model(torch.as_tensor(x), torch.as_tensor(m), **kwargs).numpy().astype(np.float64)
    return np.stack([out[:, 0], np.exp(out[:, 1].clip(-7, 3)), out[:, 2], np.exp(out[:, 3].clip(-7, 3))], 1)
