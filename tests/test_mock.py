"""The mock survey v1: determinism, the injected relations, images, validation, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from galaxyml.data.mock import MockConfig, draw_catalog, make_mock_survey, mock_meta, render_images
from galaxyml import relations as rel
from galaxyml.data.mock.render import gaussian_convolve, sersic_images
from galaxyml.data.survey import Survey, SurveyError


@pytest.fixture(scope="module")
def catalog():
    return draw_catalog(MockConfig(n_galaxies=3000, seed=7))


def test_same_seed_gives_identical_arrays_in_any_batch_size():
    cfg = MockConfig(n_galaxies=40, seed=3)
    cat = draw_catalog(cfg)
    whole = render_images(cfg, cat, first_index=0, batch_size=40)
    pieces = np.concatenate([
        render_images(cfg, cat.iloc[:7], first_index=0, batch_size=3),
        render_images(cfg, cat.iloc[7:40], first_index=7, batch_size=16),
    ])
    assert whole.tobytes() == pieces.tobytes()
    # Galaxy i is the same whatever the survey size, and another seed differs.
    assert draw_catalog(MockConfig(n_galaxies=2000, seed=3)).iloc[:40].drop(columns="galaxy_id").equals(
        cat.drop(columns="galaxy_id"))
    assert not np.array_equal(draw_catalog(MockConfig(n_galaxies=40, seed=4))["log_mstar"], cat["log_mstar"])


def test_metallicity_follows_tremonti_with_the_injected_scatter(catalog):
    sf = catalog[catalog["quenched"] == 0]
    resid = sf["oh_12"] - rel.tremonti_oh(sf["log_mstar"])
    assert abs(resid.mean()) < 0.01
    assert resid.std() == pytest.approx(0.1, abs=0.01)
    assert catalog.loc[catalog["quenched"] == 1, "oh_12"].isna().all()
    lines = sf[sf["agn"] == 0]  # AGN replace the star-forming line ratios
    np.testing.assert_allclose(lines["n2"], (rel.t04_to_pp04(lines["oh_12"]) - 8.90) / 0.57)


def test_fitting_the_catalog_recovers_the_mzr_coefficients():
    cat = draw_catalog(MockConfig(n_galaxies=8000, seed=11))
    sf = cat[cat["quenched"] == 0]
    coef, cov = np.polyfit(sf["log_mstar"], sf["oh_12"], 2, cov=True)
    err = np.sqrt(np.diag(cov))
    truth = np.array([-0.08026, 1.847, -1.492])  # Tremonti et al. (2004), highest power first
    assert np.all(np.abs(coef - truth) < 4 * err), (coef, err)


def test_main_sequence_slope_and_quenching_rise_with_mass(catalog):
    sf = catalog[catalog["quenched"] == 0]
    slope, intercept = np.polyfit(sf["log_mstar"], sf["log_sfr"], 1)
    assert slope == pytest.approx(0.76, abs=0.05)
    low, high = catalog["log_mstar"] < 10.0, catalog["log_mstar"] > 10.8
    assert catalog.loc[high, "quenched"].mean() > catalog.loc[low, "quenched"].mean() + 0.4
    # Colours track specific star formation: quenched galaxies are redder.
    assert catalog.loc[catalog["quenched"] == 1, "g_r"].median() > sf["g_r"].median() + 0.15


def test_flux_limit_and_ranges(catalog):
    assert catalog["mag_r"].max() < 19.0
    assert catalog["z"].between(0.02, 0.25).all()
    assert catalog["log_mstar"].between(8.5, 11.8).all()
    assert catalog["galaxy_id"].is_unique


def test_rendered_flux_matches_catalog_for_compact_galaxies():
    cfg = MockConfig(n_galaxies=200, seed=1, sky_sigma_nmgy=(0.0, 0.0, 0.0))
    cat = draw_catalog(cfg)
    small = cat["r_e_disk_arcsec"] < 1.5  # all light inside the 16.8" stamp
    images = render_images(cfg, cat[small], first_index=0)
    ratio = images[:, 1].sum(axis=(1, 2)) / cat.loc[small, "flux_r"].to_numpy()
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    # The g and z images carry the catalog's observed (K-corrected) colours.
    plain = (cat.loc[small, ["agn", "merger", "artefact", "spiral", "dust_lane", "bar"]] == 0).all(axis=1).to_numpy()
    flux = images[plain].sum(axis=(2, 3))
    np.testing.assert_allclose(-2.5 * np.log10(flux[:, 0] / flux[:, 1]), cat.loc[small, "g_r"][plain], atol=0.03)
    np.testing.assert_allclose(-2.5 * np.log10(flux[:, 1] / flux[:, 2]), cat.loc[small, "r_z"][plain], atol=0.03)


def test_observed_colours_redden_with_redshift_so_images_carry_distance(catalog):
    # At a fixed rest-frame colour, the observed g - r and r - z grow with z (K-corrections), and
    # red spectra redden faster than blue ones; the mass-to-light ratio still uses the rest colour.
    red = catalog[catalog["quenched"] == 1]
    d_gr = red["g_r"] - red["g_r_rest"]
    assert np.corrcoef(red["z"], d_gr)[0, 1] > 0.95
    assert np.polyfit(red["z"], d_gr, 1)[0] == pytest.approx(1.7, abs=0.3)
    d_gr_blue, _, _ = rel.k_correction(np.array([0.2]), np.array([0.35]))
    d_gr_red, d_rz_red, k_r_red = rel.k_correction(np.array([0.2]), np.array([0.78]))
    assert d_gr_blue[0] < 0.6 * d_gr_red[0] and d_rz_red[0] > 0 and k_r_red[0] > 0
    assert (catalog["mag_g"] - catalog["mag_r"]).to_numpy() == pytest.approx(catalog["g_r"].to_numpy())


def test_sersic_half_light_radius_and_psf_conserves_flux():
    img = sersic_images(np.array([1.0]), np.array([6.0]), 1.0, np.array([1.0]), np.array([0.0]), 128, 3)[0]
    assert img.sum() == pytest.approx(1.0, abs=0.005)
    yy, xx = np.indices(img.shape) + 0.5 - 64
    inside = img[np.hypot(xx, yy) < 6.0].sum()
    assert inside == pytest.approx(0.5, abs=0.03)
    assert gaussian_convolve(img[None], 2.0)[0].sum() == pytest.approx(img.sum(), rel=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("n_galaxies", 0, "n_galaxies must be positive"),
    ("image_size_px", 12, "too small for the PSF"),
    ("z_min", 0.5, "z_min"),
    ("sky_sigma_nmgy", (0.1, 0.1), "one non-negative value per band"),
    ("bar_fraction", 1.5, r"survey.bar_fraction must be a fraction in \[0, 1\], got 1.5"),
    ("merger_fraction", -0.1, "survey.merger_fraction must be a fraction"),
])
def test_invalid_config_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        MockConfig(**{field: value})


def test_survey_roundtrip_memmap_and_rgb(tmp_path):
    survey = make_mock_survey(MockConfig(n_galaxies=12, seed=2))
    assert survey.is_mock and survey.meta["prediction_floors"]["oh_12"] == 0.1
    survey.save(tmp_path / "s")
    back = Survey.load(tmp_path / "s")
    assert isinstance(back.images, np.memmap)
    np.testing.assert_array_equal(back.images, survey.images)
    assert back.catalog.equals(survey.catalog)
    rgb = back.rgb(slice(0, 5))
    assert rgb.shape == (5, 64, 64, 3) and rgb.dtype == np.uint8 and rgb.max() > 100


def test_survey_rejects_bad_catalogs(tmp_path):
    survey = make_mock_survey(MockConfig(n_galaxies=4))
    with pytest.raises(SurveyError, match=r"no column 'galaxy_id' \(found: id"):
        Survey(survey.catalog.rename(columns={"galaxy_id": "id"}), survey.images, survey.bands)
    with pytest.raises(SurveyError, match="4 rows but there are 3 images"):
        Survey(survey.catalog, survey.images[:3], survey.bands)
    survey.save(tmp_path / "s")
    (tmp_path / "s" / "images.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(SurveyError, match="cannot read the survey"):
        Survey.load(tmp_path / "s")


def test_bpt_loci_star_forming_below_kauffmann_agn_above_kewley(catalog):
    sf = catalog[catalog["bpt_class"] == 0]
    agn = catalog[catalog["bpt_class"] == 1]
    assert len(agn) > 50
    assert (sf["n2"] < 0.05).all()  # where the Kauffmann line is defined
    assert (sf["o3"] < rel.kauffmann_o3(sf["n2"])).all()
    assert (agn["o3"] > rel.kewley_o3(agn["n2"])).all()
    # AGN prefer massive, bulgy hosts.
    assert agn["log_mstar"].median() > catalog["log_mstar"].median() + 0.3
    assert catalog.loc[catalog["bpt_class"] == -1, "quenched"].eq(1).all()


@pytest.mark.parametrize("flag, population, rate", [
    ("bar", "is_disk", 0.3), ("ring", "is_disk", 0.1), ("merger", None, 0.05), ("artefact", None, 0.03),
])
def test_structure_flags_match_their_configured_rates(catalog, flag, population, rate):
    pool = catalog if population is None else catalog[catalog[population] == 1]
    observed = pool[flag].mean()
    sigma = np.sqrt(rate * (1 - rate) / len(pool))
    assert abs(observed - rate) < 4 * sigma


def test_spirals_are_star_forming_disks_and_votes_follow_truth(catalog):
    spirals = catalog[catalog["spiral"] == 1]
    assert (spirals["quenched"] == 0).all() and (spirals["is_disk"] == 1).all()
    assert spirals["n_arms"].isin([2, 3, 4]).all()
    assert spirals["pitch_angle_deg"].between(10, 30).all()
    votes = "has-spiral-arms_yes_fraction"
    assert spirals[votes].mean() > catalog.loc[catalog["spiral"] == 0, votes].mean() + 0.3
    edge = "disk-edge-on_yes_fraction"
    assert catalog.loc[catalog["edge_on"] == 1, edge].mean() > 0.8
    for column in [c for c in catalog.columns if c.endswith("_fraction") and "-" in c or c.startswith("bar_") and c.endswith("n_fraction")]:
        assert catalog[column].between(0, 1).all()


def test_n2_floor_is_the_scatter_of_n2_around_its_mean_relation():
    """The N2 floor the predictions page compares models with is what the metallicity scatter does to
    N2 (through the T04 -> PP04 conversion), so no model can beat it."""
    cfg = MockConfig(n_galaxies=6000, seed=3)
    cat = draw_catalog(cfg)
    sf = np.isfinite(cat["oh_12"]) & (cat["agn"] == 0)
    mean = rel.pettini_pagel_n2(rel.t04_to_pp04(rel.tremonti_oh(cat["log_mstar"][sf].to_numpy())))
    scatter = np.sqrt(np.mean((cat["n2"][sf].to_numpy() - mean) ** 2))
    floor = mock_meta(cfg, cat)["prediction_floors"]["n2"]
    assert floor == pytest.approx(scatter, rel=0.05)
    assert floor < 0.9 * cfg.metallicity_scatter_dex / 0.57  # the conversion compresses the scale


def test_a_survey_written_with_the_old_n2_floor_reads_the_propagated_one():
    survey = make_mock_survey(MockConfig(n_galaxies=400, seed=4))
    right = survey.prediction_floors()["n2"]
    survey.meta["prediction_floors"]["n2"] = 0.1 / 0.57  # what surveys recorded before the conversion was used
    assert survey.prediction_floors()["n2"] == pytest.approx(right)
    assert right < 0.9 * 0.1 / 0.57 and survey.prediction_floors()["oh_12"] == 0.1
