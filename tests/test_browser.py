"""Real-browser check: a deep link opened on a freshly started server lands on the full page.

Runs ``streamlit run app.py`` on a free localhost port against the session's quick atlas and
drives the Debian ``chromium`` package with Playwright.
"""

from __future__ import annotations

import contextlib
import shutil

import pytest

from galaxyml.atlas import Atlas
from galaxyml.export.screenshot import CHROMIUM_ARGS, app_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def _browser_page(sync_api):
    """A page of a headless Debian Chromium, closed with its browser afterwards."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.fixture
def server(quick_home, tmp_path):
    """A freshly started app over the quick atlas: (base URL, server log)."""
    log = tmp_path / "streamlit.log"
    with app_server(quick_home, log=log) as url:
        yield url, log


def test_deep_link_on_a_fresh_server_shows_the_full_page(server, quick_home, tmp_path, sync_api):
    url, log_path = server
    fs = Atlas.open(quick_home / "quick").feature_set("sae")
    feature = int(fs.stats.sort_values("density", ascending=False)["feature"].iloc[1])
    n_top = len(fs.top(feature)[0])
    with _browser_page(sync_api) as page:
        page.goto(f"{url}/atlas?feature={feature}", wait_until="domcontentloaded")
        page.get_by_text(f"Top {n_top} galaxies").wait_for(timeout=60_000)
        page.locator('[data-testid="stImageContainer"]').first.wait_for(timeout=30_000)
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Galaxy Feature Atlas").is_visible()
        assert sidebar.get_by_text("Precompute").is_visible()
        page.wait_for_function(  # the grid streams in: wait until every top galaxy is drawn
            f"document.querySelectorAll('[data-testid=\"stImageContainer\"]').length >= {n_top}", timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        assert f"feature={feature}" in page.url
        page.screenshot(path=str(tmp_path / "atlas.png"), full_page=True)
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log[-2000:]


def _hover_first_point(page) -> str:
    """Move the mouse onto a point of the explore map; returns the galaxy id plotly's hover label shows."""
    gd = page.locator(".st-key-explore_map .js-plotly-plot")
    gd.wait_for(timeout=60_000)
    page.wait_for_function("(() => { const gd = document.querySelector('.st-key-explore_map .js-plotly-plot');"
                           " return gd && gd._fullLayout && gd.calcdata && gd.calcdata.length > 0; })()", timeout=60_000)
    box = page.locator(".st-key-explore_map .js-plotly-plot .nsewdrag").first.bounding_box()
    # sweep the plot area until plotly shows a hover label (points are wherever UMAP put them)
    for fy in (0.5, 0.35, 0.65, 0.2, 0.8):
        for fx in [i / 24 for i in range(2, 23)]:
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            label = page.locator(".hoverlayer .hovertext")
            if label.count():
                text = (label.first.text_content() or "").strip()
                if text.startswith("galaxy "):
                    return text.removeprefix("galaxy ")
    raise AssertionError("no point of the map could be hovered")


def test_explore_map_shows_the_hovered_galaxy_and_answers_a_lasso(server, quick_home, tmp_path, sync_api):
    url, log_path = server
    with _browser_page(sync_api) as page:
        page.goto(f"{url}/explore?colour=log_mstar", wait_until="domcontentloaded")
        page.get_by_text("Map quality on").wait_for(timeout=90_000)
        galaxy = _hover_first_point(page)
        panel = page.locator('[data-testid="stImageCaption"]', has_text=f"galaxy {galaxy}")
        panel.wait_for(timeout=20_000)  # the thumbnail of the hovered galaxy beside the map
        assert page.locator('[data-testid="stImage"] img').count() >= 1
        page.mouse.down()  # a click on the hovered galaxy opens it
        page.mouse.up()
        page.get_by_role("heading", name=f"Galaxy {galaxy}").wait_for(timeout=30_000)
        box = page.locator(".st-key-explore_map .js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
        page.mouse.move(x0 + 0.02 * w, y0 + 0.02 * h)  # a lasso around the whole plot area selects every point
        page.mouse.down()
        for fx, fy in ((0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.03)):
            page.mouse.move(x0 + fx * w, y0 + fy * h, steps=8)
        page.mouse.up()
        page.get_by_text("drawn on the map").wait_for(timeout=30_000)
        n = len(Atlas.open(quick_home / "quick").catalog())
        assert page.get_by_text(f"Selection: {n:,} galaxies").count() == 1
        page.get_by_text("Enriched sparse features").click()
        page.get_by_text("One-sided hypergeometric test").wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "colour=log_mstar" in page.url
        page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    assert "Traceback" not in log_path.read_text()


def test_search_by_an_uploaded_fits_cutout_finds_its_galaxy(server, quick_home, tmp_path, sync_api):
    url, log_path = server
    import numpy as np
    from astropy.io import fits

    atlas = Atlas.open(quick_home / "quick")
    g = int(atlas.split().test[3])
    galaxy = atlas.catalog()["galaxy_id"].iloc[g]
    cutout = tmp_path / "cutout.fits"
    fits.PrimaryHDU(np.asarray(atlas.survey().images[g])).writeto(cutout)
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    with _browser_page(sync_api) as page:
        page.goto(f"{url}/search?by=image", wait_until="domcontentloaded")
        chooser = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
        chooser.wait_for(state="attached", timeout=60_000)
        chooser.set_input_files(str(tmp_path / "notes.png"))
        page.get_by_text("notes.png is not a readable image").wait_for(timeout=30_000)
        chooser.set_input_files(str(cutout))
        page.get_by_text("as the network sees it").wait_for(timeout=60_000)
        first = page.locator('[data-testid="stImageContainer"]').nth(1)  # the first result after the query
        first.wait_for(timeout=30_000)
        assert galaxy in page.locator('[data-testid="stImage"]').nth(1).inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "search_upload.png"), full_page=True)
    assert "Traceback" not in log_path.read_text()


def test_forge_samples_stars_for_an_uploaded_cutout(server, quick_home, tmp_path, sync_api):
    url, log_path = server
    import numpy as np
    from astropy.io import fits

    atlas = Atlas.open(quick_home / "quick")
    cutout = tmp_path / "cutout.fits"
    fits.PrimaryHDU(np.asarray(atlas.survey().images[int(atlas.split().test[0])])).writeto(cutout)
    with _browser_page(sync_api) as page:
        page.goto(f"{url}/forge?source=image&flow=maf", wait_until="domcontentloaded")
        chooser = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
        chooser.wait_for(state="attached", timeout=60_000)
        chooser.set_input_files(str(cutout))
        page.get_by_text("for the uploaded image's latent").wait_for(timeout=60_000)
        page.get_by_role("tab", name="Autoencoder").click()
        page.get_by_text("reconstruction").first.wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "source=image" in page.url and "galaxy=" not in page.url
        page.screenshot(path=str(tmp_path / "forge_upload.png"), full_page=True)
    assert "Traceback" not in log_path.read_text()
