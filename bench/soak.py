"""Browser soak: many page views across every page and deep link against one atlas, in headless
Chromium (Playwright), watching the server's memory and the pages' error elements.

    python bench/soak.py --home runs --run demo            # 200 views
    python bench/soak.py --home /tmp/h --run quick --views 60

Each view opens a URL (a page, with deep-link parameters drawn at random: models, features, galaxies,
properties, targets, searches by galaxy, position and examples, map selections, and some unknown values), waits until the app has finished running and drawn its
figures, and counts exception and error elements. The server's resident memory (RSS, from /proc) is
read after every view; the figure is its growth from view 20 (caches warm) to the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from galaxyml.atlas import Atlas  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def urls(atlas: Atlas, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` page URLs with deep links drawn from what the atlas holds (and a few unknown values)."""
    run = atlas.name
    ids = atlas.catalog()["galaxy_id"].to_numpy()
    models = atlas.feature_models()
    sfnets = [m for m in ("sfnet_metallicity", "sfnet_bpt") if atlas.ready(m)]
    props = list(atlas.feature_set(models[0]).rho.columns) if atlas.feature_set(models[0]).rho is not None else []

    spaces = atlas.search_spaces()
    maps = atlas.map_spaces()
    numeric = [c for c in ("z", "log_mstar", "oh_12", "g_r") if c in atlas.catalog()]

    def one() -> str:
        kind = rng.integers(9)
        g = str(rng.choice(ids))
        if kind == 8 and maps:
            colour = str(rng.choice(numeric)) if numeric and rng.random() > 0.3 else "sae:3"
            picked = ",".join(rng.choice(ids, int(rng.integers(1, 40)), replace=False))
            return f"/explore?run={run}&space={rng.choice(maps)}&colour={colour}&ids={picked}"
        if kind == 6 and spaces:
            return f"/search?run={run}&space={rng.choice(spaces)}&galaxy={g if rng.random() > 0.1 else 'nosuch'}"
        if kind == 7 and spaces:
            if rng.random() < 0.5 and "ra" in atlas.catalog():
                row = atlas.catalog().iloc[int(rng.integers(len(ids)))]
                return f"/search?run={run}&by=position&ra={row['ra']:.5f}&dec={row['dec']:.5f}"
            pos, neg = rng.choice(ids, 4, replace=False), rng.choice(ids, 4, replace=False)
            return f"/search?run={run}&by=examples&positive={','.join(pos)}&negative={','.join(neg[~np.isin(neg, pos)])}"
        if kind == 0:
            return f"/?run={run}"
        if kind in (1, 2):
            m = str(rng.choice(models))
            f = int(rng.integers(atlas.feature_set(m).n_features))
            return f"/atlas?run={run}&model={m}&feature={f}"
        if kind == 3:
            p = str(rng.choice(props)) if props and rng.random() > 0.1 else "nosuch"
            return f"/compare?run={run}&property={p}&galaxy={g}"
        if kind == 4 and sfnets:
            m = str(rng.choice(sfnets))
            return f"/predictions?run={run}&model={m}&galaxy={g if rng.random() > 0.1 else 'nosuch'}"
        return f"/atlas?run={run}&feature={'abc' if rng.random() < 0.5 else 10 ** 6}"

    return [one() for _ in range(n)]


STATE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return [app ? app.getAttribute('data-test-script-state') : 'none',
          !!document.querySelector('[data-testid="stMain"] h1'),
          document.querySelectorAll('[data-stale="true"]').length,
          document.querySelectorAll('[data-testid="stElementContainer"]').length,
          document.querySelectorAll('.js-plotly-plot').length,
          document.querySelectorAll('img').length].join('|');
}"""
"""The script's state, whether the title is drawn, stale elements (left from an earlier run), and counts of
elements, plotly figures and images."""


def wait_settled(page, timeout_s: float = 120.0, quiet_s: float = 1.0) -> None:
    """Until the script has finished, the title is drawn, nothing stale is left, and nothing has changed for
    ``quiet_s`` (plotly figures are drawn after the script ends)."""
    end, last, since = time.time() + timeout_s, None, time.time()
    while time.time() < end:
        state = page.evaluate(STATE)
        if state != last:
            last, since = state, time.time()
        done = state.startswith("notRunning|true|0|")
        if done and time.time() - since >= quiet_s:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the page did not settle ({last})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=Path, default=Path(os.environ.get("GALAXYML_HOME", "runs")))
    p.add_argument("--run", default="demo")
    p.add_argument("--views", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--screenshots", type=Path, help="save a full-page PNG of every 20th view (and the first) here")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    atlas = Atlas.open(args.home / args.run)
    plan = urls(atlas, args.views, np.random.default_rng(args.seed))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT,
                              env={**os.environ, "GALAXYML_HOME": str(args.home.absolute())}, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        rss, errors, seconds = [], [], []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for i, url in enumerate(plan, 1):
                t0 = time.time()
                page.goto(base + url, wait_until="domcontentloaded")
                wait_settled(page)
                seconds.append(time.time() - t0)
                n_err = page.locator(ERRORS).count()
                if n_err:
                    errors.append((url, page.locator(ERRORS).first.inner_text()[:200]))
                rss.append(rss_mb(server.pid))
                if args.screenshots and (i == 1 or i % 20 == 0):
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshots / f"view{i:04d}.png"), full_page=True)
                if i % 20 == 0:
                    print(f"  view {i:>4}: RSS {rss[-1]:.0f} MB, median {np.median(seconds[-20:]):.1f} s per view",
                          flush=True)
            browser.close()
        traceback = "Traceback" in Path(log.name).read_text()
        start = rss[min(19, len(rss) - 1)]
        print(f"soak: {len(plan)} views of atlas '{args.run}' ({atlas.manifest['stages']['survey']['metrics']['n_galaxies']:,} "
              f"galaxies); server RSS {rss[0]:.0f} MB after view 1, {start:.0f} MB after view 20, {rss[-1]:.0f} MB "
              f"at the end: growth {100 * (rss[-1] - start) / start:+.1f}% after view 20; "
              f"{len(errors)} views with error elements; median {np.median(seconds):.1f} s per view; "
              f"server traceback: {'yes' if traceback else 'no'}")
        for url, text in errors[:10]:
            print("  error on", url, ":", text)
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.unlink(log.name)


if __name__ == "__main__":
    main()
