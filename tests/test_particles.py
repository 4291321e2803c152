"""Star particles reproduce their galaxy: disk scale length, rotation curve, bulge share, ages."""

from __future__ import annotations

import numpy as np
import pytest

from galaxyml.data.mock import MockConfig, make_mock_survey
from galaxyml.data.mock.particles import (
    PARTICLE_COLUMNS, disk_scale_length_kpc, flat_velocity_kms, particle_conditions, project, rotation_curve_kms)


@pytest.fixture(scope="module")
def survey():
    return make_mock_survey(MockConfig(n_galaxies=64, seed=5))


def disky(survey) -> int:
    cat = survey.catalog
    return int(np.nonzero((cat["bulge_to_total"] < 0.3).to_numpy())[0][0])


def test_layout_determinism_and_laziness(survey):
    i = disky(survey)
    p = survey.particles(i, n=5000)
    assert p.shape == (5000, len(PARTICLE_COLUMNS)) == (5000, 10) and p.dtype == np.float32
    np.testing.assert_array_equal(p, survey.particles(i, n=5000))
    assert not np.array_equal(p, survey.particles(i + 1, n=5000))
    with pytest.raises(IndexError, match="outside the survey"):
        survey.particles(len(survey))


def test_disk_scale_length_and_rotation_curve_match_the_galaxy(survey):
    i = disky(survey)
    row = survey.catalog.iloc[i]
    p = survey.particles(i, n=40_000)
    n_disk = 40_000 - int(round(row["bulge_to_total"] * 40_000))
    disk = p[:n_disk]
    radius = np.hypot(disk[:, 0], disk[:, 1])
    h = disk_scale_length_kpc(row)
    assert radius.mean() / 2 == pytest.approx(h, rel=0.03)  # R ~ Gamma(2, h): mean 2h
    v_phi = (disk[:, 0] * disk[:, 4] - disk[:, 1] * disk[:, 3]) / radius
    v_flat = flat_velocity_kms(row["log_mstar"])
    for lo, hi in [(0.5 * h, h), (h, 2 * h), (2 * h, 4 * h)]:
        sel = (radius > lo) & (radius < hi)
        expected = rotation_curve_kms(radius[sel], h, v_flat).mean()
        assert np.median(v_phi[sel]) == pytest.approx(expected, rel=0.05)


def test_bulge_share_ages_and_chemistry(survey):
    cat = survey.catalog
    i = int(np.nonzero((cat["bulge_to_total"] > 0.4).to_numpy())[0][0])
    row = cat.iloc[i]
    p = survey.particles(i, n=20_000)
    n_bulge = int(round(row["bulge_to_total"] * 20_000))
    age, ofe, feh = p[:, 9], p[:, 8], p[:, 7]
    disk, bulge = slice(0, 20_000 - n_bulge), slice(20_000 - n_bulge, None)
    assert np.median(age[bulge]) > np.median(age[disk])  # old bulge
    old, young = age > 9, age < 3
    assert ofe[old].mean() > 0.2 and abs(ofe[young].mean()) < 0.08
    radius = np.hypot(p[disk, 0], p[disk, 1])
    assert np.polyfit(radius, feh[disk], 1)[0] < 0  # negative radial gradient
    cond = particle_conditions(p, row["log_mstar"])
    assert cond["age_p10_gyr"] < cond["age_median_gyr"] and 0 < cond["mean_Z"] < 0.1


def test_projection_matches_the_image_axis_ratio_and_orientation(survey):
    i = disky(survey)
    row = survey.catalog.iloc[i]
    p = survey.particles(i, n=20_000)
    disk = p[: 20_000 - int(round(row["bulge_to_total"] * 20_000))]
    sky = project(disk, row["cos_incl"], row["pa_deg"])
    evals, evecs = np.linalg.eigh(np.cov(sky.T))
    assert np.sqrt(evals[0] / evals[1]) == pytest.approx(row["q_disk"], abs=0.05)
    major = np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1])) % 180
    assert min(abs(major - row["pa_deg"]), 180 - abs(major - row["pa_deg"])) < 5
