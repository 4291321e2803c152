"""Mock cluster fields and the redMaPPer-format reader (on the mock's and on hand-written files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.cosmology import Planck18

from galaxyml.data.mock.clusters import ClusterFieldConfig, draw_tile, r_lambda_mpc_h, red_sequence, render_tile
from galaxyml.data.redmapper import RedMaPPerError, read_clusters, read_members, write_fits_table


@pytest.fixture(scope="module")
def tiles():
    cfg = ClusterFieldConfig(n_fields=30, size_px=256, seed=3)
    return cfg, [draw_tile(cfg, t) for t in range(cfg.n_fields)]


def test_clusters_follow_the_injected_relations(tiles):
    cfg, drawn = tiles
    records = pd.DataFrame([r for r, _ in drawn])
    clusters = records[records["has_cluster"] == 1]
    assert 0.5 < len(clusters) / len(records) < 0.9  # some empty tiles are negatives
    assert clusters["z"].between(cfg.z_min, cfg.z_max).all()
    assert clusters["richness"].between(cfg.lambda_min, cfg.lambda_max).all()
    for rec, gal in drawn:
        if not rec["has_cluster"]:
            assert gal["is_member"].sum() == 0
            continue
        members = gal[gal["is_member"] == 1]
        bcg = members[members["is_bcg"] == 1].iloc[0]
        assert bcg["mag_r"] == members["mag_r"].min()  # the BCG is the brightest member
        r = np.hypot(members["x_arcsec"] - bcg["x_arcsec"], members["y_arcsec"] - bcg["y_arcsec"])
        r_lam = r_lambda_mpc_h(rec["richness"]) / Planck18.h * 1000 * Planck18.arcsec_per_kpc_proper(rec["z"]).value
        assert (r <= r_lam * 1.0001).all()
        gr, _ = red_sequence(rec["z"])
        assert abs((members["mag_g"] - members["mag_r"]).median() - gr) < 0.05  # red sequence at z


def test_red_sequence_colour_tracks_redshift():
    gr, rz = red_sequence(np.array([0.1, 0.3, 0.5]))
    assert np.all(np.diff(gr) > 0) and np.all(np.diff(rz) > 0)


def test_rendered_tile_holds_the_members_light(tiles):
    cfg, drawn = tiles
    rec, gal = next(d for d in drawn if d[0]["has_cluster"])
    image = render_tile(cfg, gal, rec["tile"])
    assert image.shape == (3, cfg.size_px, cfg.size_px) and image.dtype == np.float32
    bcg = gal[gal["is_bcg"] == 1].iloc[0]
    y, x = int(round(bcg["y_px"])), int(round(bcg["x_px"]))
    if 5 <= x < cfg.size_px - 5 and 5 <= y < cfg.size_px - 5:
        assert image[1, y, x] > 20 * cfg.sky_sigma_nmgy[1]


def test_reader_reads_real_layout_files_and_rejects_bad_ones(tmp_path):
    cat = pd.DataFrame({"MEM_MATCH_ID": np.array([1, 2], np.int32), "RA": [10.0, 20.0], "DEC": [1.0, 2.0],
                        "Z_LAMBDA": np.array([0.2, 0.3], np.float32), "LAMBDA": np.array([25.0, 60.0], np.float32),
                        "NAME": ["RMJ000001.0+010000.0", "RMJ000002.0+020000.0"]})
    write_fits_table(cat, tmp_path / "catalog.fits")
    back = read_clusters(tmp_path / "catalog.fits")
    assert list(back["MEM_MATCH_ID"]) == [1, 2] and back["NAME"].iloc[0].startswith("RMJ")
    with pytest.raises(RedMaPPerError, match=r"has no column P .*needs MEM_MATCH_ID, RA, DEC, P"):
        read_members(tmp_path / "catalog.fits")
    data = (tmp_path / "catalog.fits").read_bytes()
    (tmp_path / "truncated.fits").write_bytes(data[: len(data) // 2])
    with pytest.raises(RedMaPPerError, match="truncated.fits"):
        read_clusters(tmp_path / "truncated.fits")
    with pytest.raises(RedMaPPerError, match="does not exist"):
        read_clusters(tmp_path / "missing.fits")


def test_quick_atlas_has_cluster_fields_readable_by_the_redmapper_reader(quick_home):
    folder = quick_home / "quick" / "cluster_fields"
    clusters = read_clusters(folder / "redmapper_catalog.fits")
    members = read_members(folder / "redmapper_members.fits")
    assert set(members["MEM_MATCH_ID"]) <= set(clusters["MEM_MATCH_ID"])
    assert np.load(folder / "fields.npy", mmap_mode="r").shape[0] == 40  # the quick preset's tiles


def test_fields_without_any_cluster_still_give_valid_empty_catalogues(tmp_path):
    from galaxyml.data.redmapper import mock_to_redmapper

    cfg = ClusterFieldConfig(n_fields=2, size_px=64, empty_fraction=1.0)
    drawn = [draw_tile(cfg, t) for t in range(2)]
    tiles = pd.DataFrame([r for r, _ in drawn])
    catalog, members = mock_to_redmapper(tiles, pd.concat([g for _, g in drawn]))
    assert len(catalog) == 0 and len(members) == 0
    write_fits_table(catalog, tmp_path / "c.fits")
    assert len(read_clusters(tmp_path / "c.fits")) == 0
