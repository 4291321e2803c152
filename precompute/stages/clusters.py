"""Stage ``clusters``: the cluster finders trained on training tiles, thresholds chosen on validation
tiles, every figure scored on test tiles against the truth, beside the red-sequence baseline.

- image classifier (cluster / no cluster), CenterNet detector (centres, boxes, z, lambda);
- catalogue network on the field's galaxy catalogue (where the fields have one: the mock);
- DeepSets and Janossy regressors of z and lambda from the catalogued member sets (where there is a
  members file);
- the red-sequence baseline for detection (galaxy catalogue) and for z and lambda (member sets).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from astropy.wcs import WCS
from safetensors.torch import save_file

from galaxyml.clusters.fuse import Fusion, merge_candidates
from galaxyml.clusters.prep import field_features, member_sets, stretch_tiles
from galaxyml.clusters.redsequence import RedSequence, detect
from galaxyml.clusters.score import (auroc, best_threshold, binned, completeness_purity, match, richness_scatter,
                                     sigma_z)
from galaxyml.clusters.train import predict_sets, train_catalogue, train_classifier, train_detector, train_set
from galaxyml.data.mock.clusters import r_lambda_arcsec
from galaxyml.data.redmapper import read_members
from galaxyml.models.clusters import decode_detections
from precompute.stage import StageContext, StageNotApplicable, register

TILES_FILE = "tiles.parquet"
"""Per tile: split, truth, the classifier's and every detector's tile score."""
DETECTIONS_FILE = "detections.parquet"
"""Validation and test detections of every method: tile, x_px, y_px, ra, dec, score, z, lambda, matched."""
SETS_FILE = "sets.parquet"
"""Per catalogued cluster of the test tiles: z and lambda from each set method, with sigmas."""
CURVES_FILE = "curves.parquet"
"""Completeness and purity per lambda and z bin, per detection method, test tiles."""
SUMMARY_FILE = "summary.json"
"""Every method's test figures in one table, thresholds and the matching radius."""
DETECTION_METHODS = ("detector", "catalogue", "red_sequence", "fused")
SET_METHODS = ("deepsets", "janossy", "red_sequence")


@dataclass(frozen=True)
class ClustersConfig:
    """Splits, sizes and schedules of the cluster finders."""

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    model_px: int = 128
    """Side [pixel] the detector sees (the classifier sees half)."""
    classifier_width: int = 16
    detector_width: int = 12
    classifier_epochs: int = 15
    detector_epochs: int = 25
    catalogue_epochs: int = 150
    set_epochs: int = 150
    batch: int = 32
    detector_batch: int = 8
    """Tiles per detector step: on 360 demo training tiles, 8 reaches completeness / purity 0.81 / 0.81 on the
    test tiles in 25 epochs where 32 (a quarter of the steps) reaches 0.66 / 0.88."""
    lr: float = 3e-3
    max_members: int = 96
    """Members per set (the most probable kept)."""
    match_arcsec: float = 60.0
    """A detection matches a true cluster within this distance of its centre."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ValueError("clusters: val_fraction and test_fraction must be in (0, 1) and sum below 1")
        if self.model_px < 32 or self.model_px % 8:
            raise ValueError(f"clusters.model_px must be a multiple of 8 and >= 32, got {self.model_px}")
        if min(self.classifier_epochs, self.detector_epochs, self.catalogue_epochs, self.set_epochs) < 1:
            raise ValueError("clusters: every *_epochs must be >= 1")


def _split(n: int, cfg: ClustersConfig) -> np.ndarray:
    order = np.random.default_rng([cfg.seed, 22]).permutation(n)
    n_test, n_val = max(1, round(cfg.test_fraction * n)), max(1, round(cfg.val_fraction * n))
    split = np.full(n, "train", dtype=object)
    split[order[:n_test]], split[order[n_test:n_test + n_val]] = "test", "val"
    return split


def _sky(tiles: pd.DataFrame, det: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ra, dec = np.full(len(det), np.nan), np.full(len(det), np.nan)
    for t, rows in det.groupby("tile").groups.items():
        w = WCS(json.loads(tiles.loc[t, "wcs"]))
        pos = det.index.get_indexer(rows)
        ra[pos], dec[pos] = w.wcs_pix2world(det.loc[rows, "x_px"].to_numpy(), det.loc[rows, "y_px"].to_numpy(), 0)
    return ra, dec


def _rows(method: str, tiles: np.ndarray, found: list[np.ndarray], f: float = 1.0) -> pd.DataFrame:
    """Detections (x, y, half, score, z, log lambda) per tile as table rows; ``f`` = field px / model px."""
    rows = [(method, t, (d[0] + 0.5) * f - 0.5, (d[1] + 0.5) * f - 0.5, d[2] * f, d[3], d[4], 10 ** d[5])
            for t, ds in zip(tiles, found) for d in ds]
    table = pd.DataFrame(rows, columns=["method", "tile", "x_px", "y_px", "half_size_px", "score", "z", "lambda"])
    return table.astype({"tile": np.int64, **{c: np.float64 for c in table.columns[2:]}})


def _score_detections(det: pd.DataFrame, truth: pd.DataFrame, split: pd.Series, scale_of: dict, cfg,
                      methods: list[str]) -> tuple:
    """Matched detections, the threshold (validation), test completeness / purity overall and binned."""
    det = det.copy()
    det["split"] = det["tile"].map(split)
    out, summary, curves = [], {}, []
    for method in methods:
        d = det[det["method"] == method]
        m = {s: match(d[d["split"] == s], truth[truth["split"] == s], cfg.match_arcsec, scale_of) for s in ("val", "test")}
        thr = best_threshold(m["val"], truth[truth["split"] == "val"])
        t_test = truth[truth["split"] == "test"]
        comp, pur = completeness_purity(m["test"], t_test, thr)
        l20 = t_test[t_test["richness"] >= 20]
        c20, _ = completeness_purity(m["test"], l20, thr)
        kept = m["test"][m["test"]["score"] >= thr]
        # Purity at lambda >= 20: detections of clusters below the cut (a real catalogue has them) are not
        # counted against it; unmatched detections are.
        small = set(t_test.index[t_test["richness"] < 20])
        p20_d = kept[~kept["matched"].isin(small)]
        p20 = float((p20_d["matched"] >= 0).mean()) if len(p20_d) else float("nan")
        hits = m["test"][(m["test"]["matched"] >= 0) & (m["test"]["score"] >= thr)]
        z_true = truth.loc[hits["matched"], "z"].to_numpy()
        summary[method] = {"threshold": thr, "completeness": comp, "purity": pur, "completeness_l20": c20,
                           "purity_l20": p20, "n_test_clusters": int(len(t_test)), "n_test_detections": int(len(kept)),
                           "median_offset_arcsec": float(hits["sep_arcsec"].median()) if len(hits) else float("nan"),
                           "sigma_z": sigma_z(hits["z"], z_true) if len(hits) else float("nan")}
        curves.append(binned(m["test"], t_test, thr, method))
        for s in ("val", "test"):
            m[s]["above_threshold"] = m[s]["score"] >= thr
            out.append(m[s])
    return pd.concat(out, ignore_index=True), summary, pd.concat(curves, ignore_index=True)


@register("clusters", ClustersConfig, inputs=("cluster_fields",), version=2)
def build_clusters(ctx: StageContext) -> dict:
    """Cluster finders (classifier, CenterNet detector, catalogue network, DeepSets, Janossy) beside the red sequence."""
    cfg: ClustersConfig = ctx.cfg
    src = ctx.inputs["cluster_fields"]
    fields = np.load(src / "fields.npy", mmap_mode="r", allow_pickle=False)
    tiles = pd.read_parquet(src / "tiles.parquet").set_index("tile", drop=False)
    truth = pd.read_parquet(src / "clusters.parquet")
    if len(tiles) < 10:
        raise StageNotApplicable(f"{len(tiles)} tiles: the cluster finders need at least 10 (train, validation, test)")
    tiles["split"] = _split(len(tiles), cfg)
    usable = tiles[tiles["near_cluster"] == 0]
    truth["split"] = truth["tile"].map(tiles["split"])
    truth["r_lambda_arcsec"] = r_lambda_arcsec(truth["richness"].to_numpy(), truth["z"].to_numpy())
    size_px = fields.shape[-1]
    f = size_px / cfg.model_px
    scale_of = tiles["pixel_scale_arcsec"].to_dict()
    seconds, metrics, detections = {}, {}, []
    idx = {s: usable.index[usable["split"] == s].to_numpy() for s in ("train", "val", "test")}
    if min(len(truth[truth["split"] == s]) for s in ("train", "val", "test")) < 2:
        raise StageNotApplicable("fewer than 2 catalogued clusters in the training, validation or test tiles")

    t0 = time.perf_counter()
    ctx.progress(0, 1, f"stretching {len(tiles)} tiles")
    x = {s: stretch_tiles(fields[i], cfg.model_px) for s, i in idx.items()}
    x_half = {s: torch.nn.functional.avg_pool2d(torch.as_tensor(v), 2).numpy() for s, v in x.items()}
    label = {s: tiles.loc[i, "has_cluster"].to_numpy() for s, i in idx.items()}

    clf, rec = train_classifier(x_half["train"], label["train"], x_half["val"], label["val"], cfg.classifier_width,
                                cfg.classifier_epochs, cfg.batch, cfg.lr, cfg.seed, ctx.progress)
    with torch.no_grad():
        for s in ("val", "test"):
            tiles.loc[idx[s], "classifier_score"] = torch.sigmoid(clf(torch.as_tensor(x_half[s]))).numpy()
    metrics["classifier_best_epoch"] = rec["best_epoch"]
    seconds["classifier"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    by_tile = {t: g for t, g in truth.groupby("tile")}
    centres, regress = {}, {}
    for s, ids in idx.items():
        centres[s] = [((by_tile[t][["x_px", "y_px"]].to_numpy() + 0.5) / f) if t in by_tile else np.zeros((0, 2)) for t in ids]
        regress[s] = [np.stack([np.log(by_tile[t]["r_lambda_arcsec"].to_numpy() / (scale_of[t] * f)),
                                by_tile[t]["z"].to_numpy(), np.log10(by_tile[t]["richness"].to_numpy())], 1)
                      if t in by_tile else np.zeros((0, 3)) for t in ids]
    det_model, rec = train_detector(x["train"], centres["train"], regress["train"], x["val"], centres["val"],
                                    regress["val"], cfg.detector_width, cfg.detector_epochs, cfg.detector_batch, cfg.lr,
                                    cfg.seed, report=ctx.progress)
    metrics["detector_best_epoch"] = rec["best_epoch"]
    suppress = 2 * cfg.match_arcsec / (float(np.median(list(scale_of.values()))) * f)
    heat = {}  # per validation / test tile, the detector's heatmap (read again by the fusion)
    with torch.no_grad():
        for s in ("val", "test"):
            found = []
            for i in range(0, len(x[s]), 64):
                out = det_model(torch.as_tensor(x[s][i:i + 64]))
                found += decode_detections(out, det_model.stride, min_score=1e-3, suppress_px=suppress)
                heat.update(zip(idx[s][i:i + 64], torch.sigmoid(out[:, 0]).numpy()))
            detections.append(_rows("detector", idx[s], found, f))
    seconds["detector"] = time.perf_counter() - t0

    galaxies = pd.read_parquet(src / "galaxies.parquet") if (src / "galaxies.parquet").exists() else None
    members = read_members(src / "redmapper_members.fits") if (src / "redmapper_members.fits").exists() else None
    z_of = dict(zip(truth["mem_match_id"], truth["z"]))
    lam_of = dict(zip(truth["mem_match_id"], truth["richness"]))
    train_ids = truth.loc[truth["split"] == "train", "mem_match_id"]
    rs = None
    if members is not None:
        rs = RedSequence.fit(members, {k: z_of[k] for k in train_ids}, {k: lam_of[k] for k in train_ids})
    methods = ["detector"]

    if galaxies is not None:
        t0 = time.perf_counter()
        grid = 8
        feats = {s: field_features(galaxies, ids, size_px, grid) for s, ids in idx.items()}
        target = {}
        for s, ids in idx.items():
            t = np.zeros((len(ids), 3), np.float32)
            t[:, 1:] = -1, np.nan
            for i, tile in enumerate(ids):
                if tile in by_tile:
                    c = by_tile[tile].sort_values("richness").iloc[-1]
                    cx, cy = (int(np.clip((v + 0.5) / size_px * grid, 0, grid - 1)) for v in (c["x_px"], c["y_px"]))
                    t[i] = [1, cy * grid + cx, c["z"]]
            target[s] = t
        cat, rec = train_catalogue(feats["train"], target["train"], feats["val"], target["val"], grid,
                                   cfg.catalogue_epochs, cfg.batch, cfg.lr, cfg.seed, ctx.progress)
        cell = size_px / grid
        with torch.no_grad():
            for s in ("val", "test"):
                out = cat(torch.as_tensor(feats[s])).numpy().astype(np.float64)
                score = 1 / (1 + np.exp(-out[:, 0]))
                where = out[:, 2:].argmax(1)
                found = [np.array([[(w % grid + 0.5) * cell - 0.5, (w // grid + 0.5) * cell - 0.5, cell / 2, sc, o[1],
                                    np.nan]]) for o, sc, w in zip(out, score, where)]
                detections.append(_rows("catalogue", idx[s], found))
        seconds["catalogue"] = time.perf_counter() - t0
        methods.append("catalogue")
        if rs is not None:
            t0 = time.perf_counter()
            empty = idx["train"][label["train"] == 0]
            rs.fit_background(galaxies, empty, (size_px * np.median(list(scale_of.values())) / 60.0) ** 2)
            by_gal = {t: g for t, g in galaxies.groupby("tile")}
            for s in ("val", "test"):
                found = [detect(rs, by_gal.get(t, galaxies.iloc[:0]), size_px, scale_of[t], match_arcsec=cfg.match_arcsec)
                         for t in idx[s]]
                detections.append(_rows("red_sequence", idx[s], found))
                ctx.progress(1, 1, f"red-sequence finder on the {s} tiles")
            seconds["red_sequence_detection"] = time.perf_counter() - t0
            methods.append("red_sequence")
            t0 = time.perf_counter()
            fused = _fuse(pd.concat(detections, ignore_index=True), heat, truth, tiles["split"], scale_of, cfg,
                          f * det_model.stride)
            if fused is not None:
                detections.append(fused[0])
                metrics["fusion_weights"] = fused[1]
                seconds["fusion"] = time.perf_counter() - t0
                methods.append("fused")

    det = pd.concat(detections, ignore_index=True)
    det["ra"], det["dec"] = _sky(tiles, det)
    det, det_summary, curves = _score_detections(det, truth, tiles["split"], scale_of, cfg, methods)
    for method in methods:  # a tile's score: its strongest detection (0 without one)
        best = det[det["method"] == method].groupby("tile")["score"].max()
        tiles[f"{method}_score"] = tiles.index.map(best).fillna(0.0).where(tiles["split"] != "train")
    test_tiles = tiles.loc[idx["test"]]
    table = {}
    for method in ["classifier", *methods]:
        row = {"auroc": auroc(test_tiles["has_cluster"], test_tiles[f"{method}_score"])}
        row.update(det_summary.get(method, {}))
        table[method] = row
    best_method = max(methods, key=lambda m: _val_f1(det, truth, m, det_summary[m]["threshold"]))

    sets = None
    if members is not None:
        t0 = time.perf_counter()
        ids = {s: truth.loc[truth["split"] == s, "mem_match_id"].to_numpy() for s in ("train", "val", "test")}
        xs = {s: member_sets(members, v, cfg.max_members) for s, v in ids.items()}
        ys = {s: np.stack([[z_of[k] for k in v], np.log10([lam_of[k] for k in v])], 1) for s, v in ids.items()}
        sets = pd.DataFrame({"mem_match_id": ids["test"], "z_true": ys["test"][:, 0], "lambda_true": 10 ** ys["test"][:, 1]})
        for kind in ("deepsets", "janossy"):
            model, rec = train_set(kind, *xs["train"], ys["train"], *xs["val"], ys["val"], cfg.set_epochs,
                                   cfg.batch, cfg.lr, cfg.seed, ctx.progress)
            pred = predict_sets(model, *xs["test"], seed=cfg.seed)
            sets[f"{kind}_z"], sets[f"{kind}_z_sigma"] = pred[:, 0], pred[:, 1]
            sets[f"{kind}_lambda"], sets[f"{kind}_log_lambda_sigma"] = 10 ** pred[:, 2], pred[:, 3]
            save_file(model.state_dict(), str(ctx.out / f"{kind}.safetensors"))
            metrics[f"{kind}_best_epoch"] = rec["best_epoch"]
        groups = dict(tuple(members.groupby("MEM_MATCH_ID")))
        zs, lams = [], []
        for k in ids["test"]:
            m = groups[k]
            gr, rz = (m["MODEL_MAG_G"] - m["MODEL_MAG_R"]).to_numpy(float), (m["MODEL_MAG_R"] - m["MODEL_MAG_Z"]).to_numpy(float)
            zs.append(rs.redshift(gr, rz, m["P"].to_numpy(float)))
            lams.append(rs.log_richness(m["P"].to_numpy(float)))
        sets["red_sequence_z"], sets["red_sequence_z_sigma"] = [z for z, _ in zs], [s for _, s in zs]
        sets["red_sequence_lambda"], sets["red_sequence_log_lambda_sigma"] = 10 ** np.array(lams), np.nan
        for kind in SET_METHODS:
            row = table.setdefault(f"{kind}_sets", {})
            row["sigma_z"] = sigma_z(sets[f"{kind}_z"], sets["z_true"])
            row["richness_scatter_dex"] = richness_scatter(np.log10(sets[f"{kind}_lambda"]), sets["lambda_true"])
            err = np.abs(sets[f"{kind}_z"] - sets["z_true"]) / sets[f"{kind}_z_sigma"]
            row["z_within_1sigma"] = float((err <= 1).mean())
        seconds["sets"] = time.perf_counter() - t0

    save_file(clf.state_dict(), str(ctx.out / "classifier.safetensors"))
    save_file(det_model.state_dict(), str(ctx.out / "detector.safetensors"))
    if galaxies is not None:
        save_file(cat.state_dict(), str(ctx.out / "catalogue.safetensors"))
    tiles.drop(columns=["wcs"]).to_parquet(ctx.out / TILES_FILE, index=False)
    det.to_parquet(ctx.out / DETECTIONS_FILE, index=False)
    curves.to_parquet(ctx.out / CURVES_FILE, index=False)
    if sets is not None:
        sets.to_parquet(ctx.out / SETS_FILE, index=False)
    if rs is not None:
        (ctx.out / "red_sequence.json").write_text(json.dumps(
            {"gr": rs.gr.tolist(), "rz": rs.rz.tolist(), "s_gr": rs.s_gr, "s_rz": rs.s_rz,
             "richness": rs.richness.tolist(),
             "background": None if rs.background is None else rs.background.tolist()}, indent=1))
    summary = {"split": "test", "n_tiles": {s: int(len(v)) for s, v in idx.items()},
               "match_arcsec": cfg.match_arcsec, "best_detector": best_method, "table": table}
    (ctx.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=float))
    (ctx.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    best = det_summary[best_method]
    metrics.update({
        "split": "test", "best_detector": best_method, "match_arcsec": cfg.match_arcsec,
        "completeness_l20": best["completeness_l20"], "purity_l20": best["purity_l20"],
        "classifier_auroc": table["classifier"]["auroc"], "n_test_tiles": int(len(idx["test"])),
        "n_test_clusters": int((truth["split"] == "test").sum()),
        **{f"{m}_completeness_l20": det_summary[m]["completeness_l20"] for m in methods},
        **{f"{m}_purity_l20": det_summary[m]["purity_l20"] for m in methods},
        **({f"sigma_z_{k}": table[f"{k}_sets"]["sigma_z"] for k in SET_METHODS} if sets is not None else {}),
        **({f"richness_scatter_{k}": table[f"{k}_sets"]["richness_scatter_dex"] for k in SET_METHODS} if sets is not None else {}),
        "seconds_per_model": {k: round(v, 2) for k, v in seconds.items()},
    })
    return metrics


def _fuse(det: pd.DataFrame, heat: dict, truth: pd.DataFrame, split: pd.Series, scale_of: dict, cfg: ClustersConfig,
          cell_px: float) -> tuple[pd.DataFrame, dict] | None:
    """The detector's and the red-sequence finder's candidates merged and re-scored (:mod:`galaxyml.clusters.fuse`):
    fit on the validation tiles, cross-fitted scores there, the fitted model's scores on the test tiles. None
    when the validation candidates are all clusters or all not (nothing to fit on a handful of tiles)."""

    def heat_at(tile: int, x_px: float, y_px: float) -> float:
        h = heat[tile]
        cx, cy = (int(np.clip((v + 0.5) // cell_px, 0, n - 1)) for v, n in ((x_px, h.shape[1]), (y_px, h.shape[0])))
        return float(h[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2].max())

    radius = cfg.match_arcsec / float(np.median(list(scale_of.values())))
    parts = {}
    for s in ("val", "test"):
        d = det[det["tile"].map(split) == s]
        parts[s] = merge_candidates(d[d["method"] == "detector"], d[d["method"] == "red_sequence"], radius, heat_at)
    labelled = match(parts["val"].assign(score=parts["val"]["detector_score"]), truth[truth["split"] == "val"],
                     cfg.match_arcsec, scale_of).sort_index()
    is_cluster = labelled["matched"].to_numpy() >= 0
    if is_cluster.all() or not is_cluster.any():
        return None
    fusion = Fusion.fit(parts["val"], is_cluster)
    parts["val"]["score"], parts["test"]["score"] = fusion.val_scores, fusion.score(parts["test"])
    rows = pd.concat(parts.values(), ignore_index=True).assign(method="fused")
    return rows[["method", "tile", "x_px", "y_px", "half_size_px", "score", "z", "lambda"]], fusion.weights()


def _val_f1(det: pd.DataFrame, truth: pd.DataFrame, method: str, thr: float) -> float:
    d = det[(det["method"] == method) & (det["split"] == "val")]
    c, p = completeness_purity(d, truth[truth["split"] == "val"], thr)
    return 2 * c * p / (c + p) if c + p > 0 else 0.0
