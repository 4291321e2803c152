"""Screenshot of a whole view (or one element of it) as PNG or PDF, with provenance.

The app is opened in headless Chromium through Playwright (the Debian ``chromium`` package), either on
a server this module starts on a free localhost port or on one already running. A view has settled when
the script has finished its run, every plotly figure has drawn its SVG, every image has loaded and no
skeleton placeholder is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from galaxyml.atlas import write_json_atomic
from galaxyml.export.provenance import Provenance, stamp

ROOT = Path(__file__).resolve().parents[2]
"""The project folder (where ``app.py`` is)."""
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  const state = app.getAttribute('data-test-script-state');
  if (state === 'running' || state === 'initial' || state === 'rerunRequested') return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    if (!plot.querySelector('.main-svg')) return false;
  }
  for (const img of document.images) { if (!img.complete) return false; }
  return document.querySelector('[data-testid="stMain"]') !== null;
}"""


class ScreenshotError(RuntimeError):
    """The view could not be opened or captured (no browser, no server, element not found...)."""


def find_chromium() -> str | None:
    """Path of the Chromium executable (``$GALAXYML_CHROMIUM``, else ``chromium`` on the PATH), or None."""
    found = os.environ.get("GALAXYML_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


def chromium() -> str:
    """Path of the Chromium executable; a clear error where there is none."""
    found = find_chromium()
    if found is None:
        raise ScreenshotError("screenshots need Chromium: apt-get install chromium")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(home: Path | None = None, log: Path | None = None, timeout_s: float = 60.0) -> Iterator[str]:
    """``streamlit run app.py`` on a free localhost port (atlas home ``home``, else ``$GALAXYML_HOME``);
    yields its base URL and stops it afterwards."""
    port = free_port()
    env = {**os.environ, **({"GALAXYML_HOME": str(home)} if home else {})}
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ScreenshotError(f"the app exited while starting (code {proc.returncode})"
                                      + (f"; see {log}" if log else ""))
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.time() > deadline:
                    raise ScreenshotError(f"the app did not answer on {url} within {timeout_s:.0f} s") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def wait_settled(page, timeout_s: float = 60.0, quiet_ms: int = 400) -> None:
    """Wait until the view has settled (see the module docstring) and stays so for ``quiet_ms``."""
    deadline = time.time() + timeout_s
    while True:
        page.wait_for_function(SETTLED_JS, timeout=max(1.0, deadline - time.time()) * 1000)
        page.wait_for_timeout(quiet_ms)
        if page.evaluate(SETTLED_JS):
            return
        if time.time() > deadline:
            raise ScreenshotError(f"the view did not settle within {timeout_s:.0f} s")


def view_provenance(url: str, home: Path | None = None) -> Provenance:
    """Provenance of a view: the atlas named by its ``?run=`` (else the first under the home) and every
    stage that atlas has."""
    from galaxyml.atlas import AtlasError, list_runs, read_manifest
    from galaxyml.atlas import home as default_home

    root = Path(home) if home else default_home()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    runs = [r.name for r in list_runs(root)] if root.is_dir() else []
    run = query.get("run", [runs[0] if runs else ""])[0]
    try:
        manifest = read_manifest(root / run) if run else {}
    except AtlasError:
        manifest = {}
    path = urllib.parse.urlsplit(url).path.strip("/") or "home"
    return Provenance.of(run or "unknown", manifest, list(manifest.get("stages", {})), link=url,
                         title=f"Galaxy Feature Atlas · {path}")


@dataclass
class Capture:
    path: Path
    seconds: float
    provenance: Provenance


def capture(url: str, out: Path, element: str | None = None, width: int = 1400, height: int = 1000,
            timeout_s: float = 90.0, home: Path | None = None, link: str | None = None) -> Capture:
    """Open ``url`` in headless Chromium, wait until it has settled and write ``out`` (.png or .pdf): the
    whole view, or the section that the heading or label ``element`` starts. ``link`` is the deep link
    recorded in the provenance (default: ``url``)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf"):
        raise ScreenshotError(f"write a .png or .pdf, not {out.name}")
    t0 = time.time()
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium(), args=list(CHROMIUM_ARGS))
        except PlaywrightError as e:
            raise ScreenshotError(f"could not start Chromium: {e}") from e
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=2)
            try:
                page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
            except PlaywrightError as e:
                raise ScreenshotError(f"could not open {url}: {e.message.splitlines()[0]}") from e
            wait_settled(page, timeout_s)
            if page.locator('[data-testid="stException"]').count():
                raise ScreenshotError(f"the view {url} shows an error; nothing was written")
            data = _grab(page, fmt, element)
        finally:
            browser.close()
    prov = view_provenance(link or url, home)
    if element:
        prov = dataclasses.replace(prov, title=f"{prov.title} · {element}")
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(stamp(data, fmt, prov))
    os.replace(tmp, out)
    write_json_atomic(out.with_suffix(out.suffix + ".json"), prov.as_dict())
    return Capture(out, time.time() - t0, prov)


MAIN_HEIGHT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const inner = main.querySelector('[data-testid="stMainBlockContainer"]') || main.firstElementChild || main;
  return Math.max(main.scrollHeight, inner.getBoundingClientRect().height + 64);
}"""
MAX_HEIGHT_PX = 16000
SECTION_JS = """(node) => {
  const FIGURE = '.js-plotly-plot, [data-testid="stImage"], [data-testid="stDataFrame"], [data-testid="stTable"]';
  let box = node.closest('[data-testid="stElementContainer"]') || node;
  const boxes = [box];
  // a heading, or a paragraph that is all bold (a label such as **Activation histogram**)
  const isHeading = (el) => el.querySelector('h1, h2, h3, h4, h5, h6') !== null ||
    [...el.querySelectorAll('[data-testid="stMarkdownContainer"] > p')].some(
      p => p.children.length === 1 && p.firstElementChild.tagName === 'STRONG' &&
           p.textContent.trim() === p.firstElementChild.textContent.trim());
  if (isHeading(box)) {
    // its section, down to the next heading or label of the same block
    for (let s = box.nextElementSibling; s && !isHeading(s); s = s.nextElementSibling)
      boxes.push(s);
  } else if (!box.querySelector(FIGURE)) {
    // a label: it and the first figure, image or table after it
    for (let s = box.nextElementSibling; s; s = s.nextElementSibling) {
      boxes.push(s);
      if (s.querySelector(FIGURE)) break;
    }
  }
  const rects = boxes.map(b => b.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
  const x0 = Math.min(...rects.map(r => r.left)), y0 = Math.min(...rects.map(r => r.top));
  const x1 = Math.max(...rects.map(r => r.right)), y1 = Math.max(...rects.map(r => r.bottom));
  return {x: Math.max(0, x0 - 8), y: Math.max(0, y0 - 8), width: x1 - x0 + 16, height: y1 - y0 + 16};
}"""


def _find(page, text: str):
    """The first heading of the main area that shows ``text``, else the first label or text that does."""
    main = page.locator('[data-testid="stMain"]')
    for candidates in (main.locator('[data-testid="stHeading"]').filter(has_text=text),
                       main.locator('[data-testid="stWidgetLabel"], [data-testid="stMarkdown"], .gtitle')
                       .filter(has_text=text), main.get_by_text(text, exact=False)):
        if candidates.count():
            return candidates.first
    raise ScreenshotError(f"no element of the view shows the text {text!r}")


def _grab(page, fmt: str, element: str | None) -> bytes:
    """PNG or PDF bytes of the page, or of the section that the heading or text ``element`` starts."""
    import io

    from PIL import Image

    page.add_style_tag(content='[data-testid="stStatusWidget"], [data-testid="stToolbar"], '
                               '[data-testid="stDecoration"] {visibility: hidden !important;}')
    # The app scrolls inside its main block, not the window: grow the window to the whole view first.
    width = page.viewport_size["width"]
    height = page.evaluate(MAIN_HEIGHT_JS)
    if height > page.viewport_size["height"]:
        page.set_viewport_size({"width": width, "height": min(int(height) + 16, MAX_HEIGHT_PX)})
        wait_settled(page, 30)
    if element is None and fmt == "pdf":
        page.emulate_media(media="screen")
        return page.pdf(print_background=True, width=f"{width}px", height=f"{page.viewport_size['height']}px")
    if element is None:
        png = page.screenshot()
    else:
        png = page.screenshot(clip=_find(page, element).evaluate(SECTION_JS))
    if fmt == "png":
        return png
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buf, format="PDF", resolution=144.0)
    return buf.getvalue()
