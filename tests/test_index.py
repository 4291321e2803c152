"""Similarity search: exact neighbours, centring, and the approximate index above the threshold."""

from __future__ import annotations

import numpy as np

from galaxyml import index as gindex


def test_exact_index_returns_the_query_first_and_true_cosine_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(500, 16)) + 20.0).astype(np.float32)  # a large common offset
    sim = gindex.build_index(x)
    assert sim.kind == "exact"
    gindex.save_index(sim, tmp_path)
    back = gindex.load_index(tmp_path)
    sims, ids = back.search(x[7], k=5)
    assert ids[0, 0] == 7 and np.isclose(sims[0, 0], 1.0, atol=1e-5)
    c = gindex.normalise(x - x.mean(0))
    expected = np.argsort(-(c @ c[7]))[:5]
    np.testing.assert_array_equal(ids[0], expected)
    assert sims[0, 1] < 0.9  # centring keeps neighbours distinguishable despite the offset


def test_large_surveys_get_an_approximate_index(monkeypatch):
    monkeypatch.setattr(gindex, "EXACT_MAX_ROWS", 100)
    x = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    sim = gindex.build_index(x)
    assert sim.kind == "ivf" and sim.index.nprobe == 32
    assert sim.search(x[42], k=1)[1][0, 0] == 42
    assert gindex.measure(sim, x, 50)["recall_at_10"] > 0.95  # 69 lists, 32 probed: nearly exact
    graph = gindex.build_index(x, large="hnsw")
    assert graph.kind == "hnsw" and graph.search(x[42], k=1)[1][0, 0] == 42


def test_an_index_built_in_shards_and_merged_answers_exactly_as_one_built_in_one_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(gindex, "EXACT_MAX_ROWS", 100)
    x = np.random.default_rng(2).normal(size=(5_000, 16)).astype(np.float32)
    one = gindex.build_index(x, nprobe=4)
    sharded, records = gindex.build_sharded_index(x, tmp_path, shard_rows=1_200, nprobe=4)
    assert [(r["start"], r["stop"]) for r in records] == [(0, 1200), (1200, 2400), (2400, 3600), (3600, 4800),
                                                          (4800, 5000)]
    assert sharded.index.ntotal == 5_000 and sharded.index.nprobe == 4
    for got, want in zip(sharded.search(x[:200], 10), one.search(x[:200], 10)):
        np.testing.assert_array_equal(got, want)  # the same lists, the same ids: the same neighbours
    # An interrupted build: one shard lost, one cut short mid-write. Only those two are built again.
    (tmp_path / records[1]["file"]).unlink()
    path = tmp_path / records[3]["file"]
    path.write_bytes(path.read_bytes()[: 1_000])
    again, records = gindex.build_sharded_index(x, tmp_path, shard_rows=1_200, nprobe=4)
    assert [r["rebuilt"] for r in records] == [False, True, False, True, False]
    np.testing.assert_array_equal(again.search(x[:200], 10)[1], one.search(x[:200], 10)[1])
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written shard left behind


def test_the_index_stage_builds_large_spaces_in_shards_on_the_builds_executor(tmp_path, monkeypatch):
    from precompute.executor import LocalExecutor
    from precompute.stage import StageContext
    from precompute.stages.index import IndexConfig, _sharded

    monkeypatch.setattr(gindex, "EXACT_MAX_ROWS", 100)
    np.save(tmp_path / "embeddings.npy", np.random.default_rng(3).normal(size=(3_000, 8)).astype(np.float32))
    x = np.load(tmp_path / "embeddings.npy", mmap_mode="r")
    tasks, steps = [], []

    class Counting(LocalExecutor):
        def map(self, fn, jobs):
            tasks.extend(jobs)
            return super().map(fn, jobs)

    ctx = StageContext("index", IndexConfig(shard_rows=1_000, nprobe=8), tmp_path / "out", {},
                       report=lambda i, n, msg: steps.append(msg), executor=Counting(), scratch=tmp_path / "shards")
    sim, shards = _sharded(ctx, "embeddings", x, ctx.cfg)
    assert len(shards) == 3 and len(tasks) == 3 and steps[-1] == "embeddings: index shard 3 of 3 built (3 in all)"
    assert tasks[0][1] == str(tmp_path / "embeddings.npy")  # the workers read the memory-mapped file itself
    np.testing.assert_array_equal(sim.search(x[:50], 5)[1], gindex.build_index(x, nprobe=8).search(x[:50], 5)[1])
