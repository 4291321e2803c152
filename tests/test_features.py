"""Streaming per-feature statistics agree with a dense brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest

from galaxyml.atlas import Atlas
from galaxyml.features import summarise_codes


def sparse_codes(n=2000, m=50, k=4, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(m - 5, k, replace=False) for _ in range(n)]).astype(np.int32)  # 5 dead
    val = rng.exponential(1.0, (n, k)).astype(np.float32)
    val[rng.random((n, k)) < 0.1] = 0.0  # some inactive slots
    return idx, val


@pytest.mark.parametrize("chunk", [97, 500, 10_000])
def test_streaming_stats_match_dense(chunk):
    idx, val = sparse_codes()
    n, m = len(idx), 50
    dense = np.zeros((n, m), np.float32)
    np.put_along_axis(dense, idx, val, axis=1)
    s = summarise_codes(idx, val, m, top_n=7, n_bins=10, chunk=chunk)
    np.testing.assert_allclose(s.stats["density"], (dense > 0).mean(0))
    np.testing.assert_allclose(s.stats["max_activation"], dense.max(0), rtol=1e-6)
    np.testing.assert_allclose(s.stats["mean_activation"], dense.mean(0), rtol=1e-5)
    assert s.stats["dead"].sum() == 5
    for f in range(m - 5):
        expected = np.sort(dense[:, f])[::-1][:7]
        np.testing.assert_allclose(s.top_values[f], expected, rtol=1e-6)
        np.testing.assert_allclose(dense[s.top_galaxies[f], f], expected, rtol=1e-6)
    assert (s.top_galaxies[m - 5:] == -1).all()
    np.testing.assert_array_equal(s.hist_counts.sum(1), (dense > 0).sum(0))


@pytest.mark.parametrize("model", ["sae", "matryoshka", "pca"])
def test_every_feature_set_is_consistent(quick_home, model):
    """One contract for every feature model: codes, statistics and top galaxies agree."""
    from galaxyml.atlas import Atlas

    fs = Atlas.open(quick_home / "quick").feature_set(model)
    idx, val = np.asarray(fs.code_indices), np.asarray(fs.code_values)
    assert idx.shape == val.shape and (val >= 0).all() and idx.max() < fs.n_features
    assert np.all(np.diff(val, axis=1) <= 0)  # strongest feature first
    live = fs.stats.loc[~fs.stats["dead"], "feature"].to_numpy()
    f = int(live[0])
    gal, top = fs.top(f)
    dense = fs.activations(f)
    np.testing.assert_allclose(top, np.sort(dense)[::-1][: len(top)], rtol=1e-6)
    np.testing.assert_allclose(dense[gal], top, rtol=1e-6)
    assert fs.stats.loc[f, "density"] == pytest.approx((dense > 0).mean())
    assert f in set(fs.features_of(int(gal[0]))["feature"])


def test_quantile_examples_cover_the_weakest_bin_even_for_a_single_value():
    from galaxyml.interpret import quantile_examples

    acts = np.zeros((50, 3), np.float32)
    acts[:, 0] = np.linspace(0, 1, 50)
    acts[7, 1] = 0.4  # active on one galaxy only
    out = quantile_examples(acts, n_bins=5, per_bin=6)
    assert (out[0, 0] >= 0).any() and (out[0, 4] >= 0).any()
    assert out[1, 0, 0] == 7 and (out[1, 1:] == -1).all()
    assert (out[2] == -1).all()  # dead feature


def test_labels_name_vote_answers_not_raw_columns(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    labels = atlas.feature_set("sae").stats["label"]
    raw = atlas.survey().vote_columns()
    assert raw and not any(labels.str.contains(c, regex=False).any() for c in raw)
    assert labels.str.contains(r"(?:high|low) [a-z-]+: [a-z-]+ votes").any()  # e.g. "high has-spiral-arms: yes votes"
