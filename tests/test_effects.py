"""Feature directions in embedding units and what removing a feature does to the vote network."""

from __future__ import annotations

import numpy as np
import pytest

from galaxyml.atlas import Atlas
from galaxyml.effects import held_out_top, has_vote_effects, vote_effects, vote_predictor
from galaxyml.interpret import ablation_effects, dense_activations, matryoshka_family, property_for_query


@pytest.mark.parametrize("model", ["sae", "matryoshka", "pca"])
def test_feature_directions_rebuild_the_embeddings(quick_home, model):
    """Activations times directions rebuild the raw embeddings to the model's own FVU: the directions
    are in embedding units (a wrong input scale would leave most of the variance unexplained)."""
    atlas = Atlas.open(quick_home / "quick")
    z = np.asarray(atlas.embeddings(), np.float64)
    fs = atlas.feature_set(model)
    acts = dense_activations(np.asarray(fs.code_indices), np.asarray(fs.code_values), fs.n_features)
    residual = z - acts @ atlas.feature_directions(model).astype(np.float64)
    residual -= residual.mean(0)  # the SAE's pre-encoder bias (and PCA's mean) is a constant
    fvu = (residual**2).sum() / ((z - z.mean(0)) ** 2).sum()
    assert fvu == pytest.approx(atlas.metrics(model)["fvu"], abs=0.01)
    assert fvu < 0.2


def test_vote_predictor_reproduces_the_vote_networks_predictions(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    predict, columns = vote_predictor(atlas)
    stored = atlas.load_table("zoobot", "predictions.parquet")
    got = predict(np.asarray(atlas.embeddings()[:200]))
    np.testing.assert_allclose(got, stored[[f"pred_{c}" for c in columns]].to_numpy()[:200], atol=2e-4)


def test_ablation_effect_of_a_linear_head_is_the_mean_activation_along_the_direction():
    rng = np.random.default_rng(0)
    w, z, a, d = rng.normal(size=(3, 4)), rng.normal(size=(10, 4)), rng.random(10), rng.normal(size=4)
    np.testing.assert_allclose(ablation_effects(z, a, d, lambda x: x @ w.T), a.mean() * (w @ d), rtol=1e-5)


def test_vote_effects_keep_each_question_summing_to_one(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    assert has_vote_effects(atlas, "sae") and not has_vote_effects(atlas, "sfnet_bpt")
    fs = atlas.feature_set("sae")
    held_out = atlas.split().held_out
    live = [f for f in fs.stats.loc[~fs.stats["dead"], "feature"] if len(held_out_top(fs, int(f), held_out)[0])][:5]
    train_only = [f for f in fs.stats.loc[~fs.stats["dead"], "feature"] if not len(held_out_top(fs, int(f), held_out)[0])]
    for feature in live:
        galaxies, _ = held_out_top(fs, int(feature), held_out)
        assert set(galaxies) <= set(held_out)  # read on galaxies the vote network never trained on
        effects = vote_effects(atlas, "sae", int(feature), fs=fs).set_index("answer")["delta"]
        assert effects.abs().max() > 0
        for question in ("smooth-or-featured", "bar"):  # answers of one question trade votes
            assert effects[effects.index.str.startswith(question + "_")].sum() == pytest.approx(0.0, abs=1e-5)
    for feature in train_only[:1]:  # a feature seen on training galaxies only has no held-out effect
        assert (vote_effects(atlas, "sae", int(feature), fs=fs)["delta"] == 0).all()
    with pytest.raises(ValueError, match="not read by this atlas's vote network"):
        vote_effects(atlas, "sfnet_bpt", 0)


def test_matryoshka_family_places_a_feature_in_its_group_and_finds_its_relatives():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(8, 16))
    d[1] = d[3] + 0.1 * rng.normal(size=16)  # a coarse feature that feature 3 refines
    d[6] = d[3] + 0.2 * rng.normal(size=16)  # and a finer one close to it
    family = matryoshka_family(d, [2, 2, 4], 3)
    assert (family["group"], family["n_groups"], family["first"], family["last"]) == (1, 3, 2, 3)
    assert family["coarser"][0][0] == 1 and family["finer"][0][0] == 6
    assert set(family["coarser"][0]) <= {0, 1} and set(family["finer"][0]) <= set(range(4, 8))
    assert family["coarser"][1][0] > 0.9
    assert len(matryoshka_family(d, [2, 2, 4], 0)["coarser"][0]) == 0  # the first group has nothing coarser
    with pytest.raises(IndexError):
        matryoshka_family(d, [2, 2, 4], 8)


def test_a_search_names_the_property_it_means():
    cols = ["z", "log_mstar", "oh_12", "n_arms", "has-spiral-arms_yes_fraction", "g_r"]
    assert property_for_query("features correlated with metallicity", cols) == "oh_12"
    assert property_for_query("  Metallicity ", cols) == "oh_12"
    assert property_for_query("metallicity", ["oh_p50", "z"]) == "oh_p50"  # an MPA-JHU catalog
    assert property_for_query("mstar", cols) == "log_mstar"  # the one column containing it
    assert property_for_query("arms", cols) is None  # two columns: search the labels instead
    assert property_for_query("high g_r", cols) is None
    assert property_for_query("metallicity", ["z"]) is None
