"""Stage ``forge``: conditional flows over the star particles of the survey's galaxies (GalacticForge),
trained on training galaxies, the checkpoint chosen on validation galaxies, scored on test galaxies
beside a Gaussian fitted to each test galaxy's own stars and beside true stars against true stars."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from galaxyml.data.mock.particles import PARTICLE_COLUMNS
from galaxyml.data.survey import Survey
from galaxyml.forge.conditional import CONDITIONS, ContextScaler, context_vector, galaxy_conditions
from galaxyml.forge.evaluate import c2st_auc, gaussian_nll, gaussian_sample, profile_errors, w1_per_dim
from galaxyml.forge.prep import CleanConfig, Standardiser, clean
from galaxyml.forge.tables import ParticleSet
from galaxyml.models.flows import FLOW_KINDS, FlowSpec, build_flow, mean_nll, sample, save_flow, train_flow
from precompute.stage import StageContext, StageNotApplicable, register

GALAXIES_FILE = "galaxies.json"
FLOW_FILE = "flow_{kind}"


@dataclass(frozen=True)
class ForgeConfig:
    """Which flows, on how many galaxies and stars, for how long."""

    flows: tuple[str, ...] = FLOW_KINDS
    train_galaxies: int = 128
    val_galaxies: int = 8
    """Galaxies whose NLL picks each flow's checkpoint and the best flow."""
    test_galaxies: int = 2
    """Galaxies every figure is scored on (never trained on)."""
    stars_per_galaxy: int = 500
    """Stars generated per training / validation galaxy (before cleaning)."""
    eval_stars: int = 1500
    """True stars per test galaxy the samples are compared with (as many again fit the Gaussian reference)."""
    steps: int = 150
    cnf_steps: int = 15
    """The continuous flow's steps (each solves an ODE)."""
    batch: int = 512
    lr: float = 2e-3
    transforms: int = 4
    hidden: tuple[int, ...] = (96, 96)
    use_latent: bool = True
    """Condition on the autoencoder's 16-d image latent (GalacticForge) besides GalacticFlow's conditions."""
    extra_conditions: tuple[str, ...] = ("z",)
    """Catalog columns added to the context when present (an image's angular size needs a distance)."""
    r_percentile: float = 95.0
    """GalacticFlow's radius cut (see :class:`CleanConfig`)."""
    speed_stars: int = 20000
    """Stars sampled once per flow to measure its sampling speed."""
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [f for f in self.flows if f not in FLOW_KINDS]
        if bad or not self.flows:
            raise ValueError(f"forge.flows: unknown {bad} (choose from {', '.join(FLOW_KINDS)})")
        if min(self.train_galaxies, self.val_galaxies, self.test_galaxies) < 1 or self.stars_per_galaxy < 100 \
                or self.eval_stars < 100:
            raise ValueError("forge: at least one galaxy per split, stars_per_galaxy and eval_stars >= 100")
        if self.steps < 1 or self.cnf_steps < 1 or self.batch < 8:
            raise ValueError("forge: steps, cnf_steps >= 1 and batch >= 8")


def _galaxy(survey: Survey, i: int, n: int, clean_cfg: CleanConfig) -> ParticleSet:
    cleaned, _ = clean(ParticleSet(survey.particles(int(i), n), PARTICLE_COLUMNS), clean_cfg)
    return cleaned


def sampling_speed(flow, context: np.ndarray, n: int, budget_s: float = 3.0) -> float:
    """Stars per second: timed on min(1,000, ``n``) stars, then on ``n`` if that would take under ``budget_s``."""
    probe = min(1000, n)
    t0 = time.perf_counter()
    sample(flow, probe, context)
    speed = probe / (time.perf_counter() - t0)
    if n > probe and n / speed < budget_s:
        t0 = time.perf_counter()
        sample(flow, n, context)
        speed = n / (time.perf_counter() - t0)
    return speed


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


@register("forge", ForgeConfig, inputs=("survey", "autoencoder"), optional=("autoencoder",), deferred=True)
def train_forge(ctx: StageContext) -> dict:
    """Train conditional flows (SOSPF, NICE, MAF, NSF, CNF) on star particles; score them on test galaxies."""
    cfg: ForgeConfig = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    if not survey.is_mock:
        raise StageNotApplicable("the survey has no star particles (only the mock universe has them); fit one "
                                 "simulated galaxy's particles with `python -m galaxyml.forge fit TABLE`")
    latent = None
    if cfg.use_latent and "autoencoder" in ctx.inputs:
        latent = np.load(ctx.inputs["autoencoder"] / "latent.npy", allow_pickle=False)
    extras = [c for c in cfg.extra_conditions if c in survey.catalog]
    names = CONDITIONS + tuple(extras) + tuple(f"latent_{i}" for i in range(0 if latent is None else latent.shape[1]))
    split = survey.split()
    rng = np.random.default_rng(cfg.seed)
    rows = {part: np.sort(rng.permutation(getattr(split, part))[:k]) for part, k in
            (("train", cfg.train_galaxies), ("val", cfg.val_galaxies), ("test", cfg.test_galaxies))}
    if not all(len(r) for r in rows.values()):
        raise StageNotApplicable("the survey's split leaves a train, validation or test part without galaxies")
    clean_cfg = CleanConfig(r_percentile=cfg.r_percentile, min_particles=50)

    def context_of(i: int, stars: ParticleSet) -> np.ndarray:
        row = survey.catalog.iloc[int(i)]
        return context_vector(galaxy_conditions(stars.data, float(row["log_mstar"])),
                              {c: float(row[c]) for c in extras}, None if latent is None else latent[int(i)], names)

    ctx.progress(0, 1, "generating star particles")
    data: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for part in ("train", "val"):
        stars = [_galaxy(survey, i, cfg.stars_per_galaxy, clean_cfg) for i in rows[part]]
        data[part] = ([s.data for s in stars], [context_of(i, s) for i, s in zip(rows[part], stars)])
    test_true, test_ref, test_ctx = [], [], []
    for i in rows["test"]:
        both = _galaxy(survey, i, 2 * cfg.eval_stars, clean_cfg)
        order = rng.permutation(len(both))  # the mock lists disk stars before bulge stars
        test_true.append(both.data[order[: len(both) // 2]])
        test_ref.append(both.data[order[len(both) // 2:]])
        test_ctx.append(context_of(i, both))
    std = Standardiser(PARTICLE_COLUMNS).fit(_stack(data["train"][0]))
    scaler = ContextScaler(names).fit(np.array(data["train"][1]))

    def pooled(part: str) -> tuple[np.ndarray, np.ndarray]:
        stars, contexts = data[part]
        c = np.concatenate([np.repeat(scaler.transform(c[None]), len(s), 0) for s, c in zip(stars, contexts)])
        return std.transform(_stack(stars)), c

    x_tr, c_tr = pooled("train")
    x_va, c_va = pooled("val")
    true_z = [std.transform(t) for t in test_true]
    ref_z = [std.transform(t) for t in test_ref]
    ctx_z = [scaler.transform(c[None])[0] for c in test_ctx]

    def profiles(fakes_z: list[np.ndarray]) -> dict[str, float]:
        """Mean over test galaxies of each radial profile's error (physical units, see profile_errors)."""
        errs = [profile_errors(t, std.inverse(f), PARTICLE_COLUMNS) for t, f in zip(test_true, fakes_z)]
        return {k: round(float(np.nanmean([e[k] for e in errs])), 4) for k in errs[0]}

    gauss_z = [gaussian_sample(r, len(t), cfg.seed) for t, r in zip(true_z, ref_z)]
    references = {
        "gaussian": {"c2st_auc": float(np.mean([c2st_auc(t, g, seed=cfg.seed) for t, g in zip(true_z, gauss_z)])),
                     "nll": float(np.mean([gaussian_nll(r, t) for t, r in zip(true_z, ref_z)])),
                     "w1": float(np.mean([w1_per_dim(t, g).mean() for t, g in zip(true_z, gauss_z)])),
                     "profile_error": profiles(gauss_z)},
        "real": {"c2st_auc": float(np.mean([c2st_auc(t, r, seed=cfg.seed) for t, r in zip(true_z, ref_z)])),
                 "profile_error": profiles(ref_z),
                 "w1": float(np.mean([w1_per_dim(t, r).mean() for t, r in zip(true_z, ref_z)]))}}

    flows: dict[str, dict] = {}
    for k, kind in enumerate(cfg.flows):
        steps = cfg.cnf_steps if kind == "cnf" else cfg.steps
        spec = FlowSpec(kind, len(PARTICLE_COLUMNS), len(names), cfg.transforms, tuple(cfg.hidden))
        torch.manual_seed(cfg.seed)
        flow = build_flow(spec)

        def progress(step, total, message, _k=k, _kind=kind):
            ctx.progress(_k * 100 + int(100 * step / total), 100 * len(cfg.flows), f"{_kind}: {message}")

        result = train_flow(flow, x_tr, c_tr, x_va, c_va, steps=steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed,
                            progress=progress)
        torch.manual_seed(cfg.seed)
        fakes = [sample(flow, len(t), c) for t, c in zip(true_z, ctx_z)]
        speed = sampling_speed(flow, ctx_z[0], cfg.speed_stars)
        per_galaxy = [c2st_auc(t, f, seed=cfg.seed) for t, f in zip(true_z, fakes)]
        w1 = np.mean([w1_per_dim(t, f) for t, f in zip(true_z, fakes)], 0)
        epochs = steps * cfg.batch / len(x_tr)
        flows[kind] = {
            "c2st_auc": float(np.mean(per_galaxy)), "c2st_auc_per_galaxy": [round(a, 4) for a in per_galaxy],
            "nll": float(np.mean([mean_nll(flow, t, np.repeat(c[None], len(t), 0), exact=kind != "cnf")
                                  for t, c in zip(true_z, ctx_z)])),
            "val_nll": result.best_val_nll, "w1": float(w1.mean()),
            "w1_per_dim": dict(zip(PARTICLE_COLUMNS, w1.round(5).tolist())), "profile_error": profiles(fakes),
            "best_step": result.best_step, "steps": steps, "train_seconds": round(result.seconds, 1),
            "seconds_per_epoch": round(result.seconds / max(epochs, 1e-9), 2), "stars_per_second": round(speed)}
        save_flow(ctx.out / FLOW_FILE.format(kind=kind), flow, spec,
                  {"standardiser": std.to_dict(), "context": scaler.to_dict()})  # no timings: files are reproducible
    best = min(flows, key=lambda f: flows[f]["val_nll"])
    (ctx.out / GALAXIES_FILE).write_text(json.dumps(
        {part: r.tolist() for part, r in rows.items()} | {"test_context": [c.tolist() for c in test_ctx],
                                                          "context_names": list(names)}, indent=1))
    return {"flows": flows, "references": references, "best_flow": best, "best_c2st_auc": flows[best]["c2st_auc"],
            "context": list(names), "galaxies": {p: int(len(r)) for p, r in rows.items()},
            "stars": {"train": int(len(x_tr)), "validation": int(len(x_va)), "per_test_galaxy": cfg.eval_stars},
            "scored_on": "test galaxies (never trained on); best flow chosen by validation-galaxy NLL; C2ST, NLL "
                         "[nats/star] and W1 in the standardised space; CNF NLL by Hutchinson's trace estimate; profile_error: "
                         "mean |difference| of the radial profiles from the true ones (surface density and median "
                         "log Z in dex, v_phi in km/s, median age in Gyr)"}
