"""SFNet stages, training and linear probes: what the predictions page shows must add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galaxyml.atlas import Atlas
from galaxyml.relations import bpt_classify
from galaxyml.models.encoder import Normalisation
from galaxyml.models.sfnet import SFNetConfig
from galaxyml.models.sfnet_training import SFNetTrainConfig, fit_sfnet, load_sfnet, predict, save_sfnet
from precompute.cli import select_stages, source_overrides, parse_args
from precompute.config import ConfigError
from precompute.stage import StageNotApplicable, all_stages
from precompute.stages.sfnet import SFNetStageConfig, sparse_codes, target_columns


@pytest.fixture(scope="module")
def quick(quick_home) -> Atlas:
    return Atlas.open(quick_home / "quick")


@pytest.mark.parametrize("model", ["sfnet_metallicity", "sfnet_bpt"])
def test_every_galaxy_is_predicted_and_contributions_sum_to_the_prediction(quick, model):
    table = quick.predictions(model)
    cat = quick.catalog()
    assert list(table["galaxy_id"]) == list(cat["galaxy_id"])  # one row per galaxy, survey order
    weights, bias, targets = quick.sfnet_head(model)
    fs = quick.feature_set(model)
    k = quick.metrics(model)["k"]
    for g in (0, 17, 500):
        active = fs.features_of(g)
        assert len(active) <= k
        total = bias + (active["activation"].to_numpy()[None, :] * weights[:, active["feature"]]).sum(1)
        own = "network" if f"network_{targets[0]}" in table else "pred"  # an ensemble: the browsed network's own
        np.testing.assert_allclose(total, table.loc[g, [f"{own}_{t}" for t in targets]].to_numpy(float), atol=1e-4)
    # Held-out flags: galaxies without a finite target are never scored.
    met = quick.metrics(model)
    assert met["n_test"] == int((table["test"] & table["has_target"]).sum())
    assert met["n_without_target"] == int((~table["has_target"]).sum()) > 0  # quenched galaxies have no lines
    scored = table[table["test"] & table["has_target"]]
    for t in targets:
        assert {"rmse", "nmad", "r2"} <= set(met["test"][t])
        assert np.isfinite(met["baseline_median_rmse"][t])
        rmse = np.sqrt(np.mean((scored[f"pred_{t}"] - scored[f"true_{t}"]) ** 2))  # the reported (ensemble) one
        assert met["test"][t]["rmse"] == pytest.approx(rmse, rel=1e-5)
        assert np.isfinite(met["photometric_baseline"][t]["rmse"]) and t in met["test_network"]


def test_metallicity_floor_comes_from_the_mock(quick):
    score = quick.metrics("sfnet_metallicity")["test"]["oh_12"]
    assert score["floor"] == pytest.approx(0.1)
    assert score["rmse_over_floor"] == pytest.approx(score["rmse"] / 0.1)


def test_sfnet_features_are_browsable_like_sae_features(quick):
    assert {"sfnet_metallicity", "sfnet_bpt"} <= set(quick.feature_models())
    fs = quick.feature_set("sfnet_metallicity")
    assert fs.rho is not None and "oh_12" in fs.rho.columns
    live = fs.stats.loc[~fs.stats["dead"], "feature"]
    gal, val = fs.top(int(live.iloc[0]))
    assert len(gal) and np.all(np.diff(val) <= 0)


def test_training_learns_and_is_seeded(tmp_path):
    rng = np.random.default_rng(0)
    amp = rng.uniform(0.5, 3.0, 240).astype(np.float32)
    yy, xx = np.mgrid[:16, :16]
    blob = np.exp(-((yy - 7.5) ** 2 + (xx - 7.5) ** 2) / 8.0).astype(np.float32)
    images = (amp[:, None, None, None] * blob[None, None] + rng.normal(0, 0.02, (240, 3, 16, 16))).astype(np.float32)
    y = np.log10(amp)[:, None].astype(np.float64)
    norm = Normalisation.fit(images, 0.1)
    train, test = np.arange(180), np.arange(180, 240)
    model_cfg = SFNetConfig(widths=(8, 8, 16, 16), k=2)
    # On the CPU: GPU training is not bitwise reproducible (see SFNetTrainConfig.device).
    cfg = SFNetTrainConfig(epochs=10, batch_size=16, max_lr=3e-3, patience=10, device="cpu")
    a = fit_sfnet(images, y, train, model_cfg, cfg, norm)
    pred, feats = predict(a.model, images[test], norm)
    rmse = np.sqrt(np.mean((pred[:, 0] - y[test, 0]) ** 2))
    baseline = np.sqrt(np.mean((np.median(y[train]) - y[test, 0]) ** 2))
    assert rmse < 0.5 * baseline  # far better than predicting the median
    assert ((feats != 0).sum(1) <= 2).all()
    b = fit_sfnet(images, y, train, model_cfg, cfg, norm)
    np.testing.assert_array_equal(predict(b.model, images[test], norm)[0], pred)  # same seed, same network
    save_sfnet(a.model, norm, tmp_path)
    loaded, norm2, _ = load_sfnet(tmp_path)
    np.testing.assert_allclose(predict(loaded, images[test], norm2)[0], pred, atol=1e-6)


def test_early_stopping_waits_for_the_annealed_learning_rate():
    # Pure-noise targets: the validation loss never improves for long, yet training must not stop
    # before the one-cycle schedule has annealed the rate (epoch 16 of 20), and must stop after it.
    rng = np.random.default_rng(1)
    images = rng.normal(0, 1, (120, 3, 8, 8)).astype(np.float32)
    y = rng.normal(0, 1, (120, 1))
    cfg = SFNetTrainConfig(epochs=20, batch_size=32, patience=1)
    fit = fit_sfnet(images, y, np.arange(120), SFNetConfig(widths=(4, 4, 4, 4)), cfg,
                    Normalisation(1.0, (0.0,) * 3, (1.0,) * 3))
    assert len(fit.history) >= 16


def test_non_finite_training_targets_are_refused():
    images = np.zeros((40, 3, 8, 8), np.float32)
    y = np.ones((40, 1))
    y[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_sfnet(images, y, np.arange(40), SFNetConfig(widths=(4, 4, 4, 4)), SFNetTrainConfig(epochs=1),
                  Normalisation(1.0, (0.0,) * 3, (1.0,) * 3))


def test_missing_target_column_is_named():
    cat = pd.DataFrame({"galaxy_id": ["1"], "mag_r": [17.0]})
    with pytest.raises(ValueError, match="no target column oh_p50.*columns: galaxy_id, mag_r"):
        target_columns(SFNetStageConfig(target="oh_p50"), "metallicity", cat)
    with pytest.raises(ValueError, match="nii_6584_flux"):
        target_columns(SFNetStageConfig(target="n2,o3"), "bpt", cat)
    with pytest.raises(StageNotApplicable, match="no oh_p50 / oh_12"):  # a survey without one: nothing to train
        target_columns(SFNetStageConfig(), "metallicity", cat)
    with pytest.raises(ValueError, match="k = 3"):
        SFNetStageConfig(k_sweep=(3,))


def test_sparse_codes_keep_the_k_strongest():
    z = np.array([[0.0, 3.0, 1.0, 2.0]], np.float32)
    idx, val = sparse_codes(z, 2)
    assert idx.tolist() == [[1, 3]] and val.tolist() == [[3.0, 2.0]]
    assert sparse_codes(z, 0)[0].shape == (1, 4)


def test_bpt_classes_follow_the_kauffmann_and_kewley_lines():
    n2 = np.array([-0.8, -0.8, -0.8, 0.3, np.nan])
    o3 = np.array([-0.5, 0.6, 1.2, 0.0, 0.0])  # Kauffmann at -0.8: 0.58; Kewley: 0.72
    assert bpt_classify(n2, o3).tolist() == [0, 1, 2, 2, -1]


def test_linear_probes_cover_the_catalog(quick):
    probes = quick.probes()
    by = probes.set_index("property")
    assert {"log_mstar", "mag_r", "oh_12", "bar"} <= set(by.index)
    assert by.loc["mag_r", "metric"] == "r2" and by.loc["bar", "metric"] == "accuracy"
    assert by.loc["mag_r", "score"] > 0.3  # brightness is in the embeddings (quick atlas: 300 held-out galaxies)
    assert 0.0 <= by.loc["bar", "auroc"] <= 1.0


def test_cli_source_flags_select_stages():
    stages = all_stages()
    args = parse_args(["--source", "folder", "--images", "imgs", "--catalog", "t.csv", "--target", "bpt"])
    sets, skip = source_overrides(args)
    assert any(s.startswith('survey.source="folder"') for s in sets) and "sfnet_metallicity" in skip
    chosen = select_stages(stages, [], skip)
    assert "sfnet_bpt" in chosen and "sfnet_metallicity" not in chosen and "cluster_fields" not in chosen
    only = select_stages(stages, ["sfnet_metallicity"], [])
    assert list(only) == ["survey", "thumbnails", "sfnet_metallicity"]
    assert "features" not in select_stages(stages, [], ["sae"])  # what reads a skipped stage goes too
    with pytest.raises(ConfigError, match="--images"):
        source_overrides(parse_args(["--source", "folder", "--catalog", "t.csv"]))
    with pytest.raises(ConfigError, match="unknown stage"):
        select_stages(stages, ["nope"], [])


def test_target_standardisation_is_folded_into_the_head():
    # a network trained on targets near 9 dex predicts near 9 without any outside rescaling
    torch.manual_seed(0)
    images = np.random.default_rng(1).normal(size=(64, 3, 8, 8)).astype(np.float32)
    y = 9.0 + 0.1 * np.random.default_rng(2).normal(size=(64, 1))
    fit = fit_sfnet(images, y, np.arange(64), SFNetConfig(widths=(4, 4, 4, 4)), SFNetTrainConfig(epochs=1),
                    Normalisation(1.0, (0.0,) * 3, (1.0,) * 3))
    pred, _ = predict(fit.model, images, Normalisation(1.0, (0.0,) * 3, (1.0,) * 3))
    assert abs(float(np.median(pred)) - 9.0) < 0.3


def test_catalog_placeholders_count_as_missing_targets_and_the_k_sweep_is_scored(tmp_path):
    from precompute.stage import StageContext
    from precompute.stages.sfnet import run_sfnet
    from galaxyml.data.mock import MockConfig, write_mock_survey

    survey = write_mock_survey(MockConfig(n_galaxies=200, image_size_px=32), tmp_path / "survey")
    cat = survey.catalog.copy()
    cat["oh_p50"] = np.where(np.isfinite(cat["oh_12"]), cat["oh_12"], -99.9)  # MPA-JHU's "no measurement"
    cat.to_parquet(tmp_path / "survey" / "catalog.parquet", index=False)
    out = tmp_path / "out"
    out.mkdir()
    cfg = SFNetStageConfig(widths=(4, 4, 8, 8), epochs=1, k=2, k_sweep=(0, 2), sample_galaxies=100)
    metrics = run_sfnet(StageContext("sfnet_metallicity", cfg, out, {"survey": tmp_path / "survey"}), "metallicity")
    assert metrics["targets"] == ["oh_p50"]
    assert metrics["n_without_target"] == int((~np.isfinite(cat["oh_12"])).sum())
    assert 8.0 < np.median(pd.read_parquet(out / "predictions.parquet")["pred_oh_p50"]) < 9.5
    assert list(metrics["rmse_by_k"]) == ["2", "0"]  # the sweep, all features last; k = 2 trained once
    assert (np.load(out / "codes_indices.npy").shape[1], metrics["k"]) == (2, 2)  # the browsed network is k = 2
