"""Similarity search over galaxy embeddings with FAISS (Douze et al. 2024, arXiv:2401.08281).

Embeddings are centred on the survey mean and L2-normalised, so inner product is the cosine
similarity of what distinguishes galaxies (mean-pooled transformer states share a large common
component that would otherwise make every pair look alike). The index type follows the survey
size: exact (``IndexFlatIP``) up to ``EXACT_MAX_ROWS``, IVF-Flat (or an HNSW graph) above. The same
code indexes the sparse SAE codes (not centred: cosine of the activation vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from galaxyml.arrays import shard_ranges, streamed_mean

EXACT_MAX_ROWS = 100_000
INDEX_FILE = "embeddings.faiss"
MEAN_FILE = "mean.npy"
INFO_FILE = "index.json"


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, C-contiguous, as FAISS expects)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class SimilarityIndex:
    """A FAISS index with the centring applied to every query."""

    index: faiss.Index
    mean: np.ndarray

    @property
    def kind(self) -> str:
        if isinstance(self.index, faiss.IndexFlatIP):
            return "exact"
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "hnsw"

    def search(self, queries: np.ndarray, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and galaxy indices of the k nearest neighbours of each query row."""
        return self.index.search(normalise(np.atleast_2d(queries) - self.mean), k)


def build_index(embeddings: np.ndarray, chunk: int = 65536, hnsw_m: int = 32, centre: bool = True,
                large: str = "ivf", nprobe: int = 32, seed: int = 0) -> SimilarityIndex:
    """Index (N, D) vectors for cosine search, added in chunks so a memory-mapped array is streamed.

    Up to ``EXACT_MAX_ROWS`` rows the index is exact; above, ``large`` chooses IVF-Flat (4 sqrt(N) lists,
    4,096 from a million rows, trained on a sample; ``nprobe`` lists searched) or an HNSW graph."""
    n, d = embeddings.shape
    mean = streamed_mean(embeddings, chunk).astype(np.float32) if centre else np.zeros(d, np.float32)
    if n <= EXACT_MAX_ROWS:
        index = faiss.IndexFlatIP(d)
    elif large == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        index = trained_ivf(embeddings, mean, nprobe, seed)
    _add(index, embeddings, mean, 0, n, chunk)
    return SimilarityIndex(index, mean)


def _add(index: faiss.Index, x: np.ndarray, mean: np.ndarray, start: int, stop: int, chunk: int = 65536) -> None:
    for s in range(start, stop, chunk):
        index.add(normalise(x[s : min(s + chunk, stop)] - mean))


def trained_ivf(embeddings: np.ndarray, mean: np.ndarray, nprobe: int = 32, seed: int = 0) -> faiss.IndexIVFFlat:
    """An empty IVF-Flat index (4 sqrt(N) lists, 4,096 from a million rows) whose coarse quantiser is
    trained on a seeded sample of 64 rows per list."""
    n, d = embeddings.shape
    nlist = 4096 if n >= 1_000_000 else int(4 * np.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False))
    index.train(normalise(np.asarray(embeddings[sample]) - mean))
    index.nprobe = nprobe
    return index


def build_shard(trained_file: str, vectors_file: str, mean_file: str, start: int, stop: int, path: str) -> int:
    """One shard task: rows [start, stop) of the npy file ``vectors_file`` (memory-mapped), centred by
    ``mean_file`` and added to a copy of the trained empty index ``trained_file``, written to ``path``
    atomically (a temporary file renamed, so a shard file on disk is always whole); returns the rows it
    holds. Plain arguments and files, so any worker that sees the files can run it."""
    shard = faiss.read_index(trained_file)
    x = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
    _add(shard, x, np.load(mean_file, allow_pickle=False), start, stop)
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    faiss.write_index(shard, str(tmp))
    tmp.replace(out)
    return int(shard.ntotal)


def merge_shards(trained: faiss.IndexIVF, shards: list[tuple[int, Path]]) -> faiss.IndexIVF:
    """The shards' inverted lists appended, in row order, to a copy of the trained index (``merge_from``
    with each shard's first row as the id offset): the same index, list by list and id by id, as one
    built in a single pass with that quantiser."""
    merged = faiss.clone_index(trained)
    for start, path in sorted(shards):
        merged.merge_from(faiss.read_index(str(path)), start)
    merged.nprobe = trained.nprobe
    return merged


def _in_process(fn, jobs):
    return (fn(*args) for args in jobs)


def build_sharded_index(embeddings: np.ndarray, folder: Path, shard_rows: int = 250_000, nprobe: int = 32,
                        seed: int = 0, centre: bool = True, run=_in_process, report=None
                        ) -> tuple[SimilarityIndex, list[dict]]:
    """IVF-Flat built per shard of rows and merged (FAISS's recipe for indexes too large for one pass:
    one coarse quantiser trained on a sample and shared, inverted lists filled per shard, then merged).

    ``run(fn, jobs)`` runs the shard tasks :func:`build_shard` (in this process by default; an executor's
    ``map`` on a cluster). They read the trained index, the centring vector and the vectors from files in
    ``folder`` (the vectors from their own npy file when ``embeddings`` is memory-mapped). A shard file
    already in ``folder`` with the right row count is kept, so an interrupted build redoes only its
    missing shards. Returns the index and a record per shard (rows, file, bytes, whether rebuilt)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, d = embeddings.shape
    mean = streamed_mean(embeddings).astype(np.float32) if centre else np.zeros(d, np.float32)
    trained = trained_ivf(embeddings, mean, nprobe, seed)
    files = {"trained": folder / "trained.faiss", "mean": folder / "mean.npy"}
    faiss.write_index(trained, str(files["trained"]))
    np.save(files["mean"], mean, allow_pickle=False)
    source = getattr(embeddings, "filename", None)
    if source is None or not str(source).endswith(".npy"):
        source = folder / "vectors.npy"
        np.save(source, np.ascontiguousarray(embeddings, np.float32), allow_pickle=False)
    ranges = shard_ranges(n, shard_rows)
    paths = [folder / f"shard-{i:05d}-{start}-{stop}.faiss" for i, (start, stop) in enumerate(ranges)]
    todo = [i for i, ((start, stop), p) in enumerate(zip(ranges, paths)) if not _whole(p, stop - start)]
    jobs = [(str(files["trained"]), str(source), str(files["mean"]), *ranges[i], str(paths[i])) for i in todo]
    for done, _ in enumerate(run(build_shard, jobs)):
        if report is not None:
            report(done + 1, len(todo), f"index shard {done + 1} of {len(todo)} built ({len(ranges)} in all)")
    index = merge_shards(trained, [(start, p) for (start, _), p in zip(ranges, paths)])
    records = [{"start": start, "stop": stop, "file": p.name, "bytes": p.stat().st_size, "rebuilt": i in todo}
               for i, ((start, stop), p) in enumerate(zip(ranges, paths))]
    return SimilarityIndex(index, mean), records


def _whole(path: Path, rows: int) -> bool:
    if not path.exists():
        return False
    try:
        return faiss.read_index(str(path)).ntotal == rows
    except RuntimeError:  # an unreadable shard is built again
        return False


def measure(sim: SimilarityIndex, vectors: np.ndarray, n_queries: int = 200, k: int = 10, seed: int = 0
            ) -> dict[str, float]:
    """recall@k of the index against exact search, and single-query latency (p50 / p99, ms), on
    ``n_queries`` rows of ``vectors`` drawn at random."""
    import time

    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(len(vectors), min(n_queries, len(vectors)), replace=False))
    queries = np.asarray(vectors[q], np.float32)
    if sim.kind == "exact":
        recall = 1.0
    else:
        exact = faiss.IndexFlatIP(sim.index.d)
        for start in range(0, len(vectors), 65536):
            exact.add(normalise(vectors[start : start + 65536] - sim.mean))
        _, want = exact.search(normalise(queries - sim.mean), k)
        _, got = sim.search(queries, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(want, got)]))
    times = []
    for row in queries:
        t0 = time.perf_counter()
        sim.search(row[None], k)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"recall_at_10": recall, "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "n_queries": int(len(q))}


def save_index(sim: SimilarityIndex, folder: Path, name: str = "embeddings") -> dict:
    """Write ``<name>.faiss`` and its centring vector; returns what the index is (kind, size, parameters)."""
    faiss.write_index(sim.index, str(folder / f"{name}.faiss"))
    np.save(folder / (MEAN_FILE if name == "embeddings" else f"{name}_mean.npy"), sim.mean, allow_pickle=False)
    params = {"nprobe": int(sim.index.nprobe), "nlist": int(sim.index.nlist)} if sim.kind == "ivf" else {}
    return {"kind": sim.kind, "n": int(sim.index.ntotal), "d": int(sim.index.d), **params}


def load_index(folder: Path, name: str = "embeddings") -> SimilarityIndex:
    mean = folder / MEAN_FILE if name == "embeddings" else folder / f"{name}_mean.npy"
    return SimilarityIndex(faiss.read_index(str(folder / f"{name}.faiss")), np.load(mean, allow_pickle=False))
