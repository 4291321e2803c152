"""Time to first render of every page, and of a feature switch, in a real browser (Debian chromium).

Starts the app on a free local port over an atlas home, opens each page in headless Chromium and
times from navigation to a settled view (the script has finished, every plotly figure is drawn, every
image loaded; see ``galaxyml.export.screenshot``). Each page is opened twice: ``first`` is its first
visit after the server started (cold caches), ``again`` a second visit (warm caches). The feature
switch picks the next feature in the atlas page's picker and times until the view has settled again.
Goals: first render < 1 s, switch < 300 ms (printed, not asserted).

    python bench/pages.py                           # the demo atlas under ./runs
    python bench/pages.py --home /tmp/qh --run quick
    python bench/pages.py --screenshot-cli          # also the screenshot CLI from a cold start
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from galaxyml.export.screenshot import CHROMIUM_ARGS, SETTLED_JS, app_server  # noqa: E402

PAGES = ("", "atlas", "compare", "predictions", "explore", "search", "forge", "clusters")


def settle_time(page, action, timeout_s: float = 120.0) -> float:
    """Seconds from ``action()`` to a settled view (a rerun must have started first, if one comes)."""
    t0 = time.perf_counter()
    action()
    try:  # a rerun starts within a moment of the action; a navigation starts with a fresh app
        page.wait_for_function("() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
                               " return !a || a.getAttribute('data-test-script-state') !== 'notRunning'; }",
                               timeout=1500, polling=10)
    except Exception:  # noqa: BLE001 - nothing reran: the view was already settled
        pass
    page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000, polling=20)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=ROOT / "runs", help="atlas home (default ./runs)")
    ap.add_argument("--run", default="demo", help="atlas to open (default demo)")
    ap.add_argument("--screenshot-cli", action="store_true", help="also time the screenshot CLI from a cold start")
    args = ap.parse_args()
    if not (args.home / args.run / "manifest.json").exists():
        sys.exit(f"no atlas {args.run} under {args.home}: build it with python -m precompute --preset {args.run}")
    from playwright.sync_api import sync_playwright

    rows = []
    with app_server(args.home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in PAGES:
            link = f"{url}/{name}?run={args.run}"
            first = settle_time(page, lambda: page.goto(link, wait_until="commit"))
            again = settle_time(page, lambda: page.goto(link, wait_until="commit"))
            rows.append((name or "home", first, again))
        page.goto(f"{url}/atlas?run={args.run}&model=sae", wait_until="commit")
        page.wait_for_function(SETTLED_JS, timeout=120_000)
        switches = []
        for _ in range(5):
            picker = page.locator('[data-testid="stSelectbox"]').filter(has_text="Feature (").locator("input")

            def switch():
                picker.click()
                page.keyboard.press("ArrowDown")
                page.keyboard.press("Enter")
            switches.append(settle_time(page, switch))
        browser.close()
    print(f"atlas {args.run} under {args.home}; {shutil.which('chromium')}; times to a settled view [s]")
    print(f"{'page':<12} {'first':>7} {'again':>7}")
    for name, first, again in rows:
        print(f"{name:<12} {first:7.2f} {again:7.2f}")
    print(f"feature switch on the atlas page: median {sorted(switches)[2] * 1000:.0f} ms "
          f"(of 5: {', '.join(f'{s * 1000:.0f}' for s in switches)}); goals: first render < 1 s, switch < 300 ms")
    if args.screenshot_cli:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "galaxyml.export", f"atlas?run={args.run}&model=sae", "-o",
                        "/tmp/bench_pages_cli.png", "--home", str(args.home), "--element", "Top"], check=True,
                       cwd=ROOT)
        print(f"screenshot CLI (server start, browser, settle, write) from a cold start: "
              f"{time.perf_counter() - t0:.1f} s (goal < 15 s)")


if __name__ == "__main__":
    main()
