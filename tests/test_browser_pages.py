"""Every page in a real browser (Debian chromium through Playwright) against the quick atlas: each page and
its deep links render with no error element and no browser console error, a link naming something the
atlas lacks says so, exports download with their provenance, the screenshot CLI writes a view, and the
sidebar's precompute control starts, follows and cancels a build.

Screenshots of every view go to ``$GALAXYML_SCREENSHOTS`` when it is set (else the test's tmp folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from galaxyml.atlas import Atlas
from galaxyml.export import read_provenance
from galaxyml.export.screenshot import CHROMIUM_ARGS, app_server, wait_settled

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser
STATUS_CONSOLE = "the server responded with a status of"
"""Console text of a failed response; the response itself is checked instead (see ``browser_page``)."""
STREAMLIT_PROBE = re.compile(r"/[^/]+/_stcore/(health|host-config)$")
"""Opened on ``/<page>``, Streamlit's front end first asks ``/<page>/_stcore/...`` in case the app is
served under that base path, gets a 404 and then asks ``/_stcore/...``: its own probe, not an error."""


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("GALAXYML_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def app(quick_home, tmp_path_factory):
    """The app on a free port over the quick atlas: (base URL, server log)."""
    log = tmp_path_factory.mktemp("app") / "streamlit.log"
    with app_server(quick_home, log=log) as url:
        yield url, log


@contextlib.contextmanager
def browser_page(sync_api, errors: list[str]):
    """A headless chromium page that records console errors and uncaught page errors into ``errors``."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
                    and STATUS_CONSOLE not in m.text else None)
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
                    and not STREAMLIT_PROBE.search(r.url.split("?")[0]) else None)
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page
        finally:
            browser.close()


def _deep_links(atlas: Atlas) -> dict[str, list[tuple[str, tuple[str, ...], int]]]:
    """Per page, the deep links a person would share (the first one is the bare page), each with texts the
    view must show and the least number of figures it must draw."""
    cat = atlas.catalog()
    test = atlas.split().test
    g = str(cat["galaxy_id"].iloc[int(test[0])])
    fs = atlas.feature_set("sae")
    feature = int(fs.stats.sort_values("density", ascending=False)["feature"].iloc[1])
    top, _ = fs.top(feature)
    tiles = atlas.load_table("clusters", "tiles.parquet")
    tile = int(tiles[(tiles["split"] == "test") & (tiles["has_cluster"] == 1)]["tile"].iloc[0])
    ids = ",".join(cat["galaxy_id"].iloc[[int(t) for t in test[:5]]])
    return {
        "": [("", ("Atlas · quick", "Stages"), 0),
             ("?survey=1&property=log_mstar", ("Property histogram",), 2)],
        "atlas": [("atlas", ("Top ",), 2),
                  (f"atlas?model=sae&feature={feature}&galaxy={cat['galaxy_id'].iloc[int(top[1])]}",
                   (f"Top {len(top)} galaxies", "Galaxy drill-down", "features fire on this galaxy"), 2),
                  ("atlas?model=matryoshka&feature=3&examples=1", ("Matryoshka group",), 1)],
        "compare": [("compare", ("Sparsity and fidelity",), 5),
                    (f"compare?property=oh_12&galaxy={g}", ("One galaxy through each model", g), 6)],
        "predictions": [("predictions", ("Worst outliers",), 3),
                        (f"predictions?model=sfnet_bpt&target=o3&galaxy={g}&bpt=true&residuals=z",
                         ("BPT classes", "Linear probes of the embeddings"), 5)],
        "explore": [("explore", ("Map quality on",), 1),
                    (f"explore?space=embeddings&colour=log_mstar&ids={ids}", ("Selection: 5 galaxies",), 4)],
        "search": [("search", ("How well neighbours share a structure",), 0),
                   (f"search?space=codes&by=galaxy&galaxy={g}&k=12", (f"query: {g}",), 0)],
        "forge": [("forge", ("Flows on held-out galaxies",), 1),
                  ("forge?flow=maf&n=4000&seed=2", ("4,000 stars sampled from",), 1)],
        "clusters": [("clusters", ("Every finder on held-out tiles",), 4),
                     (f"clusters?method=red_sequence&tile={tile}", ("Colour–magnitude diagram of the tile",), 5)],
    }


def _visit(page, url: str, errors: list[str], shot: Path, texts: tuple[str, ...] = (), figures: int = 0) -> None:
    page.goto(url, wait_until="domcontentloaded")
    wait_settled(page, timeout_s=90)
    page.screenshot(path=str(shot))
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{url}: {exceptions.first.inner_text()[:500]}"
    alerts = page.locator('[data-testid="stAlertContentError"]')
    assert alerts.count() == 0, f"{url}: {alerts.first.inner_text()[:300]}"
    main = page.locator('[data-testid="stMain"]')
    for text in texts:
        assert main.get_by_text(text).count() >= 1, f"{url}: '{text}' is not shown"
    drawn = page.locator(".js-plotly-plot .main-svg").count()
    assert drawn >= figures, f"{url}: {drawn} figures drawn, expected at least {figures}"
    assert not errors, f"{url}: {errors[:3]}"


def test_every_page_and_its_deep_links_render_without_errors(app, quick_home, tmp_path, sync_api):
    url, log = app
    links = _deep_links(Atlas.open(quick_home / "quick"))
    shots = _shots(tmp_path)
    errors: list[str] = []
    with browser_page(sync_api, errors) as page:
        for name, views in links.items():
            for i, (path, texts, figures) in enumerate(views):
                _visit(page, f"{url}/{path}", errors, shots / f"{name or 'home'}_{i}.png", texts, figures)
                assert page.locator('[data-testid="stSidebar"]').get_by_text("Precompute").is_visible()
                assert "run=quick" in page.url  # every view's link names its atlas
                for part in path.partition("?")[2].split("&"):
                    if part and not part.startswith(("ids=",)):
                        assert part in page.url, f"{part} lost from {page.url}"
        # a page switch keeps the atlas in the link
        page.locator('[data-testid="stSidebar"]').get_by_text("Compare models").click()
        page.wait_for_url("**/compare**")
        wait_settled(page)
        assert "run=quick" in page.url
    assert not errors, errors[:3]
    assert "Traceback" not in log.read_text()


BAD_LINKS = {  # a link, and the messages its view must show
    "atlas?model=matryoshka&feature=99999": ("?feature=99999 is not a feature",),
    "predictions?model=sfnet_nope&residuals=nope": ("?model=sfnet_nope is not", "?residuals=nope is not"),
    "explore?colour=nope&ids=nobody": ("?colour=nope is not", "?ids= names 1 galaxies not in this atlas"),
    "forge?flow=nope&n=lots": ("?flow=nope is not", "?n=lots is not a whole number"),
    "clusters?tile=99999&method=nope": ("?method=nope is not", "?tile=99999 is not"),
    "compare?property=nope&run=nope": ("?run=nope is not an atlas", "?property=nope is not"),
}


def test_a_link_to_something_the_atlas_lacks_says_so_and_links_home(app, tmp_path, sync_api):
    url, log = app
    errors: list[str] = []
    with browser_page(sync_api, errors) as page:
        for path, messages in BAD_LINKS.items():
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            wait_settled(page, timeout_s=90)
            for message in messages:
                warning = page.locator('[data-testid="stAlertContentWarning"]', has_text=message)
                assert warning.count() >= 1, f"{path}: no warning '{message}'"
                if "run=" not in message:
                    assert warning.first.get_by_role("link", name="Open the home page").count() == 1
            assert page.locator('[data-testid="stException"]').count() == 0, path
    assert not errors, errors[:3]
    assert "Traceback" not in log.read_text()


def _download(page, popover: str, button: str, nth: int = 0, fmt: str | None = None) -> bytes:
    """Open the ``nth`` popover labelled ``popover``, choose ``fmt``, click ``button``; the file's bytes."""
    page.get_by_role("button", name=popover).nth(nth).click()
    panel = page.locator('[data-testid="stPopoverBody"]').last
    panel.wait_for()
    if fmt:
        panel.get_by_role("radio", name=fmt, exact=True).click()
        wait_settled(page)
        panel = page.locator('[data-testid="stPopoverBody"]').last
    with page.expect_download(timeout=60_000) as info:
        panel.get_by_role("button", name=button).click()
    data = Path(info.value.path()).read_bytes()
    page.keyboard.press("Escape")
    return data


def test_exports_download_with_their_provenance(app, quick_home, tmp_path, sync_api):
    url, log = app
    atlas = Atlas.open(quick_home / "quick")
    errors: list[str] = []
    with browser_page(sync_api, errors) as page:
        page.goto(f"{url}/atlas?model=sae&feature=5", wait_until="domcontentloaded")
        wait_settled(page, timeout_s=90)
        for popover, fmt, ext in (("Export gallery", "PDF", "pdf"), ("Export table", "FITS", "fits"),
                                  ("Export figure", "SVG", "svg"), ("Export figure", "PDF", "pdf")):
            data = _download(page, popover, f"Download {fmt}", fmt=fmt)
            record = read_provenance(data, ext)
            assert record["atlas"] == "quick" and record["manifest_sha256"] == atlas.manifest["sha256"]
            assert record["stages"]["sae"]["hash"] == atlas.manifest["stages"]["sae"]["hash"]
            assert "feature=5" in record["link"] and "run=quick" in record["link"]
        png = _download(page, "Export figure", "Download PNG", nth=1)
        assert read_provenance(png, "png")["title"].startswith("feature 5: property correlations")
        sidecar = json.loads(_download(page, "Export figure", "Provenance (JSON)"))
        assert sidecar["stages"]["features"]["hash"] == atlas.manifest["stages"]["features"]["hash"]
        # the whole view, from the sidebar
        page.get_by_role("button", name="Screenshot this view").click()
        body = page.locator('[data-testid="stPopoverBody"]').last
        body.get_by_role("button", name="Take screenshot").click()
        with page.expect_download(timeout=120_000) as info:
            body.get_by_role("button", name="Download PNG").click(timeout=120_000)
        shot = Path(info.value.path()).read_bytes()
        assert "feature=5" in read_provenance(shot, "png")["link"]
    assert not errors, errors[:3]
    assert "Traceback" not in log.read_text()


def test_the_screenshot_cli_writes_a_view_with_its_provenance(app, quick_home, tmp_path, sync_api):
    out = _shots(tmp_path) / "cli_top_galaxies.png"
    t0 = time.time()
    done = subprocess.run([sys.executable, "-m", "galaxyml.export", "atlas?run=quick&model=sae&feature=5", "-o", str(out),
                           "--home", str(quick_home), "--element", "Top 30 galaxies"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"screenshot CLI: {time.time() - t0:.1f} s from a cold start")
    from PIL import Image

    im = Image.open(out)
    assert 400 < im.height < im.width  # one section, not the whole page
    record = read_provenance(out.read_bytes(), "png")
    assert record["link"] == "/atlas?run=quick&model=sae&feature=5" and record["title"].endswith("Top 30 galaxies")
    assert json.loads(out.with_suffix(".png.json").read_text())["atlas"] == "quick"
    url, _ = app  # a running app, by its URL
    missing = subprocess.run([sys.executable, "-m", "galaxyml.export", f"{url}/atlas?run=quick", "-o",
                              str(tmp_path / "x.png"), "--home", str(quick_home), "--element", "No such heading"],
                             cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert missing.returncode == 2 and "No such heading" in missing.stderr and not (tmp_path / "x.png").exists()


def test_the_sidebar_starts_follows_and_cancels_a_build(quick_copy, tmp_path, sync_api):
    from precompute.jobs import build_status, cancel_build

    errors: list[str] = []
    try:
        with app_server(quick_copy, log=tmp_path / "streamlit.log") as url, browser_page(sync_api, errors) as page:
            page.goto(url, wait_until="domcontentloaded")
            wait_settled(page, timeout_s=90)
            side = page.locator('[data-testid="stSidebar"]')
            side.get_by_role("textbox", name="Run name").fill("trial")
            side.get_by_role("button", name="Start build").click()
            side.get_by_role("button", name="Cancel build").wait_for(timeout=60_000)  # the new run is followed
            assert "run=trial" in page.url
            side.locator('[data-testid="stProgress"]').first.wait_for(timeout=30_000)
            side.get_by_role("button", name="Cancel build").click()
            side.get_by_text("Build cancelled").wait_for(timeout=90_000)
            page.screenshot(path=str(_shots(tmp_path) / "sidebar_cancelled.png"))
        assert build_status(quick_copy / "trial").state == "cancelled"
        assert "Traceback" not in (tmp_path / "streamlit.log").read_text()
    finally:
        cancel_build(quick_copy / "trial")  # never leave a build running behind a failed test
    assert not errors, errors[:3]
