"""The catalogs people have: a folder of cutouts with a CSV holding only an id and one target, and one
with the MPA-JHU columns, through the whole CLI (every stage) and every page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from galaxyml.atlas import Atlas
from precompute.cli import main
from tests.test_folder_pipeline import BASE_ID, write_cutouts

ROOT = Path(__file__).resolve().parents[1]
PAGES = (None, "pages/atlas.py", "pages/compare.py", "pages/predictions.py", "pages/explore.py", "pages/search.py",
         "pages/forge.py", "pages/clusters.py")


def build(tmp_path: Path, catalog: pd.DataFrame, run: str, *extra: str) -> Path:
    catalog.to_csv(tmp_path / f"{run}.csv", index=False)
    home = tmp_path / "runs"
    code = main(["--preset", "quick", "--source", "folder", "--images", str(tmp_path / "cutouts"),
                 "--catalog", str(tmp_path / f"{run}.csv"), *extra, "--home", str(home), "--run", run, "--quiet"])
    assert code == 0
    return home


def every_page_renders(home: Path, monkeypatch) -> list[AppTest]:
    monkeypatch.setenv("GALAXYML_HOME", str(home))
    shown = []
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        if page:
            at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        shown.append(at)
    return shown


@pytest.fixture(scope="module")
def cutouts(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("real")
    return root, write_cutouts(root / "cutouts", n=150)


def test_an_id_and_one_target_build_every_stage_and_page(cutouts, monkeypatch):
    root, cat = cutouts
    home = build(root, cat[["objID", "oh_p50"]], "bare", "--target", "oh_p50")
    atlas = Atlas.open(home / "bare")
    stages = atlas.manifest["stages"]
    failed = [s for s, e in stages.items() if not e.get("not_applicable") and not atlas.ready(s)]
    assert not failed
    assert "vote-fraction" in stages["zoobot"]["not_applicable"]
    split = atlas.metrics("survey")["split"]
    assert split["train"] + split["val"] + split["test"] == 150 and split["val"] > 0 and split["test"] >= 10
    probes = atlas.metrics("probes")
    assert probes["auroc"] == {} and "oh_p50" in probes["r2"] and probes["scored_on"] == "held_out"
    assert probes["n_galaxies"] == split["val"] + split["test"]  # fitted and scored on held-out galaxies only
    met = atlas.metrics("sfnet_metallicity")
    assert met["n_test"] == split["test"] and met["n_val"] == split["val"]
    for model in ("sae", "matryoshka", "pca"):  # FVU on held-out galaxies, the training galaxies' beside it
        m = atlas.metrics(model)
        assert m["fvu_split"] == "held_out" and np.isfinite(m["fvu"]) and np.isfinite(m["fvu_train"])
    shown = every_page_renders(home, monkeypatch)
    assert any(c.value.startswith(f"Split: {split['train']:,} training, {split['val']:,} validation")
               for c in shown[0].caption)  # the home page says how the galaxies were split
    assert any("held-out galaxies" in c.value for c in shown[3].caption)  # probes: which galaxies


def test_mpa_jhu_columns_build_both_networks_and_every_page(cutouts, monkeypatch):
    root, cat = cutouts
    mpa = cat.assign(ra=np.linspace(150, 151, len(cat)), dec=np.linspace(2, 3, len(cat)),
                     z=np.linspace(0.02, 0.2, len(cat)), lgm_tot_p50=np.linspace(9, 11.5, len(cat)),
                     sfr_tot_p50=np.linspace(-1, 1, len(cat)))
    mpa["nii_6584_flux"] = mpa["h_alpha_flux"] * (0.2 + 0.3 * (mpa["oh_p50"] - 8.3))  # N2 rises with O/H
    mpa["oiii_5007_flux"] = mpa["h_beta_flux"] * np.linspace(0.3, 2.0, len(mpa))
    mpa.loc[::10, "oh_p50"] = -99.9  # MPA-JHU's placeholder for "no measurement"
    home = build(root, mpa, "mpa")
    atlas = Atlas.open(home / "mpa")
    for stage in ("sfnet_metallicity", "sfnet_bpt"):
        assert atlas.ready(stage), atlas.manifest["stages"][stage].get("not_applicable")
    assert atlas.metrics("sfnet_metallicity")["n_without_target"] == len(mpa[::10])
    every_page_renders(home, monkeypatch)


@pytest.mark.parametrize("problem, message", [
    ("constant", "same value"),
    ("mostly_missing", "at least 20 and 10 are needed"),
])
def test_an_unusable_target_is_named_and_the_other_stages_still_build(cutouts, problem, message):
    root, cat = cutouts
    bad = cat[["objID", "oh_p50"]].copy()
    if problem == "constant":
        bad["oh_p50"] = 8.7
    else:
        bad.loc[bad.index[15:], "oh_p50"] = np.nan
    home = build(root, bad, problem, "--target", "oh_p50")
    atlas = Atlas.open(home / problem)
    assert message in atlas.manifest["stages"]["sfnet_metallicity"]["not_applicable"]
    assert atlas.ready("features") and atlas.ready("sae")


def test_too_few_test_galaxies_leave_the_scored_stages_not_applicable(tmp_path):
    cat = write_cutouts(tmp_path / "cutouts", n=40)
    home = build(tmp_path, cat[["objID", "oh_p50"]], "tiny", "--target", "oh_p50")
    atlas = Atlas.open(home / "tiny")
    why = atlas.manifest["stages"]["sfnet_metallicity"]["not_applicable"]
    assert "test galaxies" in why and "survey.test_fraction" in why
    assert atlas.ready("sae") and atlas.ready("index")
    assert str(BASE_ID) in set(atlas.catalog()["galaxy_id"])
