"""Survey-scale similarity search: an IVF-Flat index built in shards and merged (one coarse quantiser
trained on a sample and shared, each shard's inverted lists filled and written on their own, then
merged) beside the same index built in one pass, on synthetic embeddings shaped like real ones
(``bench/search.py``'s manifold vectors). Printed: build times, whether the two indexes answer
identically, recall@10 against exact search of held-out queries (not in the database) and
single-query latency p50 / p99 for several nprobe.

    python bench/scale.py                       # 1,000,000 x 256, 4 shards of 250,000
    python bench/scale.py --n 200000 --shard-rows 50000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from bench.search import database_and_queries, latency, recall  # noqa: E402
from galaxyml.index import build_index, build_sharded_index, normalise  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the database (default 1,000,000)")
    p.add_argument("--d", type=int, default=256, help="dimension (default 256)")
    p.add_argument("--shard-rows", type=int, default=250_000, help="rows per shard (default 250,000)")
    p.add_argument("--queries", type=int, default=300, help="held-out query vectors")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="FAISS threads (default 2)")
    args = p.parse_args()
    faiss.omp_set_num_threads(args.threads)

    x, queries = database_and_queries(args.n, args.d, args.queries)

    t0 = time.perf_counter()
    one = build_index(x, large="ivf")
    one_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        sharded, shards = build_sharded_index(x, Path(scratch), args.shard_rows)
        sharded_s = time.perf_counter() - t0
        shard_mb = sum(s["bytes"] for s in shards) / 2**20
    same = all(np.array_equal(a, b) for a, b in zip(sharded.search(queries, 10), one.search(queries, 10)))
    print(f"one pass: {one_s:.1f} s; {len(shards)} shards of <= {args.shard_rows:,} rows then merged: {sharded_s:.1f} s "
          f"({sharded_s / one_s:.2f}x, {shard_mb:.0f} MB of shard files); identical answers: {same}")
    del one

    flat = faiss.IndexFlatIP(args.d)
    for s in range(0, len(x), 65536):
        flat.add(normalise(x[s : s + 65536] - sharded.mean))
    _, truth = flat.search(normalise(queries - sharded.mean), 10)
    p50, p99 = latency(lambda q, k: flat.search(normalise(q - sharded.mean), k), queries[:100])
    print(f"\n{'index (held-out queries)':40s} {'recall@10':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    print(f"{'exact (IndexFlatIP)':40s} {1.0:9.3f} {p50:8.2f} {p99:8.2f}")
    flat.reset()  # its 1 GB freed before the IVF timings
    for nprobe in (8, 16, 32, 64):
        sharded.index.nprobe = nprobe
        _, got = sharded.search(queries, 10)
        p50, p99 = latency(sharded.search, queries)
        print(f"{f'sharded IVF-Flat {sharded.index.nlist} lists, nprobe {nprobe}':40s} {recall(truth, got):9.3f} "
              f"{p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
