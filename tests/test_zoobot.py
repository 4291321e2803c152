"""The Zoobot-style vote network and the embeddings it gives the sparse-feature suite."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from galaxyml.atlas import Atlas
from galaxyml.data.mock.structure import VOTE_COLUMNS
from galaxyml.data.survey import Survey
from galaxyml.models.zoobot import VoteSchema, vote_loss
from precompute.stage import StageNotApplicable
from precompute.stages.zoobot import ZoobotConfig, vote_columns


def test_questions_are_read_from_galaxy_zoo_column_names():
    schema = VoteSchema.from_columns(VOTE_COLUMNS)
    assert schema.questions == ("smooth-or-featured", "disk-edge-on", "has-spiral-arms", "bar", "merging",
                                "anything-odd", "odd-feature")
    # three answers, then binary questions with a complement each, then three bar answers, then merging,
    # then Galaxy Zoo 2's "anything odd?" and its "ring" answer, binary too
    assert schema.slices == ((0, 3), (3, 5), (5, 7), (7, 10), (10, 12), (12, 14), (14, 16))
    with pytest.raises(ValueError, match="<question>_<answer>_fraction"):
        VoteSchema.from_columns(["bar_strong", "smooth-or-featured_smooth_fraction"])


def test_targets_add_complements_renormalise_and_mark_unasked_questions():
    schema = VoteSchema.from_columns(["q_a_fraction", "q_b_fraction", "edge_yes_fraction"])
    t = schema.targets(np.array([[0.2, 0.6, 0.25], [np.nan, np.nan, 1.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(t[0], [0.25, 0.75, 0.25, 0.75])  # q renormalised; edge gets its "no"
    assert np.isnan(t[1, :2]).all() and t[1, 2:].tolist() == [1.0, 0.0]  # q not asked
    assert np.isnan(t[2, :2]).all()  # nobody answered q


def test_loss_is_zero_at_the_observed_fractions_and_ignores_unasked_questions():
    schema = VoteSchema.from_columns(VOTE_COLUMNS)
    rng = np.random.default_rng(0)
    fractions = rng.dirichlet(np.ones(3), 8)
    f = np.column_stack([fractions, rng.random((8, 2)), rng.dirichlet(np.ones(3), 8), rng.random((8, 3))])
    f[3, 5:8] = np.nan  # the bar question was not asked of galaxy 3
    target = torch.from_numpy(schema.targets(f))
    logits = torch.log(torch.nan_to_num(target, nan=0.5).clamp_min(1e-12))
    loss = vote_loss(schema)
    assert loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(torch.zeros_like(logits), target).item() > 0.05
    np.testing.assert_allclose(schema.fractions(logits)[~np.isnan(f)], f[~np.isnan(f)], atol=1e-5)


def test_a_catalog_without_votes_makes_the_stage_not_applicable_and_a_wrong_column_is_named():
    survey = Survey(catalog=pd.DataFrame({"galaxy_id": ["a"], "g_r": [0.5]}), images=np.zeros((1, 3, 4, 4), np.float32),
                    bands=("g", "r", "z"), meta={})
    with pytest.raises(StageNotApplicable, match="vote-fraction"):
        vote_columns(ZoobotConfig(), survey)
    with pytest.raises(ValueError, match="bar_strong_fraction"):
        vote_columns(ZoobotConfig(vote_columns="bar_strong_fraction"), survey)


def test_quick_atlas_embeddings_come_from_the_vote_network(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    met = atlas.metrics("zoobot")
    assert met["questions"] == ["smooth-or-featured", "disk-edge-on", "has-spiral-arms", "bar", "merging",
                                "anything-odd", "odd-feature"]
    assert met["test_mae"] < met["baseline_mae"]  # it learned the votes, beyond their mean
    assert atlas.metrics("embeddings")["source"] == "zoobot"
    emb = np.load(quick_home / "quick" / "embeddings" / "embeddings.npy", allow_pickle=False)
    z = np.load(quick_home / "quick" / "zoobot" / "embeddings.npy", allow_pickle=False)
    np.testing.assert_array_equal(emb, z)
    pred = pd.read_parquet(quick_home / "quick" / "zoobot" / "predictions.parquet")
    assert list(pred["galaxy_id"]) == list(atlas.catalog()["galaxy_id"])
    smooth = pred[[c for c in pred.columns if c.startswith("pred_smooth-or-featured")]].sum(axis=1)
    np.testing.assert_allclose(smooth, 1.0, atol=1e-5)  # one softmax per question


def built_order(run_dir) -> list[str]:
    events = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    return [e["stage"] for e in events if e["event"] == "stage_done"]


def test_with_votes_the_encoder_trains_after_the_feature_pages_are_ready(quick_home):
    order = built_order(quick_home / "quick")
    assert "encoder" in order  # still trained (a user can switch embeddings.source to it)
    assert order.index("features") < order.index("encoder")
    assert order.index("zoobot") < order.index("embeddings") < order.index("sae")


def test_with_votes_an_encoder_change_retrains_only_the_encoder(quick_copy):
    from precompute.config import read_preset, resolve_configs
    from precompute.runner import run_pipeline
    from precompute.stage import all_stages

    stages = all_stages()
    configs = resolve_configs(stages, read_preset("quick"), ["encoder.epochs=1"])
    result = run_pipeline(quick_copy, "quick", stages, configs, preset="quick")
    assert result.actions["encoder"] == "ran"
    # The embeddings come from the vote network: they, the SAEs and the features are kept; only the probes,
    # which compare the encoder's embeddings, follow the encoder.
    assert {result.actions[s] for s in ("embeddings", "sae", "matryoshka", "features", "index")} == {"skipped"}
    assert result.actions["probes"] == "ran"


def test_with_votes_the_encoder_embeddings_are_probed_for_comparison(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    main, encoder = atlas.probes(), atlas.encoder_probes()
    assert encoder is not None and list(encoder["property"]) == list(main["property"])
    assert atlas.metrics("probes")["encoder_median_r2"] == pytest.approx(
        encoder.loc[encoder["kind"] == "continuous", "score"].median())


@pytest.mark.parametrize("source, epochs", [("zoobot", 100), ("encoder", 200), ("file", 200)])
def test_sae_epochs_follow_the_embeddings_source_unless_set(tmp_path, source, epochs):
    from precompute.stage import StageContext
    from precompute.stages.embeddings import SOURCE_FILE
    from precompute.stages.matryoshka import MatryoshkaConfig
    from precompute.stages.sae import SAEConfig, with_epochs

    (tmp_path / SOURCE_FILE).write_text(f'{{"source": "{source}"}}')
    for cfg in (SAEConfig(), MatryoshkaConfig()):
        ctx = StageContext("sae", cfg, tmp_path, {"embeddings": tmp_path})
        assert with_epochs(ctx).epochs == epochs
    ctx = StageContext("sae", SAEConfig(epochs=7), tmp_path, {"embeddings": tmp_path})
    assert with_epochs(ctx).epochs == 7


def test_skipping_the_encoder_keeps_the_feature_suite_of_a_catalog_with_votes(tmp_path):
    from precompute.cli import select_stages
    from precompute.config import read_preset, resolve_configs
    from precompute.runner import run_pipeline
    from precompute.stage import all_stages

    stages = select_stages(all_stages(), [], ["encoder"])
    assert {"embeddings", "sae", "features", "probes"} <= set(stages) and "encoder" not in stages
    configs = resolve_configs(all_stages(), read_preset("quick"), ["survey.n_galaxies=300", "zoobot.epochs=1"])
    keep = {n: stages[n] for n in ("survey", "zoobot", "embeddings", "probes")}
    result = run_pipeline(tmp_path, "noenc", keep, {n: configs[n] for n in keep}, preset="quick")
    assert result.actions["embeddings"] == result.actions["probes"] == "ran"
    atlas = Atlas.open(tmp_path / "noenc")
    assert atlas.metrics("embeddings")["source"] == "zoobot" and atlas.encoder_probes() is None
