"""Cluster detection speed: sky tiles per second through the CenterNet detector of an atlas's
``clusters`` stage (stretching, the network and peak decoding) on this machine's CPU threads, beside the
red-sequence finder on the same tiles' galaxy catalogue (the baseline), and the held-out figures the
stage recorded.

    python bench/clusters.py                 # the demo atlas in ./runs
    python bench/clusters.py --run quick --tiles 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from galaxyml.atlas import Atlas, home  # noqa: E402
from galaxyml.clusters.prep import stretch_tiles  # noqa: E402
from galaxyml.clusters.redsequence import RedSequence, Z_GRID, detect  # noqa: E402
from galaxyml.models.clusters import decode_detections, load_detector  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="demo")
    p.add_argument("--tiles", type=int, default=500, help="tiles to time (cycled through the atlas's tiles)")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    atlas = Atlas.open(home() / args.run)
    cfg = atlas.load_json("clusters", "config.json")
    fields = atlas.load_npy("cluster_fields", "fields.npy")
    tiles = np.resize(np.arange(len(fields)), args.tiles)
    model = load_detector(atlas.stage_dir("clusters") / "detector.safetensors", cfg["detector_width"])
    print(f"cluster detection, run '{args.run}', {args.tiles} tiles of {fields.shape[-1]} px, "
          f"{torch.get_num_threads()} CPU threads")
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tiles), args.batch):
            x = stretch_tiles(fields[tiles[i:i + args.batch]], cfg["model_px"])
            decode_detections(model(torch.as_tensor(x)), model.stride)
    det_s = time.perf_counter() - t0
    print(f"{'method':<34}{'tiles/s':>10}{'ms/tile':>10}")
    print(f"{'CenterNet detector':<34}{len(tiles) / det_s:>10.1f}{1000 * det_s / len(tiles):>10.2f}")
    if atlas.has_file("cluster_fields", "galaxies.parquet") and atlas.has_file("clusters", "red_sequence.json"):
        rs_file = atlas.load_json("clusters", "red_sequence.json")
        rs = RedSequence(np.array(rs_file["gr"]), np.array(rs_file["rz"]), rs_file["s_gr"], rs_file["s_rz"],
                         np.array(rs_file["richness"]), np.array(rs_file["background"]))
        gal = atlas.load_table("cluster_fields", "galaxies.parquet")
        groups = {t: g for t, g in gal.groupby("tile")}
        scale = float(atlas.load_table("cluster_fields", "tiles.parquet")["pixel_scale_arcsec"].iloc[0])
        n = min(len(tiles), 100)
        t0 = time.perf_counter()
        for t in tiles[:n]:
            detect(rs, groups.get(int(t), gal.iloc[:0]), fields.shape[-1], scale)
        rs_s = (time.perf_counter() - t0) / n
        print(f"{'red-sequence finder (baseline)':<34}{1 / rs_s:>10.1f}{1000 * rs_s:>10.2f}"
              f"   ({len(Z_GRID)} trial redshifts; the detector is {rs_s / (det_s / len(tiles)):.1f}x faster)")
        fused_s = det_s / len(tiles) + rs_s  # both finders run; the logistic re-scoring of a few candidates is free
        print(f"{'detector + red sequence (fused)':<34}{1 / fused_s:>10.1f}{1000 * fused_s:>10.2f}")
    m = atlas.metrics("clusters")
    print("\nheld-out detection, test tiles, clusters with lambda >= 20 (thresholds chosen on validation tiles):")
    print(f"{'method':<34}{'completeness':>14}{'purity':>10}")
    for key, name in (("detector", "CenterNet detector"), ("catalogue", "catalogue MLP"),
                      ("red_sequence", "red-sequence finder (baseline)"), ("fused", "detector + red sequence (fused)")):
        if f"{key}_completeness_l20" in m:
            print(f"{name:<34}{m[f'{key}_completeness_l20']:>14.3f}{m[f'{key}_purity_l20']:>10.3f}")
    print("\nheld-out figures of the stage (test tiles):")
    print(json.dumps({k: m[k] for k in ("best_detector", "completeness_l20", "purity_l20", "classifier_auroc",
                                       "n_test_clusters", "match_arcsec") if k in m}, indent=1))


if __name__ == "__main__":
    main()
