"""Search: sky positions, example sets, retrieval precision, the index stage's measurements and the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from galaxyml import index as gindex
from galaxyml.atlas import Atlas
from galaxyml.search import (
    dense_codes, example_scores, nearest_galaxy, parse_position, retrieval_table,
)

ROOT = Path(__file__).resolve().parents[1]


def two_populations(n: int = 400, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vectors on a shared offset, half of them displaced along one direction (the 'flag')."""
    rng = np.random.default_rng(seed)
    flag = np.arange(n) % 2 == 0
    x = rng.normal(size=(n, d)) + 5.0
    x[flag, 0] += 6.0
    return x.astype(np.float32), flag


def test_positions_in_degrees_and_sexagesimal_and_bad_ones():
    assert parse_position("150.1 2.2").ra.deg == pytest.approx(150.1)
    assert parse_position("150.1, -2.2").dec.deg == pytest.approx(-2.2)
    c = parse_position("10h00m24s +02d12m00s")
    assert c.ra.deg == pytest.approx(150.1) and c.dec.deg == pytest.approx(2.2)
    assert parse_position("10:00:24 +02:12:00").ra.deg == pytest.approx(150.1)
    for bad, message in (("400 2", "RA must be in"), ("10 -95", "Dec in"), ("10", "give RA and Dec"),
                         ("abc def", "is not a sky position")):
        with pytest.raises(ValueError, match=message):
            parse_position(bad)


def test_the_nearest_galaxy_and_its_separation():
    cat = pd.DataFrame({"ra": [10.0, 20.0, np.nan], "dec": [0.0, 0.0, 0.0]})
    assert nearest_galaxy(cat, parse_position("20.001 0")) == (1, pytest.approx(3.6, rel=1e-3))
    row, sep = nearest_galaxy(cat, parse_position("100 0"))
    assert row == 1 and sep == pytest.approx(80 * 3600, rel=1e-6)
    with pytest.raises(ValueError, match="no ra / dec columns"):
        nearest_galaxy(pd.DataFrame({"z": [0.1]}), parse_position("1 1"))


def test_example_sets_rank_the_positives_population_first():
    x, flag = two_populations()
    pos, neg = np.nonzero(flag)[0][:5], np.nonzero(~flag)[0][:5]
    for method in ("rocchio", "logistic"):
        scores, used = example_scores(x, pos, neg, method)
        assert used == method
        scores[np.r_[pos, neg]] = -np.inf
        assert flag[np.argsort(-scores)[:50]].mean() > 0.9
    assert example_scores(x, pos[:1], neg[:1])[1] == "rocchio"  # too few examples for a classifier
    with pytest.raises(ValueError, match="both a positive and a negative"):
        example_scores(x, pos, pos[:1])
    with pytest.raises(ValueError, match="at least one positive"):
        example_scores(x, [], neg)


def test_dense_codes_put_each_value_at_its_latent():
    dense = dense_codes(np.array([[3, 0], [1, 2]]), np.array([[0.5, 0.25], [1.0, 0.0]]), 4)
    np.testing.assert_array_equal(dense, [[0.25, 0, 0, 0.5], [0, 1.0, 0, 0]])


def test_retrieval_precision_is_high_for_a_separable_flag_and_at_base_rate_for_noise():
    x, flag = two_populations()
    rng = np.random.default_rng(1)
    cat = pd.DataFrame({"spiral": flag, "bar": rng.random(len(flag)) < 0.3})
    sim = gindex.build_index(x)
    table = retrieval_table(lambda rows, k: sim.search(x[rows], k), x, cat, np.arange(len(x)))
    assert table["spiral"]["p10"] > 0.9 and table["spiral"]["base_rate"] == pytest.approx(0.5)
    assert abs(table["bar"]["p10"] - table["bar"]["base_rate"]) < 0.1  # noise retrieves at its base rate
    assert table["spiral"]["p10_examples"] > 0.9


def test_the_index_stage_measures_both_spaces_on_held_out_queries(quick_home):
    m = Atlas.open(quick_home / "quick").metrics("index")
    assert set(m["spaces"]) == {"embeddings", "codes"}
    for info in m["spaces"].values():
        assert info["kind"] == "exact" and info["recall_at_10"] == 1.0 and info["p50_ms"] > 0
    for space in ("embeddings", "codes"):
        table = m["retrieval_p10"][space]
        assert {"spiral", "edge_on", "spiral_visible"} <= set(table)
        # edge-on discs are easy to see: their neighbours are edge-on far more often than chance
        assert table["edge_on"]["p10"] > 2 * table["edge_on"]["base_rate"]


def app_page(page: str, **params: str) -> AppTest:
    """A page of the app run once with the query parameters ``params`` (run ``quick`` unless given)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page(page)
    for k, v in {"run": "quick", **params}.items():
        at.query_params[k] = v
    return at.run()


def search_page(home: Path, **params: str) -> AppTest:
    return app_page("pages/search.py", **params)


def test_search_by_galaxy_shows_neighbours_with_shared_features(quick_home, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    atlas = Atlas.open(quick_home / "quick")
    galaxy = atlas.catalog()["galaxy_id"].iloc[5]
    for space in ("embeddings", "codes"):
        at = search_page(quick_home, galaxy=galaxy, space=space)
        assert not at.exception and not at.error
        table = at.dataframe[0].value
        assert len(table) == 18 and galaxy not in set(table["galaxy_id"])
        assert "shared SAE features" in table and table["cosine similarity"].is_monotonic_decreasing
        assert any("precision@10" in str(df.value.columns.tolist()) for df in at.dataframe)


def test_search_by_position_names_the_distance_to_the_nearest_galaxy(quick_home, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    cat = Atlas.open(quick_home / "quick").catalog()
    ra, dec = cat["ra"].iloc[7], cat["dec"].iloc[7]
    at = search_page(quick_home, by="position", ra=f"{ra:.6f}", dec=f"{dec:.6f}")
    assert not at.exception and any(cat["galaxy_id"].iloc[7] in s.value for s in at.success)
    at = search_page(quick_home, by="position", ra=f"{(ra + 30) % 360:.6f}", dec=f"{dec:.6f}")
    assert any("No galaxy of this survey lies within" in w.value for w in at.warning)
    at = search_page(quick_home, by="position", ra="361", dec="0")
    assert not at.exception and any("RA must be in" in e.value for e in at.error)


def test_search_by_examples_ranks_the_survey_and_names_unknown_ids(quick_home, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    cat = Atlas.open(quick_home / "quick").catalog()
    edge = cat.loc[cat["edge_on"].astype(bool), "galaxy_id"].tolist()
    other = cat.loc[~cat["edge_on"].astype(bool), "galaxy_id"].tolist()
    at = search_page(quick_home, by="examples", positive=",".join(edge[:4] + ["nosuch"]), negative=",".join(other[:4]))
    assert not at.exception and any("nosuch" in w.value for w in at.warning)
    table = at.dataframe[0].value
    found = cat.set_index("galaxy_id").loc[table["galaxy_id"], "edge_on"].astype(bool)
    assert found.mean() > 2 * cat["edge_on"].mean()  # the examples' structure comes back far above chance
    assert not set(table["galaxy_id"]) & set(edge[:4] + other[:4])
