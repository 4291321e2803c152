"""Structure visibility in the mock: the analytic S/N agrees with the rendered components, what the PSF
hides is not visible, and the votes follow what is visible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxyml.data.mock import MockConfig, draw_catalog
from galaxyml.data.mock.render import render_noiseless
from galaxyml.data.mock.visibility import structure_visibility

CFG = MockConfig(n_galaxies=800)
WITHOUT = {"ring": {"ring": 0, "ring_flux_frac": 0.0}, "bar": {"bar": 0, "bar_flux_frac": 0.0},
           "spiral": {"n_arms": 0}, "merger": {"merger": 0}}


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return draw_catalog(CFG)


@pytest.mark.parametrize("structure", list(WITHOUT))
def test_the_analytic_snr_matches_the_rendered_component(catalog, structure):
    sub = catalog[catalog[structure] > 0].head(40).reset_index(drop=True)
    with_it = render_noiseless(CFG, sub)[:, 1]  # r band
    without = render_noiseless(CFG, sub.assign(**WITHOUT[structure]))[:, 1]
    rendered = np.sqrt(((with_it - without) ** 2).sum((1, 2))) / CFG.sky_sigma_nmgy[1]
    assert 0.8 < np.median(rendered / sub[f"{structure}_snr"]) < 1.25


def test_a_ring_inside_the_psf_is_not_visible_and_a_large_one_is():
    row = {"mag_r": 16.0, "bulge_to_total": 0.2, "agn_flux_fraction": 0.0, "q_disk": 0.9, "ring": 1,
           "ring_radius_frac": 1.6, "ring_flux_frac": 0.15, "bar": 0, "bar_length_frac": 0.0, "bar_flux_frac": 0.0,
           "spiral": 0, "n_arms": 0, "arm_strength": 0.0, "merger": 0, "companion_flux_ratio": 0.0,
           "companion_sep_arcsec": 0.0}
    cols = {k: np.array([v, v], dtype=float) for k, v in row.items()}
    cols["r_e_disk_arcsec"] = np.array([4.0, 0.5])  # the second ring has a radius of 0.8 arcsec: inside the PSF
    vis = structure_visibility(CFG, cols)
    assert vis["ring_visible"].tolist() == [1, 0]
    assert vis["ring_snr"][0] > 5 and vis["ring_resolved"][1] == 0
    assert vis["bar_visible"].tolist() == [0, 0] and vis["bar_snr"].tolist() == [0, 0]  # no bar drawn


def test_votes_follow_visible_structure_and_ask_about_rings(catalog):
    for structure, column in (("ring", "odd-feature_ring_fraction"), ("bar", "bar_strong_fraction"),
                              ("spiral", "has-spiral-arms_yes_fraction")):
        drawn = catalog[catalog[structure] > 0]
        seen = drawn.groupby(f"{structure}_visible")[column].mean()
        assert seen[1] > seen[0] + 0.1, structure  # a structure the image hides gets fewer votes
        assert seen[0] >= catalog.loc[catalog[structure] == 0, column].mean() - 0.02
    assert (catalog[f"{'ring'}_visible"] <= catalog["ring"]).all()
    assert ((catalog["anything-odd_yes_fraction"] >= 0) & (catalog["anything-odd_yes_fraction"] <= 1)).all()
