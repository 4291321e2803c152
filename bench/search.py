"""Similarity search at survey scale: exact against approximate FAISS search over synthetic embeddings
shaped like real ones, single-query latency (p50 / p99, one thread per query as the app issues them),
recall@10 of the approximate index against exact search, build time and index memory.

The vectors are a smooth 8-dimensional manifold in 256 dimensions plus noise, not separated blobs
(which make any index look perfect): latent points t ~ a correlated Gaussian with heavy tails are
mapped by a fixed random two-layer tanh network to 256-D, and isotropic Gaussian noise of 15% of
the signal's per-dimension spread is added. The spectrum of such vectors decays like that of the
atlas's embeddings (a few dominant directions, a long tail), and every vector has neighbours at
continuously varying distances.

    python bench/search.py                    # 1,000,000 x 256, IVF-Flat 4,096 lists (nprobe 16..128) and HNSW
    python bench/search.py --n 200000 --quick # smaller, IVF only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from galaxyml.index import build_index, normalise  # noqa: E402


def manifold_vectors(n: int, d: int = 256, intrinsic: int = 8, noise: float = 0.15, seed: int = 0,
                     chunk: int = 100_000) -> np.ndarray:
    """(n, d) float32: a random smooth map of an ``intrinsic``-dimensional latent space plus noise."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(intrinsic, intrinsic)) / np.sqrt(intrinsic)
    w1 = rng.normal(size=(intrinsic, 64)) / np.sqrt(intrinsic)
    b1 = rng.normal(size=64) * 0.5
    w2 = rng.normal(size=(64, d)) / np.sqrt(64)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        t = rng.standard_t(df=5, size=(m, intrinsic)) @ mix
        out[s : s + m] = np.tanh(t @ w1 + b1) @ w2
    out += rng.normal(scale=noise * out[:20000].std(0).mean(), size=out.shape).astype(np.float32)
    return out


def database_and_queries(n: int, d: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` database vectors and ``n_queries`` held-out queries (not in the database) from one manifold,
    with what was made and how long it took printed."""
    t0 = time.perf_counter()
    x = manifold_vectors(n + n_queries, d)
    print(f"{n:,} x {d} synthetic manifold vectors (+{n_queries} held-out queries) in {time.perf_counter() - t0:.1f} s; "
          f"{faiss.omp_get_max_threads()} FAISS threads; {os.cpu_count()} CPUs on this machine")
    return x[n_queries:], x[:n_queries]


def latency(search, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        search(q[None], k)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def recall(truth: np.ndarray, got: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(truth, got)]))


def index_megabytes(index: faiss.Index) -> float:
    return len(faiss.serialize_index(index)) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the database (default 1,000,000)")
    p.add_argument("--d", type=int, default=256, help="dimension (default 256)")
    p.add_argument("--queries", type=int, default=300, help="held-out query vectors (not in the database)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="FAISS threads (default 2)")
    p.add_argument("--quick", action="store_true", help="IVF only (no HNSW build)")
    args = p.parse_args()
    faiss.omp_set_num_threads(args.threads)

    x, queries = database_and_queries(args.n, args.d, args.queries)
    ev = np.linalg.eigvalsh(np.cov(normalise(x[:20000]).T))[::-1]
    print(f"spectrum: top direction {ev[0] / ev.sum():.1%} of the variance, 90% in {int(np.searchsorted(np.cumsum(ev) / ev.sum(), 0.9)) + 1} "
          f"of {args.d} directions")

    t0 = time.perf_counter()
    exact = build_index(x, large="ivf") if args.n <= 100_000 else None
    if exact is None:  # the exact index of the same centred unit vectors
        from galaxyml.arrays import streamed_mean

        mean = streamed_mean(x, 65536).astype(np.float32)
        flat = faiss.IndexFlatIP(args.d)
        for s in range(0, len(x), 65536):
            flat.add(normalise(x[s : s + 65536] - mean))
        search_exact = lambda q, k: flat.search(normalise(q - mean), k)  # noqa: E731
        exact_index = flat
    else:
        search_exact, exact_index = exact.search, exact.index
    build_exact = time.perf_counter() - t0
    _, truth = search_exact(queries, 10)
    p50, p99 = latency(search_exact, queries[:100])
    rows = [("exact (IndexFlatIP)", build_exact, index_megabytes(exact_index), 1.0, p50, p99)]
    print(f"exact: built in {build_exact:.1f} s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    if args.n > 100_000:
        t0 = time.perf_counter()
        ivf = build_index(x, large="ivf")
        build_ivf = time.perf_counter() - t0
        mb = index_megabytes(ivf.index)
        for nprobe in (16, 32, 64, 128):
            ivf.index.nprobe = nprobe
            _, got = ivf.search(queries, 10)
            p50, p99 = latency(ivf.search, queries)
            rows.append((f"IVF-Flat {ivf.index.nlist} lists, nprobe {nprobe}", build_ivf, mb, recall(truth, got), p50, p99))
            print(f"{rows[-1][0]}: recall@10 {rows[-1][3]:.3f}, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        del ivf
        if not args.quick:
            t0 = time.perf_counter()
            hnsw = build_index(x, large="hnsw", hnsw_m=32)
            build_hnsw = time.perf_counter() - t0
            mb = index_megabytes(hnsw.index)
            for ef in (64, 128, 256):
                hnsw.index.hnsw.efSearch = ef
                _, got = hnsw.search(queries, 10)
                p50, p99 = latency(hnsw.search, queries)
                rows.append((f"HNSW M=32, efSearch {ef}", build_hnsw, mb, recall(truth, got), p50, p99))
                print(f"{rows[-1][0]}: recall@10 {rows[-1][3]:.3f}, p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    exact_p50 = rows[0][4]
    print(f"\n{'index':38s} {'build s':>8s} {'MB':>8s} {'recall@10':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'speed-up':>8s}")
    for name, build, mb, rec, p50, p99 in rows:
        print(f"{name:38s} {build:8.1f} {mb:8.0f} {rec:9.3f} {p50:8.2f} {p99:8.2f} {exact_p50 / p50:7.0f}x")
    print("\nrecall@10: share of the exact 10 nearest neighbours (cosine, centred) of held-out queries that the "
          "index returns; latency: one query at a time")


if __name__ == "__main__":
    main()
