"""The explore page at survey scale, in a real browser (Debian chromium + Playwright): seconds from
opening the page to a drawn map of N galaxies, and from releasing a lasso to the selection's gallery,
property comparison and enrichment being on the page.

The atlas is a mock survey of N galaxies (small 32-pixel cutouts, to keep its build short) whose
embeddings are synthetic manifold vectors (``bench/search.py``'s generator, 64-D) read through the
``embeddings.source = file`` path, mapped by the ``umap`` stage; the TopK SAE is left out (the
enrichment tab then says so), since training it is not what is measured.

    python bench/explore.py                  # 100,000 galaxies (builds ~5 min on 2 cores, kept in bench/out)
    python bench/explore.py --n 20000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from galaxyml.atlas import Atlas, AtlasError  # noqa: E402
from search import manifold_vectors  # noqa: E402


def build(home: Path, run: str, n: int) -> float:
    """Build the survey, thumbnails and map of ``run`` (reusing what exists); returns seconds."""
    t0 = time.perf_counter()
    common = [sys.executable, "-m", "precompute", "--home", str(home), "--run", run, "--preset", "quick", "--quiet",
              "--set", f"survey.n_galaxies={n}", "--set", "survey.image_size_px=32"]
    subprocess.run([*common, "--only", "thumbnails"], check=True, cwd=ROOT)
    ids = Atlas.open(home / run).catalog()["galaxy_id"].astype(str).to_numpy()
    emb = home / f"{run}_embeddings.npy"
    if not emb.exists():
        np.save(emb, manifold_vectors(len(ids), 64), allow_pickle=False)
        emb.with_suffix(".ids.txt").write_text("\n".join(ids) + "\n")
    subprocess.run([*common, "--set", "embeddings.source=file", "--set", f"embeddings.path={emb}",
                    "--only", "umap", "--skip", "sae"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def serve(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env={**os.environ, "GALAXYML_HOME": str(home)},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"streamlit did not start: {log.read_text()[-2000:]}")


def lasso(page, fractions) -> None:
    box = page.locator(".st-key-explore_map .js-plotly-plot .nsewdrag").first.bounding_box()
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in fractions]
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:] + points[:1]:
        page.mouse.move(*p, steps=4)
    page.mouse.up()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="galaxies (default 100,000)")
    p.add_argument("--home", type=Path, default=ROOT / "bench" / "out" / "explore", help="where the atlas is kept")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    run = f"map{args.n}"
    args.home.mkdir(parents=True, exist_ok=True)
    try:
        atlas = Atlas.open(args.home / run)
        ready = atlas.ready("umap")
    except AtlasError:
        ready = False
    if not ready:
        print(f"building a {args.n:,}-galaxy atlas with a map in {args.home / run} ...", flush=True)
        print(f"built in {build(args.home, run, args.n):.0f} s", flush=True)
    umap_s = Atlas.open(args.home / run).manifest["stages"]["umap"]["seconds"]
    proc, url = serve(args.home, args.home / "streamlit.log")
    shapes = [((0.05, 0.05), (0.5, 0.05), (0.5, 0.5), (0.05, 0.5)), ((0.4, 0.3), (0.9, 0.4), (0.7, 0.9)),
              ((0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98))]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless=new", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            draws, answers, sizes, heading = [], [], [], []
            for attempt in range(3):
                t0 = time.perf_counter()
                page.goto(f"{url}/explore?run={run}&colour=z", wait_until="domcontentloaded")
                page.wait_for_function(
                    "(n) => { const gd = document.querySelector('.st-key-explore_map .js-plotly-plot');"
                    " return gd && gd._fullData && gd._fullLayout && gd.querySelector('canvas')"
                    " && gd._fullData.reduce((a, t) => a + (t._length || 0), 0) >= n; }",
                    arg=args.n, timeout=180_000)
                draws.append(time.perf_counter() - t0)
                lasso(page, shapes[attempt])
                t0 = time.perf_counter()
                page.get_by_text("drawn on the map").wait_for(timeout=120_000)
                heading.append(time.perf_counter() - t0)
                page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                       timeout=120_000)
                answers.append(time.perf_counter() - t0)
                sizes.append(page.get_by_role("heading", name="Selection:").inner_text())
            browser.close()
    finally:
        proc.terminate()
    print(f"\n{args.n:,} galaxies, umap stage {umap_s:.0f} s; {os.cpu_count()} CPUs")
    for i, (d, a, s) in enumerate(zip(draws, answers, sizes)):
        print(f"visit {i + 1}: map drawn in {d:.2f} s; lasso answered in {a:.2f} s, its heading shown after "
              f"{heading[i]:.2f} s ({s})")
    print(f"median: map drawn {np.median(draws):.2f} s, selection answered {np.median(answers):.2f} s "
          f"(from releasing the lasso to the page settled with gallery, histograms and tables)")


if __name__ == "__main__":
    main()
