"""The app's pages with Streamlit's AppTest, against the session's quick atlas."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from galaxyml.atlas import MANIFEST, Atlas, write_manifest
from galaxyml.effects import vote_effects
from galaxyml.data.survey import vote_label
from precompute.jobs import build_status, cancel_build
from precompute.lock import pid_alive, read_lock
from precompute.progress import read_events
from precompute.stage import all_stages

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


@pytest.fixture
def home_env(quick_home, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    return quick_home


def query_param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or numpy data as {dtype, bdata (base64)}."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def densest_feature(home: Path) -> int:
    fs = Atlas.open(home / "quick").feature_set("sae")
    return int(fs.stats.sort_values("density", ascending=False)["feature"].iloc[0])


def test_home_shows_the_loaded_atlas(home_env):
    at = app()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Galaxies"] == "1,000"
    n_stages = len(all_stages())
    assert metrics["Stages ready"] == f"{n_stages}/{n_stages}"
    assert any("MOCK DATA" in m.value for m in at.main.markdown)  # mock data is labelled as mock
    assert any("mock data" in m.value for m in at.sidebar.markdown)
    stages = at.dataframe[0].value
    assert list(stages["stage"]) == list(all_stages())  # in pipeline order
    assert "fvu=" in stages.set_index("stage").loc["sae", "metrics"]


def test_atlas_page_shows_the_feature_from_the_url(home_env):
    feature = densest_feature(home_env)
    fs = Atlas.open(home_env / "quick").feature_set("sae")
    at = app("pages/atlas.py", feature=str(feature))
    assert not at.exception and not at.error
    assert at.main.selectbox[0].value == feature
    gal, val = fs.top(feature)
    assert f"Top {len(gal)} galaxies" in [h.value for h in at.subheader]
    grid = at.get("image")[0].proto.imgs
    assert len(grid) == len(gal) > 0
    assert [im.caption for im in grid] == [f"{a:.3g}" for a in val]  # activation under each thumbnail
    density = fs.stats.loc[feature, "density"]
    assert {m.label: m.value for m in at.metric}["Density"] == f"{density:.2%}"
    assert at.query_params["feature"] == str(feature)


def test_atlas_page_rejects_a_bad_feature_in_the_url(home_env):
    at = app("pages/atlas.py", feature="999999")
    assert not at.exception
    assert "not a feature of this model" in at.warning[0].value


def test_atlas_page_drilldown_lists_the_features_of_a_galaxy(home_env):
    feature = densest_feature(home_env)
    at = app("pages/atlas.py", feature=str(feature))
    table = at.dataframe[-1].value
    assert feature in set(table["feature"])  # a top galaxy of the feature has it active
    assert (table["activation"] > 0).all()


def test_corrupt_manifest_gives_an_error_not_a_traceback(quick_copy, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_copy))
    (quick_copy / "quick" / MANIFEST).write_text("{broken")
    for page in (None, "pages/atlas.py"):
        at = app(page)
        assert not at.exception
        assert any("corrupt" in e.value for e in at.error)


def _wait(predicate, timeout: float = 60.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sidebar_starts_reports_and_cancels_a_real_build(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(tmp_path))
    at = app("pages/atlas.py")
    assert not at.exception
    at.selectbox(key="build_preset").set_value("quick")
    at.text_input(key="build_run").set_value("live")
    at.button(key="start_build_submit").click().run()
    run_dir = tmp_path / "live"
    holder = read_lock(run_dir)
    assert holder is not None and pid_alive(holder["pid"])
    pid = holder["pid"]
    assert _wait(lambda: any(e["event"] == "progress" for e in read_events(run_dir)))
    at.run()
    assert not at.exception
    assert at.sidebar.button(key="cancel_build")  # the running build shows its cancel button
    assert any("needs the **features** stage" in i.value for i in at.info)
    at.sidebar.button(key="cancel_build").click().run()
    assert _wait(lambda: not pid_alive(pid), 30)
    assert build_status(run_dir).state == "cancelled"
    assert read_lock(run_dir) is None
    at.run()
    assert any("cancelled" in w.value for w in at.sidebar.warning)


def test_first_launch_builds_the_demo_atlas_in_the_background(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(tmp_path))
    at = app()
    assert not at.exception
    run_dir = tmp_path / "demo"
    try:
        assert read_lock(run_dir) is not None
        assert any("Building atlas **demo**" in i.value for i in at.info)
        assert _wait(lambda: any(e["event"] == "progress" for e in read_events(run_dir)))
    finally:
        cancel_build(run_dir)
        _wait(lambda: read_lock(run_dir) is None, 30)
    assert read_events(run_dir)[0]["preset"] == "demo"
    assert build_status(run_dir).state == "cancelled"


def test_unwritable_home_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GALAXYML_HOME", str(blocker / "runs"))
    at = app()
    assert not at.exception
    assert any("cannot write to" in e.value and "GALAXYML_HOME" in e.value for e in at.error)


def test_killed_build_is_reported_and_the_finished_atlas_still_loads(quick_copy, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_copy))
    from precompute.progress import ProgressLog

    log = ProgressLog(quick_copy / "quick")  # a build that started and then died without a word
    log.emit("start", message="building", stages=["survey", "sae"], preset="quick")
    log.emit("stage_start", stage="sae", step=0, total=1, message="sae: starting")
    at = app("pages/atlas.py")
    assert not at.exception
    assert any("ended without finishing" in w.value for w in at.sidebar.warning)
    assert at.get("image")  # the finished stages still show


def test_home_survey_view_shows_structures_histogram_and_relations(home_env):
    at = app()
    at.toggle(key="survey_view").set_value(True).run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    for flag in ("spiral", "bar", "merger", "artefact"):
        assert f"**{flag}**" in captions
    assert len(at.get("plotly_chart")) == 2  # property histogram + relations
    assert "floor on any prediction" in captions
    floors = Atlas.open(home_env / "quick").survey_meta()["prediction_floors"]
    assert f"n2 {floors['n2']:.3g} dex" in captions  # the propagated floor, not the metallicity scatter / 0.57
    assert "Blue: star-forming galaxies" in captions  # what the colours of the relation panels mean


@pytest.mark.parametrize("model", ["matryoshka", "pca", "sfnet_bpt"])
def test_atlas_page_renders_every_feature_model(home_env, model):
    at = app("pages/atlas.py", model=model)
    assert not at.exception and not at.error
    # it opens on the (sparse, where there are any) feature best explained by a property
    live = Atlas.open(home_env / "quick").feature_set(model).stats.query("~dead")
    sparse = live[live["density"] <= 0.1]
    candidates = sparse if len(sparse) else live  # every PCA feature is dense
    assert query_param(at, "feature") == str(candidates.sort_values("max_abs_rho", ascending=False)["feature"].iloc[0])
    if model == "matryoshka":  # its place in the nesting
        sizes = Atlas.open(home_env / "quick").load_json("matryoshka", "config.json")["group_sizes"]
        group = int(np.searchsorted(np.cumsum(sizes), int(query_param(at, "feature")), side="right"))
        assert any(f"Matryoshka group {group + 1} of {len(sizes)}" in c.value for c in at.caption)
    if model == "pca":  # PCA features name their component and sign
        assert any(o.startswith("#3 · PC2 (−)") for o in at.main.selectbox[0].options)
    # only models fitted on the embeddings can be read through the vote network
    assert any("Effect on the vote network's answers" in m.value for m in at.markdown) == (model != "sfnet_bpt")
    fs = Atlas.open(home_env / "quick").feature_set(model)
    assert f"{fs.n_features:,} features" in at.main.selectbox[0].label
    assert at.get("image")


def test_atlas_page_search_random_feature_and_interpretability_views(home_env):
    at = app("pages/atlas.py", model="sae")
    at.text_input[0].set_value("log_mstar").run()
    assert not at.exception
    fs = Atlas.open(home_env / "quick").feature_set("sae")
    best = int(fs.rho["log_mstar"].abs().idxmax())
    assert at.main.selectbox[0].options[0].startswith(f"#{best} ")  # sorted by |rho| with the property
    assert query_param(at, "feature") == str(best)  # and the search opens its best match
    assert any("Spearman" in c.value or "log_mstar" in c.value for c in at.caption)
    at.text_input[0].set_value("features correlated with metallicity").run()  # in words, as a person asks
    best = int(fs.rho["oh_12"].abs().idxmax())
    assert at.main.selectbox[0].options[0].startswith(f"#{best} ")
    assert any("**oh_12**" in c.value for c in at.caption)
    assert query_param(at, "feature") == str(best)
    at.text_input[0].set_value("log(O/H").run()  # free text is not a regular expression
    assert not at.exception
    at.text_input[0].set_value("features correlated with high").run()  # the phrasing is dropped for labels too
    assert not at.exception and not any("No feature's label mentions" in i.value for i in at.info)
    at.button[0].click().run()  # random feature
    assert not at.exception
    assert not fs.stats["dead"].iloc[int(query_param(at, "feature"))]  # a random live feature
    at.query_params["feature"] = str(int(fs.rho["log_mstar"].abs().idxmax()))  # one that fires on held-out galaxies
    at.run()
    assert len(at.get("plotly_chart")) == 3  # histogram, correlations, effect on the vote network's answers
    assert any("Effect on the vote network's answers" in m.value for m in at.markdown)
    feature = int(query_param(at, "feature"))
    effects = vote_effects(Atlas.open(home_env / "quick"), "sae", feature)
    bars = json.loads(at.get("plotly_chart")[2].proto.spec)["data"][0]
    assert np.allclose(plotly_array(bars["x"])[::-1], effects["delta"], atol=1e-6)  # strongest answer on top
    assert bars["y"][-1] == vote_label(effects["answer"][0])
    assert any("Nearest features" in m.value for m in at.markdown)
    next(t for t in at.toggle if t.label.startswith("Show activation-quantile")).set_value(True).run()
    assert any("activation bin 1/5" in c.value for c in at.caption)  # the weakest bin is never empty


def test_compare_page_shows_all_models_side_by_side(home_env):
    at = app("pages/compare.py", property="log_mstar")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["model"]) == ["TopK SAE", "Matryoshka SAE", "PCA"]
    assert (table["L0"] == 32).all()
    assert len(at.get("plotly_chart")) >= 5  # curves, groups, max |rho|, novelty, truth alignment
    # Truth alignment is shown next to what a linear probe of all embedding dimensions reaches.
    assert any("logistic probe on all embedding dimensions" in c.value for c in at.caption)
    assert at.main.selectbox[0].value == "log_mstar"
    assert len(at.get("image")) == 4  # one gallery per model, and one galaxy seen through every model
    atlas = Atlas.open(home_env / "quick")
    # "beats PCA" comes with its spread over the seeds of the replicate SAEs (the atlas's SAE first)
    features = atlas.metrics("features")["sae"]
    assert len(features["beats_pca_by_seed"]) == 3 and features["beats_pca_by_seed"][0] == features["beats_pca_fraction"]
    assert any(c.value.startswith("One SAE is one draw: trained with 3 seeds") for c in at.caption)
    sae, ids = atlas.feature_set("sae"), atlas.catalog()["galaxy_id"].to_numpy()
    g = int(sae.top(sae.best_feature_for("log_mstar"))[0][0])  # the top galaxy of TopK's feature above
    assert query_param(at, "galaxy") == ids[g]
    strongest = int(sae.features_of(g)["feature"].iloc[0])
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    density = next(c for c in charts if "log10 feature density" in json.dumps(c["layout"]))
    assert f"TopK SAE ({int(sae.stats['dead'].sum())} dead)" in [t["name"] for t in density["data"]]
    assert any(m.value.startswith("**TopK SAE**: its") and f"[#{strongest}](" in m.value for m in at.markdown)
    at.text_input(key="compare_galaxy").set_value("no-such-galaxy").run()
    assert any("No galaxy with id 'no-such-galaxy'" in w.value for w in at.warning)
    pca_best = atlas.feature_set("pca").best_feature_for("log_mstar")
    strongest = vote_effects(atlas, "pca", pca_best).iloc[0]
    assert any(f"{vote_label(strongest.answer)} {strongest.delta:+.2f}" in c.value for c in at.caption)
    # "Where PCA wins" lists exactly the properties on which PCA's best |rho| is at least one SAE's.
    best = {m: atlas.feature_set(m).best_abs_rho() for m in ("sae", "matryoshka", "pca")}
    lost = at.dataframe[1].value.set_index("property")
    expected = best["pca"].index[(best["sae"] <= best["pca"]) | (best["matryoshka"] <= best["pca"])]
    assert set(lost.index) == set(expected)
    assert np.allclose(lost["TopK SAE − PCA"], (best["sae"] - best["pca"])[lost.index])


def test_predictions_page_reports_the_stage_metrics_and_a_galaxy_breakdown(home_env):
    atlas = Atlas.open(home_env / "quick")
    table = atlas.predictions("sfnet_metallicity")
    galaxy = table.loc[table["test"] & table["has_target"], "galaxy_id"].iloc[3]
    at = app("pages/predictions.py", galaxy=galaxy)
    assert not at.exception and not at.error
    met = atlas.metrics("sfnet_metallicity")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test RMSE"] == f"{met['test']['oh_12']['rmse']:.3f}"
    assert metrics["RMSE / floor"] == f"{met['test']['oh_12']['rmse_over_floor']:.2f}"  # mock: the floor is known
    galaxy_box = next(s for s in at.selectbox if s.label == "Galaxy")
    assert galaxy_box.value == galaxy  # the deep link picks the galaxy
    row = table.set_index("galaxy_id").loc[galaxy]
    assert met["ensemble"] == 5 and met["n_train"] < 2000  # a small survey: five networks are averaged
    shown = next(m.value for m in at.markdown if m.value.startswith("predicted **"))
    assert f"predicted **{row['network_oh_12']:.3f}**" in shown  # the browsed network: its bias + contributions
    assert f"ensemble: {row['pred_oh_12']:.3f})" in shown and "test galaxy" in shown
    photo = met["photometric_baseline"]["oh_12"]
    assert metrics["Photometric"] == f"{photo['rmse']:.3f}"  # the classical baseline beside the network
    beats = met["test"]["oh_12"]["rmse"] < photo["rmse"]
    assert beats != any("does not beat the photometric baseline" in w.value for w in at.warning)
    breakdown = at.dataframe[0].value
    assert len(breakdown) <= met["k"] and {"feature", "contribution", "open"} <= set(breakdown.columns)
    assert all(link.startswith("/atlas?run=quick&model=sfnet_metallicity&feature=") for link in breakdown["open"])
    continuous, flags = at.dataframe[-2].value, at.dataframe[-1].value  # the vote network's probes beside the encoder's
    assert {"R²", "encoder R²", "RMSE"} <= set(continuous.columns) and continuous["encoder R²"].notna().all()
    assert {"accuracy", "majority-class accuracy", "AUROC"} <= set(flags.columns) and flags["AUROC"].notna().all()
    assert set(continuous["property"]).isdisjoint(flags["property"])
    assert any("astroPT-style encoder" in c.value for c in at.caption)
    enc = atlas.encoder_probes()
    enc_median = enc.loc[enc["kind"] == "continuous", "score"].median()
    assert any(f"**{enc_median:.2f}**" in c.value for c in at.caption)  # both medians are shown


def test_predictions_page_for_bpt_shows_classes(home_env):
    at = app("pages/predictions.py", model="sfnet_bpt", target="o3")
    assert not at.exception and not at.error
    assert any("predicted in their true class" in m.value for m in at.markdown)
    assert any("Rows: true class; columns: predicted class" in c.value for c in at.caption)
    assert at.query_params["target"] == ["o3"] or at.query_params["target"] == "o3"


def test_a_typed_galaxy_id_is_shown_and_an_unknown_one_is_named(home_env):
    atlas = Atlas.open(home_env / "quick")
    table = atlas.predictions("sfnet_metallicity")
    galaxy = table["galaxy_id"].iloc[7]
    at = app("pages/predictions.py")
    box = next(t for t in at.text_input if t.label.startswith("Galaxy id"))
    box.input(f" {galaxy} ").run()  # pasted with spaces
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Galaxy").value == galaxy
    box = next(t for t in at.text_input if t.label.startswith("Galaxy id"))
    box.input("no-such-galaxy").run()
    assert any("No galaxy with id 'no-such-galaxy'" in w.value for w in at.warning)


def test_pages_work_while_the_deferred_encoder_is_still_training(quick_copy, monkeypatch):
    # With votes the encoder trains last: the home, atlas and compare pages must not need it.
    monkeypatch.setenv("GALAXYML_HOME", str(quick_copy))
    path = quick_copy / "quick" / MANIFEST
    manifest = json.loads(path.read_text())
    del manifest["stages"]["encoder"]
    write_manifest(path, manifest)  # as the build leaves it before the encoder is finished
    at = app()
    assert not at.exception and not at.error
    assert {m.label for m in at.metric} >= {"Vote-fraction MAE", "SAE FVU"}
    stages = at.dataframe[0].value.set_index("stage")
    assert stages.loc["encoder", "status"] == "missing" and stages.loc["sae", "status"] == "ready"
    for page in ("pages/atlas.py", "pages/compare.py"):
        at = app(page)
        assert not at.exception and not at.error, page


def test_a_stage_whose_files_changed_is_named_and_not_served(quick_copy, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_copy))
    codes = quick_copy / "quick" / "sae" / "codes_values.npy"
    raw = bytearray(codes.read_bytes())
    raw[-64:] = np.full(16, np.nan, np.float32).tobytes()  # NaN activations, same size
    codes.write_bytes(bytes(raw))
    for page in (None, "pages/atlas.py", "pages/compare.py", "pages/predictions.py"):
        at = app(page)
        assert not at.exception, page
        assert any("not shown: sae (codes_values.npy)" in w.value for w in at.sidebar.warning), page
    at = app("pages/atlas.py", model="sae")
    assert not at.exception and any("?model=sae is not a feature model ready" in w.value for w in at.warning)
