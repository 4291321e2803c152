"""Stages ``sfnet_metallicity`` and ``sfnet_bpt``: sparse feature networks (Wu 2024) predicting gas
metallicity 12+log(O/H), or the BPT line ratios N2 = log([NII]/Halpha) and O3 = log([OIII]/Hbeta),
from the images.

Each stage trains one network at the browsed sparsity ``k`` (and, with ``k_sweep``, one more per
listed k to report RMSE against k), predicts every galaxy, and stores the network's penultimate
activations as a FeatureSet (codes, statistics, correlations, examples) so the atlas page browses
SFNet features like SAE features.

Galaxies without a finite target (quenched galaxies have no gas metallicity) are predicted but
neither trained on nor scored. The networks train on the survey's train split, stop early on its
validation split (which also scores every k of the sweep, so a k can be chosen without the test
galaxies) and are scored on its test split (:mod:`galaxyml.data.split`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxyml import interpret
from galaxyml.data.split import SplitError, check_scorable, scoring_sample
from galaxyml.data.survey import Survey
from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE, summarise_codes, write_summary
from galaxyml.models.device import device_name
from galaxyml.photometry import fit_photometric_baseline, photometric_features
from galaxyml.models.sfnet import K_CHOICES, SFNetConfig
from galaxyml.models.sfnet_training import (
    SFNetTrainConfig, fit_sfnet, iter_predictions, predict, regression_metrics, save_sfnet, training_normalisation,
)
from precompute.stage import StageContext, StageNotApplicable, log, register
from precompute.stages.features import interpret_model

PREDICTIONS_FILE = "predictions.parquet"
SWEEP_FILE = "sweep.json"
HISTORY_FILE = "history.json"
NEAR_CONSTANT = 1e-6
"""A target whose standard deviation over the training galaxies is below this fraction of its typical
magnitude (or of 1) is refused as constant."""
METALLICITY_COLUMNS = ("oh_p50", "oh_12")
"""Metallicity columns looked for, in order: the MPA-JHU median (real data), the mock's truth."""
BPT_COLUMNS = ("n2", "o3")
MISSING_AT_OR_BELOW = -99.0
"""Target values at or below this are catalog placeholders for "no measurement" (MPA-JHU writes -99.9
or -9999) and are treated as missing."""


@dataclass(frozen=True)
class SFNetStageConfig(SFNetTrainConfig):
    """An SFNet stage: the network's shape, the sparsities trained, the split and the schedule."""

    epochs: int = 14
    """Most passes over the training galaxies (the demo's setting; the full preset trains 20)."""
    target: str = ""
    """Target column(s), comma-separated; empty: oh_p50 (else oh_12) for metallicity, n2,o3 for BPT."""
    k: int = 8
    """Active penultimate features of the network the atlas browses (0 = all, no top-k)."""
    k_sweep: tuple[int, ...] = ()
    """More sparsities to train, for the RMSE-against-k curve (e.g. [1, 2, 4, 8, 16, 32, 0])."""
    widths: tuple[int, ...] = (16, 32, 64, 128)
    """Channels of the four residual stages; the last is the number of features."""
    stem_stride: int = 2
    """Stride of the first convolution. Measured on a 5,000-galaxy mock (``python bench/sfnet.py --sweep
    5000 --ks 8 --stem-stride 2 --epochs 14``): stride 2 with 14 epochs reaches test RMSE 0.119 dex
    in about half the time stride 1 needs for 0.120 with 8 epochs."""
    sample_galaxies: int = 20000
    """Galaxies sampled for the features' correlations and examples."""
    top_n: int = 30
    """Top-activating galaxies kept per feature."""
    ensemble: int = 0
    """Networks (seeds) whose mean prediction is reported; 0: five when fewer than 2,000 galaxies train,
    else one. The atlas browses the first network's features either way. Measured on 500 mock galaxies
    (``python bench/small_survey.py``): single networks 0.127 to 0.143 dex test RMSE over five seeds,
    their mean 0.130."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in (self.k, *self.k_sweep):
            if k not in K_CHOICES:
                raise ValueError(f"sfnet k = {k} is not one of {K_CHOICES} (0 = no top-k)")
            if k > self.widths[-1]:
                raise ValueError(f"sfnet k = {k} exceeds the {self.widths[-1]} features (widths[-1])")
        if self.ensemble < 0:
            raise ValueError(f"sfnet ensemble must be >= 0 (0: by survey size), got {self.ensemble}")
        if self.sample_galaxies < 100 or self.top_n < 1:
            raise ValueError("sfnet sample_galaxies >= 100 and top_n >= 1 are required")


def target_columns(cfg: SFNetStageConfig, kind: str, catalog: pd.DataFrame) -> list[str]:
    """The target columns of a stage, checked against the catalog."""
    if cfg.target:
        wanted = [c.strip() for c in cfg.target.split(",") if c.strip()]
    elif kind == "bpt":
        wanted = list(BPT_COLUMNS)
    else:
        wanted = [next((c for c in METALLICITY_COLUMNS if c in catalog), METALLICITY_COLUMNS[0])]
    missing = [c for c in wanted if c not in catalog]
    if missing and not cfg.target:
        raise StageNotApplicable(f"the catalog has no {' / '.join(METALLICITY_COLUMNS if kind != 'bpt' else BPT_COLUMNS)} "
                                 f"column (set sfnet_{kind}.target to train on another column)")
    if missing:
        hint = ("give the line fluxes nii_6584_flux, h_alpha_flux, oiii_5007_flux, h_beta_flux and their _err "
                "columns, or n2 and o3" if kind == "bpt" else f"name the column with --target or sfnet_{kind}.target")
        raise ValueError(f"the catalog has no target column {', '.join(missing)} ({hint}); "
                         f"columns: {', '.join(map(str, catalog.columns[:30]))}")
    for c in wanted:
        if not pd.api.types.is_numeric_dtype(catalog[c]):
            raise ValueError(f"target column '{c}' is not numeric (dtype {catalog[c].dtype})")
    return wanted


def sparse_codes(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) activations -> (N, k') indices and values, strongest first (k' = k, or F for k = 0)."""
    width = k if k else features.shape[1]
    order = np.argsort(-features, axis=1, kind="stable")[:, :width]
    return order.astype(np.int32), np.take_along_axis(features, order, 1).astype(np.float32)


def _train_one(ctx: StageContext, cfg: SFNetStageConfig, survey: Survey, y: np.ndarray, train_idx: np.ndarray,
               val_idx: np.ndarray, test_idx: np.ndarray, k: int, floors: dict, norm, targets: list[str], label: str):
    """Train one network with k active features; its fit, its test scores per target and its validation
    RMSE per target."""
    model_cfg = SFNetConfig(n_chan=survey.images.shape[1], widths=cfg.widths, k=k, n_targets=len(targets),
                            stem_stride=cfg.stem_stride)
    fit = fit_sfnet(survey.images, y, train_idx, model_cfg, cfg.train_config(), norm,
                    progress=lambda s, t, m: ctx.progress(s, t, f"{label}: {m}"), val_idx=val_idx)

    def predicted(rows: np.ndarray) -> np.ndarray:  # images read 4,096 at a time
        return np.concatenate([predict(fit.model, survey.images[rows[s : s + 4096]], norm)[0]
                               for s in range(0, len(rows), 4096)] or [np.empty((0, len(targets)), np.float32)])

    pred = predicted(test_idx)
    scores = {t: regression_metrics(pred[:, j], y[test_idx, j], floors.get(t)) for j, t in enumerate(targets)}
    pred_val = predicted(val_idx) if len(val_idx) else None
    val_rmse = {t: (regression_metrics(pred_val[:, j], y[val_idx, j])["rmse"] if pred_val is not None else None)
                for j, t in enumerate(targets)}
    return fit, scores, val_rmse


ENSEMBLE_BELOW = 2000
"""Fewer training galaxies than this get an ensemble (``ensemble = 0``): on a few hundred, one network's
test RMSE moves by about 0.01 dex with its seed."""
ENSEMBLE_MEMBERS = 5


def ensemble_size(cfg: SFNetStageConfig, n_train: int) -> int:
    """Networks averaged for the reported predictions: ``cfg.ensemble``, or with 0, five below
    :data:`ENSEMBLE_BELOW` training galaxies and one above."""
    if cfg.ensemble:
        return cfg.ensemble
    return ENSEMBLE_MEMBERS if n_train < ENSEMBLE_BELOW else 1


def ensemble_predictions(ctx: StageContext, cfg: SFNetStageConfig, survey: Survey, y: np.ndarray,
                         train_idx: np.ndarray, val_idx: np.ndarray, norm, targets: list[str], first: np.ndarray,
                         members: int) -> np.ndarray:
    """The mean prediction of ``members`` networks at the browsed k, the first given (``first``), the others
    trained with seeds cfg.seed + 1, 2, ... on the same galaxies."""
    total = first.astype(np.float64)
    for m in range(1, members):
        member_cfg = dataclasses.replace(cfg, seed=cfg.seed + m)
        model_cfg = SFNetConfig(n_chan=survey.images.shape[1], widths=cfg.widths, k=cfg.k, n_targets=len(targets),
                                stem_stride=cfg.stem_stride)
        fit = fit_sfnet(survey.images, y, train_idx, model_cfg, member_cfg.train_config(), norm, val_idx=val_idx,
                        progress=lambda s, t, msg, _m=m: ctx.progress(s, t, f"ensemble {_m + 1}/{members}: {msg}"))
        total += predict(fit.model, survey.images, norm)[0]
    return (total / members).astype(np.float32)


def photometric_baseline(ctx: StageContext, survey: Survey, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                         test_idx: np.ndarray, targets: list[str], floors: dict, seed: int) -> dict:
    """The classical baseline beside the network (:mod:`galaxyml.photometry`): ridge and gradient-boosted
    regressions on aperture photometry, colours and shapes measured from the same images, trained on the
    same split. Which of the two is reported is chosen on the validation galaxies (the ridge without
    any); its test metrics per target, and its predictions of every galaxy under ``_pred_<target>``."""
    feats = photometric_features(survey.images, survey.bands,
                                 progress=lambda s, t, m: ctx.progress(s, t, f"photometric baseline: {m}"))
    fit = fit_photometric_baseline(feats, np.nan_to_num(y), train_idx, val_idx, seed)
    out: dict = {}
    for j, t in enumerate(targets):
        preds = {"ridge": fit.ridge[:, j], "boosted": fit.boosted[:, j]}
        val_rmse = {m: (float(np.sqrt(np.mean((p[val_idx] - y[val_idx, j]) ** 2))) if len(val_idx) else None)
                    for m, p in preds.items()}
        chosen = min(preds, key=lambda m: val_rmse[m]) if len(val_idx) else "ridge"
        out[t] = {**regression_metrics(preds[chosen][test_idx], y[test_idx, j], floors.get(t)), "method": chosen,
                  "val_rmse": val_rmse, "test_rmse": {m: regression_metrics(p[test_idx], y[test_idx, j])["rmse"]
                                                      for m, p in preds.items()}}
        out[f"_pred_{t}"] = preds[chosen].astype(np.float32)
    out["n_measurements"] = feats.shape[1]
    return out


def _predict_all(ctx: StageContext, fit, images: np.ndarray, norm, k: int, n_targets: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict every galaxy; the sparse codes stream into memmaps in the stage folder."""
    n, width = len(images), k or fit.model.cfg.widths[-1]
    pred = np.empty((n, n_targets), np.float32)
    idx = np.lib.format.open_memmap(ctx.out / CODE_INDICES_FILE, mode="w+", dtype=np.int32, shape=(n, width))
    val = np.lib.format.open_memmap(ctx.out / CODE_VALUES_FILE, mode="w+", dtype=np.float32, shape=(n, width))
    for start, p, f in iter_predictions(fit.model, images, norm):
        stop = start + len(p)
        pred[start:stop] = p
        idx[start:stop], val[start:stop] = sparse_codes(f, k)
        ctx.progress(stop, n, f"predicted {stop:,}/{n:,} galaxies")
    idx.flush()
    val.flush()
    return pred, idx, val


def run_sfnet(ctx: StageContext, kind: str) -> dict:
    """Train, sweep, predict and summarise one SFNet stage (``kind``: metallicity or bpt); its metrics."""
    cfg: SFNetStageConfig = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    cat = survey.catalog
    targets = target_columns(cfg, kind, cat)
    y = cat[targets].to_numpy(np.float64)
    placeholder = y <= MISSING_AT_OR_BELOW
    if placeholder.any():
        log.warning("%s: %d values of %s at or below %g are taken as missing (catalog placeholders)", ctx.name,
                    int(placeholder.sum()), ", ".join(targets), MISSING_AT_OR_BELOW)
        y = np.where(placeholder, np.nan, y)
    has_target = np.isfinite(y).all(1)
    if not has_target.any():
        why = f"no galaxy has a finite {', '.join(targets)}"
        if not cfg.target:
            raise StageNotApplicable(why)
        raise ValueError(f"{why}; nothing to train on")
    if not has_target.all():
        log.warning("%s: %d of %d galaxies have no finite %s; they are predicted but neither trained on nor scored",
                    ctx.name, int((~has_target).sum()), len(cat), ", ".join(targets))
    split = survey.split()
    try:
        train_idx, val_idx, test_idx = check_scorable(split, has_target, f"a finite {', '.join(targets)}")
    except SplitError as e:
        raise StageNotApplicable(str(e)) from e
    for j, t in enumerate(targets):
        values = y[train_idx, j]
        if np.std(values) <= NEAR_CONSTANT * max(1.0, float(np.mean(np.abs(values)))):
            raise StageNotApplicable(f"target column '{t}' has the same value ({np.median(values):g}, spread "
                                     f"{np.ptp(values):.3g}) for all {len(train_idx)} training galaxies: there is "
                                     f"nothing to learn")
    floors = survey.prediction_floors()
    n_imgs = len(survey)
    norm = training_normalisation(survey.images, survey.bands, train_idx, cfg.seed)
    sweep: list[dict] = []
    for k in dict.fromkeys((cfg.k, *cfg.k_sweep)):  # the browsed k first, then the rest of the sweep
        fit_k, scores, val_rmse = _train_one(ctx, cfg, survey, y, train_idx, val_idx, test_idx, k, floors, norm,
                                             targets, f"k={k or 'all'}" if k == cfg.k else f"sweep k={k or 'all'}")
        sweep.append({"k": k, "best_epoch": fit_k.best_epoch, "val_rmse": val_rmse, **scores})
        if k == cfg.k:
            fit = fit_k
    sweep.sort(key=lambda r: r["k"] or 10 ** 6)
    n_features = cfg.widths[-1]
    pred, idx, val = _predict_all(ctx, fit, survey.images, norm, cfg.k, len(targets))
    members = ensemble_size(cfg, len(train_idx))
    network_pred = pred
    if members > 1:  # the reported predictions average networks trained with other seeds; the browsed one is the first
        pred = ensemble_predictions(ctx, cfg, survey, y, train_idx, val_idx, norm, targets, pred, members)
    ensemble_scores = {t: regression_metrics(pred[test_idx, j], y[test_idx, j], floors.get(t))
                       for j, t in enumerate(targets)}
    table = pd.DataFrame({"galaxy_id": cat["galaxy_id"].to_numpy(), "split": split.labels(n_imgs),
                          "test": split.mask("test", n_imgs), "has_target": has_target})
    ctx.progress(0, 1, "photometric baseline")
    photo = photometric_baseline(ctx, survey, y, train_idx, val_idx, test_idx, targets, floors, cfg.seed)
    baseline = {}
    for j, t in enumerate(targets):
        table[f"true_{t}"] = y[:, j]
        table[f"pred_{t}"] = pred[:, j]
        if members > 1:
            table[f"network_{t}"] = network_pred[:, j]
        table[f"photometric_{t}"] = photo.pop(f"_pred_{t}")
        med = float(np.median(y[train_idx, j]))
        baseline[t] = regression_metrics(np.full(len(test_idx), med), y[test_idx, j])["rmse"]
    table.to_parquet(ctx.out / PREDICTIONS_FILE, index=False)
    save_sfnet(fit.model, norm, ctx.out, {"targets": targets, "n_latents": n_features, "kind": kind})
    (ctx.out / SWEEP_FILE).write_text(json.dumps(sweep, indent=1))
    (ctx.out / HISTORY_FILE).write_text(json.dumps(fit.history, indent=1))

    ctx.progress(0, 1, "feature statistics and correlations")
    summary = summarise_codes(idx, val, n_features, cfg.top_n)
    write_summary(summary, ctx.out)
    sample, select = scoring_sample(split, cfg.sample_galaxies, cfg.seed)
    props = survey.properties(sample)
    idx_s, val_s = np.asarray(idx[sample]), np.asarray(val[sample])
    profiles = interpret.dense_activations(idx_s, val_s, n_features).T  # nearest features: by activation profile
    feature_metrics = interpret_model(ctx, ctx.name, ctx.out, survey, sample, select, props, idx_s, val_s,
                                      summary.stats, ctx.out, directions=profiles)
    main = sweep[[r["k"] for r in sweep].index(cfg.k)]
    return {
        "targets": targets, "k": cfg.k, "n_features": n_features, "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)), "n_test": int(len(test_idx)), "n_without_target": int((~has_target).sum()),
        "best_epoch": fit.best_epoch, "train_images_per_s": round(fit.images_per_s, 1),
        "device": device_name(next(fit.model.parameters()).device),
        "test": ensemble_scores, "ensemble": members, "test_network": {t: main[t] for t in targets},
        "baseline_median_rmse": baseline, "photometric_baseline": photo,
        "beats_photometric": {t: ensemble_scores[t]["rmse"] < photo[t]["rmse"] for t in targets},
        "rmse_by_k": {str(r["k"]): {t: r[t]["rmse"] for t in targets} for r in sweep},
        "dead_features": int(summary.stats["dead"].sum()), **feature_metrics,
    }


@register("sfnet_metallicity", SFNetStageConfig, inputs=("survey",), version=4)
def sfnet_metallicity(ctx: StageContext) -> dict:
    """Train an SFNet predicting 12+log(O/H) from the images; predictions and features."""
    return run_sfnet(ctx, "metallicity")


@register("sfnet_bpt", SFNetStageConfig, inputs=("survey",), version=4)
def sfnet_bpt(ctx: StageContext) -> dict:
    """Train an SFNet predicting the BPT ratios N2 and O3 from the images; predictions and features."""
    return run_sfnet(ctx, "bpt")

