"""Exports carry their provenance: figures (PNG / SVG / PDF), galleries (PNG / PDF), tables (CSV / parquet /
FITS with units); an empty view says there is nothing to export."""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
import plotly.express as px
import pytest
from PIL import Image

from galaxyml.export import (EmptyExport, Provenance, figure_bytes, gallery_bytes, publication_style,
                             read_provenance, table_bytes)
from galaxyml.export.gallery import scale_bar_arcsec
from galaxyml.export.screenshot import find_chromium

PROV = Provenance.of("demo", {"sha256": "ab" * 32, "stages": {"sae": {"hash": "h1", "config_hash": "c1"},
                                                               "survey": {"hash": "h0", "config_hash": "c0"}}},
                     ["sae", "survey", "absent"], link="http://localhost:8501/atlas?run=demo&feature=3",
                     title="SAE feature 3")
TABLE = pd.DataFrame({"galaxy_id": ["g-1", "g-2", "g-3"], "activation": [1.5, 2.0, 0.25],
                      "ra": [150.1, 150.2, np.nan], "bar": [True, False, True]})


def _check(record: dict) -> None:
    assert record["atlas"] == "demo" and record["manifest_sha256"] == "ab" * 32
    assert record["stages"] == {"sae": {"config_hash": "c1", "hash": "h1"}, "survey": {"config_hash": "c0", "hash": "h0"}}
    assert record["link"].endswith("atlas?run=demo&feature=3") and record["title"] == "SAE feature 3"
    assert record["version"] and record["created"].startswith("20")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "fits"])
def test_tables_keep_their_rows_units_and_provenance(fmt):
    data = table_bytes(TABLE, fmt, PROV, units={"ra": "deg", "activation": ""})
    _check(read_provenance(data, fmt))
    if fmt == "csv":
        back = pd.read_csv(io.BytesIO(data), comment="#")
        assert "# unit ra: deg" in data.decode()
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        back = pd.read_parquet(io.BytesIO(data))
        assert pq.read_schema(io.BytesIO(data)).metadata[b"unit:ra"] == b"deg"
    else:
        from astropy.table import Table

        t = Table.read(io.BytesIO(data), format="fits")
        assert str(t["ra"].unit) == "deg"
        back = t.to_pandas()
        back["galaxy_id"] = back["galaxy_id"].astype(str)
    assert list(back["galaxy_id"]) == list(TABLE["galaxy_id"])
    np.testing.assert_allclose(back["activation"], TABLE["activation"])
    assert np.isnan(back["ra"].iloc[2]) and list(back["bar"]) == [True, False, True]


def test_an_empty_view_has_nothing_to_export():
    with pytest.raises(EmptyExport, match="nothing to export"):
        table_bytes(TABLE.iloc[:0], "csv", PROV)
    with pytest.raises(EmptyExport, match="nothing to export"):
        gallery_bytes(np.zeros((0, 8, 8, 3), np.uint8), [], "png", PROV)
    with pytest.raises(EmptyExport, match="nothing to export"):
        figure_bytes(px.scatter(), "svg", PROV)


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_a_gallery_is_a_grid_with_ids_and_provenance(fmt):
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    data = gallery_bytes(images, [f"g-{i}" for i in range(8)], fmt, PROV, values=np.linspace(0, 1, 8),
                         value_label="activation", arcsec_per_px=0.8, columns=4, publication=True)
    _check(read_provenance(data, fmt))
    if fmt == "png":
        im = Image.open(io.BytesIO(data))
        assert im.width > 4 * 160 > im.height / 2  # 4 columns of 160 px cells, 2 rows with captions
        assert im.getpixel((2, 2)) == (255, 255, 255)  # publication style: white
    else:
        assert data.startswith(b"%PDF")


def test_the_scale_bar_is_a_round_third_of_a_thumbnail():
    assert scale_bar_arcsec(0.262 * 152 / 64, 64) == 10  # a 40" thumbnail: about 13" wanted
    assert scale_bar_arcsec(4.0, 128) == 120  # a 512" tile: about 171" wanted, 120 is nearer than 300 in log


def test_the_publication_style_is_white_large_and_colour_blind_safe():
    fig = px.scatter(TABLE, x="activation", y="ra", color="activation")
    pub = publication_style(fig)
    assert pub.layout.paper_bgcolor == "white" and pub.layout.font.size >= 16
    assert pub.layout.coloraxis.colorscale[0][1] != fig.layout.coloraxis.colorscale[0][1]  # cividis now
    assert fig.layout.paper_bgcolor is None  # the figure on the page is left as it was


def _chromium_or_skip():
    if find_chromium() is None:
        if os.environ.get("GALAXYML_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("figure export renders through chromium, which is not installed")


@pytest.mark.browser
def test_figures_render_as_png_svg_and_pdf_with_provenance():
    _chromium_or_skip()
    fig = px.scatter(TABLE, x="activation", y="ra", labels={"ra": "RA [deg]"})
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<svg"), ("pdf", b"%PDF")):
        data = figure_bytes(fig, fmt, PROV, scale=2, publication=fmt == "pdf")
        assert magic in data[:200]
        _check(read_provenance(data, fmt))
    png = Image.open(io.BytesIO(figure_bytes(fig, "png", PROV, scale=3)))
    assert png.width == 900 * 3  # the chosen scale
