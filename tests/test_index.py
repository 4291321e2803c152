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
