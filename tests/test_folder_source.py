"""The folder + CSV source (SFNets layout): exact 64-bit objIDs, skipped images, splits and BPT ratios."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxyml.data.folder import BPT_LINES, FolderSourceError, bpt_ratios, read_catalog_csv, write_folder_survey
from galaxyml.data.survey import IMAGES_FILE

ID = 1237648720693755918  # an SDSS objID: above 2**53, so ID and ID + 1 are the same float
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def make_cutouts(tmp_path: Path, n: int = 6) -> tuple[Path, Path]:
    """n solid-colour cutouts (JPG 40x40 and PNG 80x60 in turn) and a CSV listing them with a target."""
    images = tmp_path / "cutouts"
    images.mkdir()
    for i in range(n):
        size, suffix = ((40, 40), ".jpg") if i % 2 == 0 else ((80, 60), ".PNG" if i == 3 else ".png")
        Image.new("RGB", size, COLOURS[i % len(COLOURS)]).save(images / f"{ID + i}{suffix}",
                                                               format="JPEG" if suffix == ".jpg" else "PNG")
    csv = tmp_path / "train.csv"
    pd.DataFrame({"objID": [ID + i for i in range(n)], "oh_p50": 8.5 + 0.1 * np.arange(n)}).to_csv(csv, index=False)
    return images, csv


def test_ids_stay_exact_and_images_are_resized_and_aligned(tmp_path):
    images, csv = make_cutouts(tmp_path)
    calls = []
    survey = write_folder_survey(images, csv, tmp_path / "out", image_size_px=16, chunk=4,
                                 progress=lambda done, total, msg: calls.append((done, total)))
    ids = survey.catalog["galaxy_id"].tolist()
    assert ids == [str(ID + i) for i in range(6)]  # last-digit neighbours stay distinct and exact
    assert survey.catalog.columns[0] == "galaxy_id" and survey.catalog["objID"].tolist() == ids
    assert survey.images.shape == (6, 3, 16, 16) and survey.images.dtype == np.float32
    assert 0.0 <= survey.images.min() and survey.images.max() <= 1.0
    for row in range(6):  # row i holds the colour written for objID ID + i
        np.testing.assert_allclose(survey.images[row, :, 8, 8], np.array(COLOURS[row]) / 255, atol=0.02)
    assert survey.bands == ("R", "G", "B") and not survey.is_mock
    assert survey.meta["source"] == "folder" and survey.meta["units"] == {"oh_p50": "dex"}
    assert calls[-1] == (6, 6) and len(calls) == 2


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    images, csv = make_cutouts(tmp_path)
    (images / f"{ID + 1}.png").unlink()  # missing
    (images / f"{ID + 2}.jpg").write_bytes(np.random.default_rng(0).bytes(500))  # corrupt
    with caplog.at_level(logging.WARNING, logger="galaxyml.data.folder"):
        survey = write_folder_survey(images, csv, tmp_path / "out", image_size_px=8)
    kept = [0, 3, 4, 5]
    assert survey.catalog["galaxy_id"].tolist() == [str(ID + i) for i in kept]
    for row, i in enumerate(kept):  # the compacted images did not shift against the catalog
        np.testing.assert_allclose(survey.images[row, :, 4, 4], np.array(COLOURS[i]) / 255, atol=0.02)
    skipped = survey.meta["skipped"]
    assert skipped["missing_image"] == 1 and skipped["unreadable_image"] == 1
    assert skipped["examples"][0].startswith(f"{ID + 2}.jpg")
    assert "skipped 1 catalog rows" in caplog.text
    assert not any(p.name.startswith(".draft") for p in (tmp_path / "out").iterdir())
    assert np.load(tmp_path / "out" / IMAGES_FILE).shape == (4, 3, 8, 8)


def test_float_ids_are_refused_and_integer_dot_zero_ids_accepted(tmp_path):
    (tmp_path / "a.csv").write_text("objID,oh_p50\n1.237648720693756e+18,8.9\n1237648720693755919,8.8\n")
    with pytest.raises(FolderSourceError, match=r"'objID' has 1 id.*1\.237648720693756e\+18.*precision.*re-export"):
        read_catalog_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text(f"objID,oh_p50\n {ID}.0 ,8.9\n{ID + 1},8.8\n")
    cat = read_catalog_csv(tmp_path / "b.csv")
    assert cat["galaxy_id"].tolist() == [str(ID), str(ID + 1)] and cat["objID"].tolist() == [str(ID), str(ID + 1)]
    (tmp_path / "c.csv").write_text(f"objID,oh_p50\n{ID}.5,8.9\n")
    with pytest.raises(FolderSourceError, match="precision"):
        read_catalog_csv(tmp_path / "c.csv")


def test_bad_catalogs_are_named(tmp_path):
    (tmp_path / "a.csv").write_text("id,oh_p50\n1,8.9\n")
    with pytest.raises(FolderSourceError, match=r"no id column 'objID' \(columns: id, oh_p50\)"):
        read_catalog_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text(f"objID,oh_p50\n{ID},8.9\n{ID},8.8\n")
    with pytest.raises(FolderSourceError, match=f"repeats ids.*{ID}"):
        read_catalog_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("")
    with pytest.raises(FolderSourceError, match="cannot read"):
        read_catalog_csv(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("objID,oh_p50\n")
    with pytest.raises(FolderSourceError, match="no rows"):
        read_catalog_csv(tmp_path / "d.csv")


def test_test_csv_gives_the_test_split_and_overlap_is_refused(tmp_path):
    images, csv = make_cutouts(tmp_path)
    cat = pd.read_csv(csv, dtype={"objID": str})
    cat.iloc[:4].to_csv(tmp_path / "tr.csv", index=False)
    cat.iloc[4:].to_csv(tmp_path / "te.csv", index=False)
    survey = write_folder_survey(images, tmp_path / "tr.csv", tmp_path / "out", image_size_px=8,
                                 test_catalog_csv=tmp_path / "te.csv")
    assert survey.catalog["split"].tolist() == ["train"] * 4 + ["test"] * 2
    assert survey.meta["split"] == "given"
    with pytest.raises(FolderSourceError, match=rf"2 objID\(s\) are in both.*{ID + 4}"):
        write_folder_survey(images, csv, tmp_path / "out2", test_catalog_csv=tmp_path / "te.csv")


def test_seeded_split_is_reproducible_with_about_test_fraction(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    n = 200
    for i in range(n):
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(images / f"{ID + i}.png")
    pd.DataFrame({"objID": [ID + i for i in range(n)], "oh_p50": 8.7}).to_csv(tmp_path / "c.csv", index=False)
    a = write_folder_survey(images, tmp_path / "c.csv", tmp_path / "a", image_size_px=4, test_fraction=0.25, seed=3)
    b = write_folder_survey(images, tmp_path / "c.csv", tmp_path / "b", image_size_px=4, test_fraction=0.25, seed=3)
    c = write_folder_survey(images, tmp_path / "c.csv", tmp_path / "c", image_size_px=4, test_fraction=0.25, seed=4)
    assert a.catalog["split"].tolist() == b.catalog["split"].tolist() != c.catalog["split"].tolist()
    assert (a.catalog["split"] == "test").sum() == 50  # exactly test_fraction of the galaxies
    assert (a.catalog["split"] == "val").sum() == 20 and a.meta["split"] == "seeded"


def test_bpt_ratios_are_log_line_ratios_with_an_snr_cut():
    flux = {"nii": [30.0, 30.0], "ha": [100.0, 100.0], "oiii": [20.0, 20.0], "hb": [40.0, 40.0]}
    cat = pd.DataFrame({BPT_LINES[k]: v for k, v in flux.items()} | {f"{c}_err": [1.0, 1.0] for c in BPT_LINES.values()})
    cat.loc[1, "h_beta_flux_err"] = 40.0 / 2.9  # S/N 2.9 < 3 in one line: no ratios for this galaxy
    out = bpt_ratios(cat)
    assert out.loc[0, "n2"] == pytest.approx(np.log10(0.3)) and out.loc[0, "o3"] == pytest.approx(np.log10(0.5))
    assert out["bpt_snr_ok"].tolist() == [True, False]
    assert np.isnan(out.loc[1, "n2"]) and np.isnan(out.loc[1, "o3"])
    assert "n2" not in cat  # a copy, not an edit in place
    plain = pd.DataFrame({"oh_p50": [8.9]})
    assert bpt_ratios(plain) is plain  # no line columns: unchanged


def test_no_matching_image_is_a_clear_error(tmp_path):
    images, _ = make_cutouts(tmp_path, n=2)
    (tmp_path / "other.csv").write_text("objID,oh_p50\n42,8.9\n43,8.8\n")
    with pytest.raises(FolderSourceError, match=f"none of the 2 objIDs has an image in {images}.*42.jpg.*{ID}.jpg"):
        write_folder_survey(images, tmp_path / "other.csv", tmp_path / "out")
