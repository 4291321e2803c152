"""The survey map and what a selection on it holds: UMAP maps scored against PCA, filters as deep-link
expressions, selections from box and lasso shapes, feature enrichment with its multiple-testing
correction, property shifts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from galaxyml.explore import enrichment, filter_mask, format_filters, parse_filters, parse_id_list, property_shifts
from galaxyml.maps import fit_map, neighbour_preservation
from galaxyml.viz.maps import in_polygon, map_figure, rows_in_shapes


def winding_curve(n: int, d: int = 24, seed: int = 0) -> np.ndarray:
    """A closed curve that winds through ``d`` dimensions at several frequencies, plus a little noise:
    any 2-D projection crosses it over itself many times, UMAP lays it out without crossings."""
    rng = np.random.default_rng(seed)
    t = 2 * np.pi * rng.random(n)
    freq = rng.integers(1, 7, d)
    phase = 2 * np.pi * rng.random(d)
    return (np.sin(t[:, None] * freq + phase) + 0.02 * rng.normal(size=(n, d))).astype(np.float32)


def test_umap_map_keeps_neighbourhoods_better_than_pca_on_test_rows():
    x = winding_curve(900)
    rows = np.random.default_rng(1).permutation(900)
    train, val, test = np.sort(rows[:600]), np.sort(rows[600:750]), np.sort(rows[750:])
    result = fit_map(x, train, val, test, centre=False, candidates=(None, 8), queries=150, seed=0)
    assert result.coords.shape == (900, 2) and np.isfinite(result.coords).all()
    info = result.info
    assert set(info["candidates"]) == {"full", "8"} and info["chosen_on"] == "validation"
    assert info["pca_dims"] == (None if info["candidates"]["full"] >= info["candidates"]["8"] else 8)
    assert info["test_preservation"] > info["pca2_test_preservation"] + 0.1, info
    again = fit_map(x, train, val, test, centre=False, candidates=(None, 8), queries=150, seed=0)
    np.testing.assert_array_equal(result.coords, again.coords)  # a rebuild draws the same map


def test_neighbour_preservation_is_one_for_the_same_space_and_low_for_noise():
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    q = np.arange(50)
    assert neighbour_preservation(x, x, q) == 1.0
    assert neighbour_preservation(x, np.random.default_rng(1).normal(size=(300, 2)).astype(np.float32), q) < 0.2


def test_fit_map_refuses_too_few_training_galaxies():
    with pytest.raises(ValueError, match="at least 17 training galaxies"):
        fit_map(np.zeros((30, 4), np.float32), np.arange(10), np.arange(10, 20), np.arange(20, 30), centre=True)


def test_filters_round_trip_and_name_what_is_wrong():
    cat = pd.DataFrame({"galaxy_id": ["a", "b", "c", "d"], "z": [0.01, 0.05, 0.2, np.nan], "mass": [9, 10, 11, 12]})
    ranges = parse_filters("z:0.02:0.3;mass::11", cat.columns)
    assert ranges == {"z": (0.02, 0.3), "mass": (-math.inf, 11.0)}
    assert parse_filters(format_filters(ranges), cat.columns) == ranges
    assert filter_mask(cat, ranges).tolist() == [False, True, True, False]  # no value: left out
    for text, message in (("redshift:0:1", "does not have"), ("z:0.1", "column:min:max"), ("z:a:1", "numbers"),
                          ("z:1:0", "minimum above")):
        with pytest.raises(ValueError, match=message):
            parse_filters(text, cat.columns)
    assert parse_id_list(" a, b;c\nd ") == ["a", "b", "c", "d"]


def test_box_and_lasso_select_the_galaxies_inside():
    coords = np.array([[0, 0], [1, 1], [2, 2], [3, 0], [0.5, 0.2]], np.float32)
    rows = np.arange(5)
    assert rows_in_shapes(coords, rows, [{"x": [2.5, 0.5], "y": [0.5, 2.5]}], []).tolist() == [1, 2]
    triangle = {"x": [-1, 2, -1], "y": [-1, -1, 2]}
    assert rows_in_shapes(coords, rows, [], [triangle]).tolist() == [0, 4]
    assert rows_in_shapes(coords, np.array([1, 2, 3]), [], [triangle]).size == 0  # only rows in view
    inside = in_polygon(np.random.default_rng(0).random((2000, 2)), np.array([0, 1, 1, 0.0]), np.array([0, 0, .5, .5]))
    assert 0.45 < inside.mean() < 0.55


def test_enrichment_finds_a_planted_feature_and_nothing_in_a_random_selection():
    rng = np.random.default_rng(0)
    n, k, m = 3000, 4, 64
    idx = np.stack([rng.choice(m, k, replace=False) for _ in range(n)]).astype(np.int32)
    val = rng.random((n, k)).astype(np.float32) + 0.1
    planted = np.arange(200)
    idx[planted, 0] = 7  # feature 7 fires in every selected galaxy
    idx[planted, 1:] = np.where(idx[planted, 1:] == 7, 8, idx[planted, 1:])
    view = np.arange(n)
    table = enrichment(planted, view, idx, val, m)
    assert table.iloc[0]["feature"] == 7 and table.iloc[0]["q"] < 1e-20 and table.iloc[0]["selection_rate"] == 1.0
    assert (table["q"] >= table["p"]).all()  # BH never makes a p-value smaller
    random_pick = np.sort(rng.choice(np.arange(200, n), 200, replace=False))
    assert (enrichment(random_pick, view, idx, val, m)["q"] > 0.05).all()
    assert enrichment(np.array([], int), view, idx, val, m).empty


def test_property_shifts_rank_the_property_that_differs_first():
    rng = np.random.default_rng(0)
    cat = pd.DataFrame({"z": rng.random(1000), "mass": rng.normal(10, 0.5, 1000)})
    selected = np.flatnonzero(cat["mass"].to_numpy() > 10.5)
    table = property_shifts(cat, selected, np.arange(1000), ["z", "mass"])
    assert table.iloc[0]["property"] == "mass" and table.iloc[0]["q"] < 1e-10
    assert table.set_index("property").loc["z", "q"] > 0.01


def test_map_figure_draws_galaxies_without_a_value_in_grey_and_keeps_rows():
    coords = np.random.default_rng(0).random((10, 2)).astype(np.float32)
    rows = np.array([1, 3, 5, 7])
    values = np.array([0.1, np.nan, 0.3, 0.4])
    fig = map_figure(coords, rows, np.array(["a", "b", "c", "d"]), values, "z", np.array([True, False, False, True]))
    missing, valued = fig.data
    assert list(missing.customdata) == [3] and missing.name == "no value"
    assert list(valued.customdata) == [1, 5, 7] and valued.marker.colorbar.title.text == "z"
    assert list(valued.selectedpoints) == [0, 2]


def explore_page(home, **params: str):
    from tests.test_search import app_page

    return app_page("pages/explore.py", **params)


def test_a_linked_selection_shows_its_galaxies_properties_and_enriched_features(quick_home, monkeypatch):
    from galaxyml.atlas import Atlas

    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    cat = Atlas.open(quick_home / "quick").catalog()
    edge = cat.loc[cat["edge_on"].astype(bool), "galaxy_id"].tolist()[:40]
    at = explore_page(quick_home, ids=",".join(edge), colour="sae:3", filter="z::0.5")
    assert not at.exception and not at.error
    assert any(f"Selection: {len(edge)} galaxies (from the link)" in h.value for h in at.subheader)
    tables = [df.value for df in at.dataframe]
    shifts = next(t for t in tables if "ks" in t)
    assert shifts.iloc[0]["q"] < 0.05  # edge-on discs differ from the survey: the first property is significant
    enriched = next(t for t in tables if "ratio" in t)
    assert len(enriched) and (enriched["q"] < 0.05).all() and (enriched["ratio"] > 1).all()
    assert at.query_params["filter"] == "z::0.5" and at.query_params["colour"] == "sae:3"
    one = explore_page(quick_home, ids=edge[0])  # one galaxy: it is opened
    assert any(f"Galaxy {edge[0]}" in h.value for h in one.subheader)
    nothing = explore_page(quick_home)
    assert not nothing.exception and any("Select galaxies on the map" in i.value for i in nothing.info)
