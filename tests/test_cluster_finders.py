"""The cluster finders: set networks invariant to member order, the detector's decoding, augmentation that
moves the labels with the pixels, the scoring, the real-data folder (FITS / JPG tiles with a redMaPPer
catalogue, HEALPix negatives) through the CLI, bad input, and the clusters page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from PIL import Image

from galaxyml.atlas import Atlas
from galaxyml.clusters.fuse import Fusion, merge_candidates
from galaxyml.clusters.prep import dihedral, member_sets
from galaxyml.clusters.score import best_threshold, completeness_purity, match, sigma_z
from galaxyml.data.cluster_tiles import ClusterTileError, near_clusters, negative_field_centres, healpix_for, read_tile_folder
from galaxyml.data.mock.clusters import ClusterFieldConfig, draw_tile, render_tile, tile_wcs
from galaxyml.data.redmapper import (RedMaPPerError, detections_catalog, mock_to_redmapper, read_clusters,
                                     write_fits_table)
from galaxyml.models.clusters import CenterNetDetector, DeepSets, Janossy, decode_detections
from precompute.cli import main
from tests.test_search import app_page


def _sets(n_clusters=6, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_clusters, n, 6)).astype(np.float32)
    mask = (np.arange(n)[None] < rng.integers(10, n, n_clusters)[:, None]).astype(np.float32)
    return torch.as_tensor(x), torch.as_tensor(mask)


def test_set_networks_do_not_care_about_member_order():
    torch.manual_seed(0)
    x, mask = _sets()
    perm = torch.randperm(x.shape[1])
    deepsets = DeepSets().eval()
    with torch.no_grad():
        assert torch.allclose(deepsets(x, mask), deepsets(x[:, perm], mask[:, perm]), atol=1e-5)
        # Janossy pooling samples permutations: invariant in expectation. Averaged over draws, the
        # outputs for two orders agree far better than those of two different sets.
        janossy = Janossy(n_perm=8).eval()
        def mean_out(xx, mm):
            return torch.stack([janossy(xx, mm, torch.Generator().manual_seed(s)) for s in range(40)]).mean(0)
        a, b = mean_out(x, mask), mean_out(x[:, perm], mask[:, perm])
        other = mean_out(torch.roll(x, 1, 0), torch.roll(mask, 1, 0))
        assert (a - b).abs().mean() < 0.2 * (a - other).abs().mean()
        # Padding is not a member: adding padded rows changes nothing.
        pad_x, pad_m = torch.cat([x, torch.zeros(x.shape[0], 8, 6)], 1), torch.cat([mask, torch.zeros(mask.shape[0], 8)], 1)
        assert torch.allclose(deepsets(x, mask), deepsets(pad_x, pad_m), atol=1e-5)


def test_decoding_finds_heatmap_peaks_with_offsets_and_suppresses_neighbours():
    out = torch.zeros((1, 6, 16, 16))
    out[0, 0] = -10.0
    out[0, 0, 5, 7] = 4.0  # peak at cell (x=7, y=5)
    out[0, 0, 5, 8] = 3.0  # its neighbour: not a peak
    out[0, 0, 6, 9] = 3.5  # a second peak 2 cells away: suppressed by distance
    out[0, 0, 12, 2] = 2.0  # a distant peak
    out[0, 1:3, 5, 7] = torch.tensor([0.25, 0.75])
    out[0, 3, 5, 7] = np.log(10.0)
    found = decode_detections(out, stride=4, suppress_px=12.0)[0]
    assert len(found) == 2
    assert found[0, :3] == pytest.approx([(7 + 0.25) * 4, (5 + 0.75) * 4, 10.0])
    assert found[1, :2] == pytest.approx([2 * 4, 12 * 4])
    assert found[0, 3] > found[1, 3]


def test_augmentation_moves_the_cluster_centre_with_the_pixels():
    rng = np.random.default_rng(0)
    img = np.zeros((20, 1, 32, 32), np.float32)
    img[:, 0, 5, 20] = 1.0  # pixel (row 5, col 20): centre (20.5, 5.5) in continuous coordinates
    out, pts = dihedral(img, [np.array([[20.5, 5.5]])] * 20, rng, roll=True)
    for im, p in zip(out, pts):
        row, col = np.unravel_index(np.argmax(im[0]), im[0].shape)
        assert p[0] == pytest.approx([col + 0.5, row + 0.5])


def test_detector_sees_any_tile_size_at_stride_four():
    det = CenterNetDetector(in_channels=5, width=8).eval()
    with torch.no_grad():
        assert det(torch.zeros(2, 5, 64, 64)).shape == (2, 6, 16, 16)


def test_matching_completeness_purity_and_threshold():
    truth = pd.DataFrame({"tile": [0, 1, 2], "x_px": [10.0, 50.0, 30.0], "y_px": [10.0, 50.0, 30.0]})
    det = pd.DataFrame({"tile": [0, 0, 1, 3], "x_px": [11.0, 12.0, 90.0, 5.0], "y_px": [10.0, 10.0, 90.0, 5.0],
                        "score": [0.9, 0.8, 0.7, 0.3]})
    m = match(det, truth, match_arcsec=8.0, scale_of={t: 4.0 for t in range(4)})
    # Tile 0: the strongest claims the cluster, the second is a duplicate; tile 1: 160 arcsec away.
    assert list(m.sort_values("score", ascending=False)["matched"]) == [0, -1, -1, -1]
    assert completeness_purity(m, truth, 0.85) == (pytest.approx(1 / 3), 1.0)
    assert completeness_purity(m, truth, 0.0) == (pytest.approx(1 / 3), 0.25)
    assert best_threshold(m, truth) == 0.9
    assert sigma_z(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.3])) == 0.0


def _found(rows):
    return pd.DataFrame(rows, columns=["tile", "x_px", "y_px", "half_size_px", "z", "lambda", "score"])


def test_fusion_merges_the_two_finders_candidates_and_reads_the_heatmap_where_only_one_found_a_cluster():
    detector = _found([(0, 10.0, 10.0, 5.0, 0.40, 20.0, 0.8), (1, 30.0, 30.0, 5.0, 0.30, 25.0, 0.2)])
    red_sequence = _found([(0, 13.0, 10.0, 9.0, 0.31, 33.0, 7.0), (0, 60.0, 60.0, 9.0, 0.50, 40.0, 4.0)])
    c = merge_candidates(detector, red_sequence, radius_px=5.0, heat_at=lambda t, x, y: 0.05)
    assert len(c) == 3
    merged = c[(c["tile"] == 0) & (c["x_px"] == 10.0)].iloc[0]  # at the detector's centre, the red sequence's z, lambda
    assert (merged["detector_score"], merged["red_sequence_score"], merged["z"], merged["lambda"]) == (0.8, 7.0, 0.31, 33.0)
    alone = c[c["x_px"] == 60.0].iloc[0]
    assert (alone["detector_score"], alone["red_sequence_score"]) == (0.05, 4.0)
    assert c[c["tile"] == 1]["red_sequence_score"].tolist() == [0.0]


def test_fusion_finds_clusters_either_finder_alone_misses_and_cross_fits_its_validation_scores():
    rng = np.random.default_rng(0)
    n = 600
    heat, sig = rng.uniform(0.01, 0.99, n), rng.uniform(0, 20, n)
    # A cluster when the evidence of both finders together is strong: neither alone separates them.
    is_cluster = (np.log(heat / (1 - heat)) + 0.4 * sig + rng.normal(0, 0.5, n)) > 4
    cand = pd.DataFrame({"tile": np.arange(n) // 5, "detector_score": heat, "red_sequence_score": sig})
    fusion = Fusion.fit(cand, is_cluster)
    from sklearn.metrics import roc_auc_score
    fused_auc = roc_auc_score(is_cluster, fusion.val_scores)
    assert fused_auc > max(roc_auc_score(is_cluster, heat), roc_auc_score(is_cluster, sig)) + 0.03
    assert fusion.weights()["detector_logit"] > 0 and fusion.weights()["red_sequence_significance"] > 0
    # A validation tile's score comes from a model that never saw that tile: its own labels do not move it.
    flipped = is_cluster.copy()
    flipped[cand["tile"] == 0] = ~flipped[cand["tile"] == 0]
    again = Fusion.fit(cand, flipped)
    assert np.allclose(again.val_scores[cand["tile"] == 0], fusion.val_scores[cand["tile"] == 0])
    with pytest.raises(ValueError, match="clusters and candidates that are not"):
        Fusion.fit(cand, np.ones(n, bool))


def test_member_sets_keep_the_most_probable_members_and_their_colours():
    members = pd.DataFrame({"MEM_MATCH_ID": [1, 1, 1, 2], "RA": [10.0, 10.01, 10.02, 20.0], "DEC": [0.0, 0.0, 0.01, 1.0],
                            "P": [0.9, 0.2, 0.8, 1.0], "MODEL_MAG_G": [20.0, 21.0, 21.5, 19.0],
                            "MODEL_MAG_R": [19.0, 20.0, 20.2, 18.0], "MODEL_MAG_Z": [18.5, 19.4, 19.8, 17.5]})
    x, mask = member_sets(members, np.array([1, 2, 3]), max_members=2)
    assert mask.tolist() == [[1, 1], [1, 0], [0, 0]]  # cluster 3 has no members: an empty set
    assert x[0, :, 5].tolist() == pytest.approx([0.9, 0.8])  # P, most probable first
    assert x[0, 0, 3] == pytest.approx(1.0) and x[0, 1, 3] == pytest.approx(1.3)  # g - r


def test_healpix_negatives_lie_away_from_every_catalogued_cluster():
    rng = np.random.default_rng(1)
    catalog = pd.DataFrame({"RA": rng.uniform(150, 160, 300), "DEC": rng.uniform(0, 10, 300)})
    neg = negative_field_centres(catalog, 50, tile_arcsec=512, ra_range=(150, 160), dec_range=(0, 10), seed=0)
    assert len(neg) == 50 and neg["healpix"].is_unique
    hp = healpix_for(512)
    assert not near_clusters(hp, neg["ra"], neg["dec"], catalog["RA"], catalog["DEC"]).any()
    assert near_clusters(hp, catalog["RA"][:5], catalog["DEC"][:5], catalog["RA"], catalog["DEC"]).all()


# --- the real-data folder -----------------------------------------------------------------------------

def write_real_tiles(folder: Path, n: int = 24, kind: str = "fits") -> tuple[Path, Path]:
    """``n`` mock tiles written as FITS images with their WCS (or JPGs with tiles.csv), and redMaPPer
    catalogue and members files in the layout of the public release."""
    cfg = ClusterFieldConfig(n_fields=n, size_px=64, pixel_scale_arcsec=8.0, seed=5)
    tiles_dir = folder / "tiles"
    tiles_dir.mkdir(parents=True)
    records, gals, rows = [], [], []
    for t in range(n):
        rec, gal = draw_tile(cfg, t)
        image = render_tile(cfg, gal, t)
        wcs = tile_wcs(cfg, rec["ra_center"], rec["dec_center"])
        if kind == "fits":
            fits.PrimaryHDU(image, header=wcs.to_header()).writeto(tiles_dir / f"tile_{t:03d}.fits")
        else:
            rgb = np.clip(np.arcsinh(image[::-1] / 0.05) / 6 * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)[::-1]
            Image.fromarray(rgb).save(tiles_dir / f"tile_{t:03d}.jpg", quality=95)
            rows.append({"file": f"tile_{t:03d}.jpg", "ra": rec["ra_center"], "dec": rec["dec_center"],
                         "pixel_scale_arcsec": cfg.pixel_scale_arcsec})
        records.append(rec)
        gals.append(gal)
    if rows:
        pd.DataFrame(rows).to_csv(tiles_dir / "tiles.csv", index=False)
    catalog, members = mock_to_redmapper(pd.DataFrame(records), pd.concat(gals, ignore_index=True))
    write_fits_table(catalog.drop(columns=["TILE"]), folder / "catalog.fits")
    write_fits_table(members, folder / "members.fits")
    return folder / "catalog.fits", folder / "members.fits"


def test_fits_tiles_with_a_redmapper_catalogue_are_labelled_from_their_wcs(tmp_path):
    cat_path, _ = write_real_tiles(tmp_path, n=6)
    catalog = read_clusters(cat_path)
    images, tiles, truth = read_tile_folder(tmp_path / "tiles", catalog, size_px=32)
    assert images.shape == (6, 3, 32, 32)
    assert tiles["has_cluster"].sum() == len(catalog) == len(truth)
    # The BCG, where the catalogue puts the cluster, lights the pixel of the recorded position: a local
    # maximum far above the sky.
    for t in truth.itertuples():
        img = images[int(t.tile), 1]
        y, x = int(round(t.y_px)), int(round(t.x_px))
        assert img[y, x] == img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max() > 50 * 0.02


def test_cli_builds_cluster_finders_on_a_folder_of_real_tiles(tmp_path, monkeypatch):
    cat_path, mem_path = write_real_tiles(tmp_path, n=30)
    home = tmp_path / "runs"
    code = main(["--preset", "quick", "--only", "clusters", "--home", str(home), "--run", "real", "--quiet",
                 "--set", 'cluster_fields.source="folder"', "--set", f'cluster_fields.tiles_path="{tmp_path / "tiles"}"',
                 "--set", f'cluster_fields.catalog_path="{cat_path}"', "--set", f'cluster_fields.members_path="{mem_path}"'])
    assert code == 0
    atlas = Atlas.open(home / "real")
    m = atlas.metrics("clusters")
    assert m["split"] == "test" and m["n_test_tiles"] == 6
    assert not atlas.has_file("cluster_fields", "galaxies.parquet")  # no galaxy catalogue: image and set models only
    summary = atlas.load_json("clusters", "summary.json")
    assert set(summary["table"]) == {"classifier", "detector", "deepsets_sets", "janossy_sets", "red_sequence_sets"}
    monkeypatch.setenv("GALAXYML_HOME", str(home))
    at = app_page("pages/clusters.py", run="real")
    assert not at.exception and not at.error
    assert any("no galaxy catalogue" in c.value for c in at.caption) or at.info


def test_bad_cluster_inputs_get_clear_errors(tmp_path):
    cat_path, mem_path = write_real_tiles(tmp_path, n=3)
    catalog = read_clusters(cat_path)
    # A FITS file that is not a table.
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "image.fits")
    with pytest.raises(RedMaPPerError, match="no binary table"):
        read_clusters(tmp_path / "image.fits")
    # Missing required columns are named.
    write_fits_table(pd.DataFrame({"MEM_MATCH_ID": [1], "RA": [1.0]}), tmp_path / "bare.fits")
    with pytest.raises(RedMaPPerError, match="no column DEC, Z_LAMBDA, LAMBDA"):
        read_clusters(tmp_path / "bare.fits")
    # A tile with another band count; a truncated tile; JPGs without tiles.csv.
    bad = tmp_path / "bad_bands"
    bad.mkdir()
    for name in ("a.fits", "b.fits"):
        (bad / name).write_bytes((tmp_path / "tiles" / "tile_000.fits").read_bytes())
    with fits.open(bad / "b.fits", mode="update") as h:
        h[0].data = h[0].data[:2]
    with pytest.raises(ClusterTileError, match="b.fits has 2 bands where a.fits has 3"):
        read_tile_folder(bad, catalog, 32)
    trunc = tmp_path / "truncated"
    trunc.mkdir()
    data = (tmp_path / "tiles" / "tile_000.fits").read_bytes()
    (trunc / "t.fits").write_bytes(data[: len(data) // 2])
    with pytest.raises(ClusterTileError, match="t.fits is not a readable FITS image"):
        read_tile_folder(trunc, catalog, 32)
    jpgs = tmp_path / "jpgs"
    jpgs.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(jpgs / "x.jpg")
    with pytest.raises(ClusterTileError, match="no tiles.csv"):
        read_tile_folder(jpgs, catalog, 32)
    # Members pointing to clusters the catalogue does not have: the build stops and names them.
    members = fits.getdata(mem_path)
    members["MEM_MATCH_ID"][:3] = 999
    fits.BinTableHDU(members).writeto(tmp_path / "members_bad.fits")
    code = main(["--preset", "quick", "--only", "cluster_fields", "--home", str(tmp_path / "runs"), "--quiet",
                 "--set", 'cluster_fields.source="folder"', "--set", f'cluster_fields.tiles_path="{tmp_path / "tiles"}"',
                 "--set", f'cluster_fields.catalog_path="{cat_path}"',
                 "--set", f'cluster_fields.members_path="{tmp_path / "members_bad.fits"}"'])
    assert code != 0


def test_jpg_tiles_are_placed_on_the_sky_by_tiles_csv(tmp_path):
    cat_path, _ = write_real_tiles(tmp_path, n=4, kind="jpg")
    images, tiles, truth = read_tile_folder(tmp_path / "tiles", read_clusters(cat_path), size_px=64)
    assert images.shape == (4, 3, 64, 64) and tiles["pixel_scale_arcsec"].iloc[0] == pytest.approx(8.0, rel=1e-6)
    fields = [draw_tile(ClusterFieldConfig(n_fields=4, size_px=64, pixel_scale_arcsec=8.0, seed=5), t)[0] for t in range(4)]
    for rec in fields:
        if rec["has_cluster"]:
            row = truth[truth["tile"] == rec["tile"]].iloc[0]
            assert row["x_px"] == pytest.approx(rec["x_px"], abs=0.05) and row["y_px"] == pytest.approx(rec["y_px"], abs=0.05)


# --- the quick atlas ------------------------------------------------------------------------------------

def test_quick_atlas_scores_every_finder_on_test_tiles_beside_the_baseline(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    m = atlas.metrics("clusters")
    assert m["split"] == "test" and m["match_arcsec"] == 60.0
    for key in ("completeness_l20", "purity_l20", "classifier_auroc", "sigma_z_deepsets", "sigma_z_red_sequence"):
        assert key in m
    det = atlas.load_table("clusters", "detections.parquet")
    assert set(det["split"]) <= {"val", "test"}  # nothing scored on training tiles
    assert {"detector", "catalogue", "red_sequence"} <= set(det["method"])
    assert "fused" in set(det["method"]) and "fused_completeness_l20" in m  # fit on the validation tiles
    assert set(m["fusion_weights"]) == {"detector_logit", "red_sequence_significance", "intercept"}
    cat = detections_catalog(det[det["method"] == "detector"])
    assert cat["MEM_MATCH_ID"].tolist() == list(range(1, len(cat) + 1)) and cat["SCORE"].is_monotonic_decreasing


def test_clusters_page_shows_the_table_the_tile_and_exports_fits(quick_home, monkeypatch, tmp_path):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    tiles = Atlas.open(quick_home / "quick").load_table("clusters", "tiles.parquet")
    tile = int(tiles[(tiles["split"] == "test") & (tiles["has_cluster"] == 1)]["tile"].iloc[0])
    at = app_page("pages/clusters.py", method="red_sequence", tile=str(tile))
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert "red-sequence finder (baseline)" in set(table["method"]) and "CenterNet detector" in set(table["method"])
    assert at.selectbox[0].value == str(tile)
    at = app_page("pages/clusters.py", tile="99999")
    assert any("99999" in w.value for w in at.warning)
