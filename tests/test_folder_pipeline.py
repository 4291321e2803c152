"""The real-data path end to end: a folder of <objID>.jpg cutouts + CSV -> CLI -> atlas -> page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from galaxyml.atlas import Atlas
from galaxyml.data.folder import FolderSourceError, bpt_ratios, read_catalog_csv, write_folder_survey
from precompute.cli import main

ROOT = Path(__file__).resolve().parents[1]
BASE_ID = 1237648720693755918  # an SDSS objID: above 2**53, so a float would change its last digits


def write_cutouts(folder: Path, n: int = 60, seed: int = 0) -> pd.DataFrame:
    """n galaxies: a blob whose brightness sets oh_p50; sizes and formats vary like real cutouts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        obj = BASE_ID + i
        size = (48, 80)[i % 2]
        yy, xx = np.mgrid[:size, :size]
        amp = rng.uniform(0.2, 1.0)
        blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 8) ** 2))
        img = np.clip(amp * blob[..., None] * np.array([1.0, 0.8, 0.6]) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{obj}.{('jpg', 'png')[i % 3 == 0]}")
        ha, hb = rng.uniform(50, 100), rng.uniform(20, 40)
        rows.append({"objID": obj, "oh_p50": 8.3 + 0.6 * amp, "nii_6584_flux": 0.3 * ha, "h_alpha_flux": ha,
                     "oiii_5007_flux": 0.5 * hb, "h_beta_flux": hb, "nii_6584_flux_err": 1.0,
                     "h_alpha_flux_err": 1.0, "oiii_5007_flux_err": 1.0, "h_beta_flux_err": 1.0})
    return pd.DataFrame(rows)


@pytest.fixture
def sdss_like(tmp_path) -> dict[str, Path]:
    images = tmp_path / "cutouts"
    cat = write_cutouts(images)
    (images / f"{BASE_ID + 5}.jpg").write_bytes(b"not a jpeg at all")  # corrupt file
    (images / f"{BASE_ID + 7}.png").unlink(missing_ok=True)
    (images / f"{BASE_ID + 7}.jpg").unlink(missing_ok=True)  # missing image
    cat.loc[3, "h_beta_flux_err"] = 20.0  # S/N of Hbeta ~ 1.5: no BPT ratios for this galaxy
    train, test = cat.iloc[:45], cat.iloc[45:]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return {"images": images, "train": tmp_path / "train.csv", "test": tmp_path / "test.csv", "home": tmp_path / "runs"}


def test_cli_trains_predicts_and_reports_rmse_on_a_folder(sdss_like, capsys, monkeypatch):
    d = sdss_like
    code = main(["--preset", "quick", "--source", "folder", "--images", str(d["images"]), "--catalog", str(d["train"]),
                 "--test-catalog", str(d["test"]), "--target", "oh_p50", "--only", "sfnet_metallicity",
                 "--home", str(d["home"]), "--run", "sdss", "--quiet"])
    assert code == 0, capsys.readouterr().err
    atlas = Atlas.open(d["home"] / "sdss")
    survey = atlas.survey()
    ids = list(survey.catalog["galaxy_id"])
    assert str(BASE_ID + 1) in ids and str(BASE_ID + 2) in ids  # 64-bit ids kept exactly
    assert str(BASE_ID + 5) not in ids and str(BASE_ID + 7) not in ids
    skipped = atlas.survey_meta()["skipped"]
    assert skipped["missing_image"] == 1 and skipped["unreadable_image"] == 1
    assert survey.images.shape[1:] == (3, 64, 64) and not atlas.is_mock
    met = atlas.metrics("sfnet_metallicity")
    assert met["targets"] == ["oh_p50"] and met["n_test"] == 15
    assert np.isfinite(met["test"]["oh_p50"]["rmse"]) and "floor" not in met["test"]["oh_p50"]  # no floor: real data
    assert np.isfinite(met["baseline_median_rmse"]["oh_p50"])
    table = atlas.predictions("sfnet_metallicity")
    assert table["test"].sum() == 15 and list(table["galaxy_id"]) == ids
    assert "sfnet_metallicity" in atlas.feature_models()

    monkeypatch.setenv("GALAXYML_HOME", str(d["home"]))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/predictions.py")
    at.run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test RMSE"] == f"{met['test']['oh_p50']['rmse']:.3f}"
    assert "RMSE / floor" not in metrics  # real data have no injected floor
    assert not any("MOCK DATA" in m.value for m in at.main.markdown)


def test_bpt_target_uses_the_line_fluxes_with_an_snr_cut(sdss_like):
    cat = bpt_ratios(read_catalog_csv(sdss_like["train"]))
    row = cat.iloc[0]
    assert row["n2"] == pytest.approx(np.log10(0.3)) and row["o3"] == pytest.approx(np.log10(0.5))
    assert np.isnan(cat.loc[3, "n2"]) and not cat.loc[3, "bpt_snr_ok"]


def test_float_ids_are_refused_and_integer_dot_zero_accepted(tmp_path):
    (tmp_path / "a.csv").write_text("objID,oh_p50\n1.237648720693756e+18,8.9\n")
    with pytest.raises(FolderSourceError, match="precision"):
        read_catalog_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("objID,oh_p50\n1237648720693755918.0,8.9\n")
    assert read_catalog_csv(tmp_path / "b.csv")["galaxy_id"].tolist() == ["1237648720693755918"]
    (tmp_path / "c.csv").write_text("id,oh_p50\n1,8.9\n")
    with pytest.raises(FolderSourceError, match="no id column 'objID'.*columns: id, oh_p50"):
        read_catalog_csv(tmp_path / "c.csv")


def test_no_matching_image_and_train_test_overlap_are_named(sdss_like, tmp_path):
    (tmp_path / "other.csv").write_text("objID,oh_p50\n42,8.9\n")
    with pytest.raises(FolderSourceError, match="none of the 1 objIDs has an image.*42.jpg"):
        write_folder_survey(sdss_like["images"], tmp_path / "other.csv", tmp_path / "out")
    with pytest.raises(FolderSourceError, match="both"):
        write_folder_survey(sdss_like["images"], sdss_like["train"], tmp_path / "out2",
                            test_catalog_csv=sdss_like["train"])


def test_images_stay_aligned_with_their_ids(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    colours = {BASE_ID + i: c for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)])}
    for obj, c in colours.items():
        Image.fromarray(np.full((30, 50, 3), c, np.uint8)).save(images / f"{obj}.png")
    (images / f"{BASE_ID + 1}.png").write_bytes(b"garbage")  # row 1 is dropped; the rest must not shift
    pd.DataFrame({"objID": list(colours), "oh_p50": 8.5}).to_csv(tmp_path / "c.csv", index=False)
    survey = write_folder_survey(images, tmp_path / "c.csv", tmp_path / "out", image_size_px=16, test_fraction=0.5)
    assert survey.catalog["galaxy_id"].tolist() == [str(BASE_ID), str(BASE_ID + 2), str(BASE_ID + 3)]
    for row, obj in enumerate((BASE_ID, BASE_ID + 2, BASE_ID + 3)):
        np.testing.assert_allclose(survey.images[row, :, 8, 8], np.array(colours[obj]) / 255, atol=0.01)
    assert set(survey.catalog["split"]) <= {"train", "test"}


def test_editing_the_csv_in_place_rebuilds_on_rerun(sdss_like, capsys):
    d = sdss_like
    args = ["--preset", "quick", "--source", "folder", "--images", str(d["images"]), "--catalog", str(d["train"]),
            "--only", "thumbnails", "--home", str(d["home"]), "--run", "edit", "--quiet"]
    assert main(args) == 0
    assert main(args) == 0
    assert "2 unchanged" in capsys.readouterr().out  # same files: nothing rebuilt
    cat = pd.read_csv(d["train"], dtype={"objID": str})
    cat.loc[0, "oh_p50"] = 9.9
    cat.to_csv(d["train"], index=False)
    assert main(args) == 0
    assert "2 stage(s) built" in capsys.readouterr().out  # the survey and what reads it are rebuilt
    assert Atlas.open(d["home"] / "edit").catalog()["oh_p50"].iloc[0] == 9.9


def test_a_preset_build_from_the_app_does_not_replace_an_atlas_of_the_users_files(sdss_like):
    from precompute.config import ConfigError
    from precompute.jobs import start_build

    d = sdss_like
    assert main(["--preset", "quick", "--source", "folder", "--images", str(d["images"]), "--catalog", str(d["train"]),
                 "--only", "thumbnails", "--home", str(d["home"]), "--run", "mine", "--quiet"]) == 0
    with pytest.raises(ConfigError, match="built from your files"):
        start_build(d["home"], "mine", "demo")
    assert Atlas.open(d["home"] / "mine").survey_meta()["source"] == "folder"


def test_without_vote_columns_the_embeddings_come_from_the_encoder(sdss_like, capsys):
    d = sdss_like
    code = main(["--preset", "quick", "--source", "folder", "--images", str(d["images"]), "--catalog", str(d["train"]),
                 "--only", "embeddings", "--home", str(d["home"]), "--run", "novotes", "--quiet"])
    assert code == 0, capsys.readouterr().err
    atlas = Atlas.open(d["home"] / "novotes")
    assert "vote-fraction" in atlas.manifest["stages"]["zoobot"]["not_applicable"]
    assert atlas.metrics("embeddings")["source"] == "encoder"
    assert atlas.embeddings().shape == (len(atlas.catalog()), atlas.manifest["stages"]["encoder"]["config"]["n_embd"])
    events = [json.loads(x) for x in (d["home"] / "novotes" / "progress.jsonl").read_text().splitlines()]
    done = [e["stage"] for e in events if e["event"] == "stage_done"]
    assert done.index("encoder") < done.index("embeddings")  # the deferred encoder is built when it is read


def test_a_rerun_keeps_the_users_survey_and_refuses_to_replace_it(sdss_like, capsys):
    d = sdss_like
    first = ["--preset", "quick", "--source", "folder", "--images", str(d["images"]), "--catalog", str(d["train"]),
             "--target", "oh_p50", "--only", "thumbnails", "--home", str(d["home"]), "--run", "mine", "--quiet"]
    assert main(first) == 0
    run_dir = d["home"] / "mine"
    files = json.loads((run_dir / "manifest.json").read_text())["stages"]["survey"]["files"]
    capsys.readouterr()
    # As in the README: a rerun naming only the run and a stage reuses the recorded folder, CSV and target.
    assert main(["--preset", "quick", "--run", "mine", "--only", "thumbnails", "--home", str(d["home"]), "--quiet"]) == 0
    assert "2 unchanged" in capsys.readouterr().out
    assert Atlas.open(run_dir).survey_meta()["source"] == "folder"
    # Another survey is refused, naming the files, and nothing is touched.
    assert main(["--preset", "quick", "--source", "mock", "--run", "mine", "--home", str(d["home"]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was built from your files" in err and str(d["images"]) in err and "--replace-survey" in err
    assert json.loads((run_dir / "manifest.json").read_text())["stages"]["survey"]["files"] == files
    # The cutouts moved away: the rerun fails with a clear message and the finished atlas stays as it was.
    d["images"].rename(d["images"].with_name("moved"))
    assert main(["--preset", "quick", "--run", "mine", "--only", "thumbnails", "--home", str(d["home"]), "--quiet"]) == 1
    assert "stage 'survey' failed" in capsys.readouterr().err
    atlas = Atlas.open(run_dir)
    assert atlas.ready("survey") and atlas.ready("thumbnails") and atlas.survey_meta()["source"] == "folder"
    # Told to, the run is rebuilt from the mock universe.
    assert main(["--preset", "quick", "--source", "mock", "--run", "mine", "--only", "thumbnails", "--replace-survey",
                 "--set", "survey.n_galaxies=200", "--home", str(d["home"]), "--quiet"]) == 0
    assert Atlas.open(run_dir).is_mock
