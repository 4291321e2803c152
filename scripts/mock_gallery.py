"""Export PNGs for a visual check of the mock universe: 64 random galaxies, one row of examples per
structure flag, and one cluster tile with its members circled.

    python scripts/mock_gallery.py --out mock_gallery/ [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from galaxyml.data.mock import MockConfig, draw_catalog, render_images  # noqa: E402
from galaxyml.data.mock.clusters import ClusterFieldConfig, draw_tile, render_tile  # noqa: E402
from galaxyml.data.survey import fluxes_to_rgb  # noqa: E402
from galaxyml.viz.images import gallery_image  # noqa: E402
from galaxyml.viz.survey import flag_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("mock_gallery"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=3000, help="galaxies drawn to pick examples from")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = MockConfig(n_galaxies=args.n, seed=args.seed)
    cat = draw_catalog(cfg)
    rng = np.random.default_rng(args.seed)

    pick = np.sort(rng.choice(len(cat), 64, replace=False))
    rgb = fluxes_to_rgb(render_images(cfg, cat.iloc[pick], first_index=0), cfg.bands)
    Image.fromarray(gallery_image(rgb, [str(i) for i in pick], columns=8)).save(args.out / "random_64.png")

    rows = []
    for flag, idx in flag_examples(cat, per_flag=8, seed=args.seed).items():
        rgb = fluxes_to_rgb(render_images(cfg, cat.iloc[idx], first_index=0), cfg.bands)
        rows.append(gallery_image(rgb, [flag] * len(idx), columns=8))
    width = max(r.shape[1] for r in rows)
    stacked = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    Image.fromarray(stacked).save(args.out / "flags.png")

    ccfg = ClusterFieldConfig(seed=args.seed, empty_fraction=0.0)
    record, galaxies = draw_tile(ccfg, 0)
    tile = Image.fromarray(fluxes_to_rgb(render_tile(ccfg, galaxies, 0)[None], ("g", "r", "z"), stretch=0.3)[0])
    draw = ImageDraw.Draw(tile)
    for g in galaxies[galaxies["is_member"] == 1].itertuples():
        r = 8 if g.is_bcg else 5
        draw.ellipse((g.x_px - r, g.y_px - r, g.x_px + r, g.y_px + r), outline=(255, 80, 80) if g.is_bcg else (120, 200, 255))
    draw.text((6, 6), f"z = {record['z']:.3f}, lambda = {record['richness']:.0f}, mock", fill=(255, 255, 255))
    tile.save(args.out / "cluster_tile.png")
    print(f"wrote {args.out / 'random_64.png'}, {args.out / 'flags.png'}, {args.out / 'cluster_tile.png'}")


if __name__ == "__main__":
    main()
