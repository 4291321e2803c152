"""Rows of a survey-sized array computed shard by shard by an executor, then assembled.

Each shard is a contiguous row range [start, stop) whose task writes ``part-<start>-<stop>.npy`` into
the stage's scratch folder of the run (``<run>/.shards/<stage>-<stage hash>``) through a temporary
file and a rename, so a shard file is whole or absent. A build that was interrupted (a worker killed,
the machine stopped) finds the shards that finished and runs only the others; a shard file that does
not read back with the expected shape is computed again, never used. The shards' sha256 are returned
for the stage's manifest entry, and the scratch folder goes once the stage is committed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from galaxyml.arrays import shard_ranges
from galaxyml.atlas import sha256_file


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def shard_path(folder: Path, start: int, stop: int) -> Path:
    return folder / f"part-{start:012d}-{stop:012d}.npy"


def read_shard(path: Path, rows: int, dim: int) -> np.ndarray | None:
    """The shard's (rows, dim) array, or None when it is missing, truncated or of another shape."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return x if x.shape == (rows, dim) else None


def run_sharded(executor, task: Callable[..., dict], args: Callable[[int, int, Path], tuple], n: int, dim: int,
                shard_rows: int, scratch: Path, out: Path, progress: Callable[[int, int, str], None],
                what: str = "galaxies") -> list[dict]:
    """Rows [0, n) in shards of ``shard_rows``: ``task(*args(start, stop, path))`` writes each missing
    shard's (stop - start, dim) float32 array to ``path``; the shards are then copied in order into the npy
    file ``out``. Returns per shard: start, stop, sha256, and whether it was computed by this call."""
    scratch.mkdir(parents=True, exist_ok=True)
    for stale in scratch.glob(".*.tmp"):  # a task killed mid-write
        stale.unlink(missing_ok=True)
    ranges = shard_ranges(n, shard_rows)
    todo = [(a, b) for a, b in ranges if read_shard(shard_path(scratch, a, b), b - a, dim) is None]
    kept = len(ranges) - len(todo)
    progress(kept, len(ranges), f"{kept} of {len(ranges)} shards already done, {len(todo)} to compute")
    for i, _ in enumerate(executor.map(task, [args(a, b, shard_path(scratch, a, b)) for a, b in todo])):
        progress(kept + i + 1, len(ranges), f"shard {kept + i + 1} of {len(ranges)} ({what})")
    result = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, dim))
    records = []
    for a, b in ranges:
        path = shard_path(scratch, a, b)
        part = read_shard(path, b - a, dim)
        if part is None:
            raise RuntimeError(f"shard {path.name} is missing or damaged after its task reported success")
        result[a:b] = part
        records.append({"start": a, "stop": b, "sha256": sha256_file(path), "computed": (a, b) in todo})
    result.flush()
    del result
    return records

