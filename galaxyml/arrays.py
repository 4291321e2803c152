"""Streaming reductions over (memory-mapped) arrays too large to load at once."""

from __future__ import annotations

import numpy as np


def streamed_mean(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Column means of an (N, D) array read ``chunk`` rows at a time, accumulated in float64."""
    total = np.zeros(x.shape[1], np.float64)
    for start in range(0, len(x), chunk):
        total += np.asarray(x[start : start + chunk], np.float64).sum(0)
    return total / max(len(x), 1)


def fraction_unexplained(err: np.ndarray | float, sum_x: np.ndarray, sum_sq: float, n: int) -> np.ndarray | float:
    """FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖² of ``n`` rows from streamed sums: ``err`` = Σ‖x − x̂‖², ``sum_x`` = Σx
    (per dimension) and ``sum_sq`` = Σ‖x‖², since Σ‖x − x̄‖² = Σ‖x‖² − ‖Σx‖² / n. NaN without rows or
    variance."""
    var = sum_sq - float((np.asarray(sum_x, np.float64) ** 2).sum()) / max(n, 1)
    if not n or var <= 0:
        return np.full_like(np.asarray(err, np.float64), np.nan) if np.ndim(err) else float("nan")
    return np.asarray(err, np.float64) / var if np.ndim(err) else float(err) / var


def shard_ranges(n: int, shard_rows: int) -> list[tuple[int, int]]:
    """Contiguous row ranges [start, stop) of at most ``shard_rows`` rows covering ``n`` rows."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    return [(s, min(s + shard_rows, n)) for s in range(0, n, shard_rows)]
