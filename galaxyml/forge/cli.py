"""``python -m galaxyml.forge fit TABLE ...``: fit a flow to one simulated galaxy's star particles and
score it on held-out stars beside a Gaussian; writes the flow (safetensors) and ``metrics.json``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from galaxyml.forge.evaluate import profile_error_label
from galaxyml.forge.prep import CleanConfig
from galaxyml.forge.single import FitConfig, fit_galaxy
from galaxyml.forge.tables import ParticleError, ParticleSet, read_illustris, read_npy
from galaxyml.models.flows import FLOW_KINDS, save_flow

FLOW_FILE = "flow"
METRICS_FILE = "metrics.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m galaxyml.forge", description=__doc__.split("\n\n")[0].strip())
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit an unconditional flow to one galaxy's star particles",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("table", type=Path, help="the particle file")
    f.add_argument("--layout", choices=("illustris", "npy"), default="illustris",
                   help="illustris: whitespace table x y z [ckpc/h] vx vy vz [km/s sqrt(a)] mass [1e10 Msun/h] "
                        "formation-a metallicity; npy: (n, 10) array in GalacticFlow's order, physical units")
    f.add_argument("--hubble", type=float, default=None,
                   help="h of the simulation (Illustris-1: 0.704, TNG: 0.6774); required for --layout illustris")
    f.add_argument("--omega-m", type=float, default=None,
                   help="Omega_m (default: 0.2726 when h = 0.704, Illustris-1; else 0.3089, TNG)")
    f.add_argument("--snapshot-z", type=float, default=0.0, help="redshift of the snapshot the table comes from")
    f.add_argument("--columns", default=None,
                   help="column map for another table layout, e.g. x=0,y=1,z=2,vx=3,vy=4,vz=5,mass=6,a_form=7,Z=8")
    f.add_argument("--no-centre", action="store_true", help="the table is already centred on the galaxy")
    f.add_argument("--flow", choices=FLOW_KINDS, default="nsf")
    f.add_argument("--holdout", type=float, default=0.2, help="share of stars held out for scoring")
    f.add_argument("--steps", type=int, default=2000, help="training steps (batches of --batch stars)")
    f.add_argument("--batch", type=int, default=512)
    f.add_argument("--lr", type=float, default=FitConfig.lr, help="peak learning rate (one-cycle schedule)")
    f.add_argument("--transforms", type=int, default=FitConfig.transforms, help="flow layers")
    f.add_argument("--hidden", default=",".join(map(str, FitConfig.hidden)),
                   help="hidden widths of each layer's network, comma-separated")
    f.add_argument("--r-percentile", type=float, default=95.0,
                   help="GalacticFlow's radius cut: keep stars within this percentile of 3-D radius (100: none)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", type=Path, required=True, help="folder for the flow and metrics.json")
    return p


def read_table(args: argparse.Namespace) -> ParticleSet:
    if args.layout == "npy":
        return read_npy(args.table)
    if args.hubble is None:
        raise ParticleError("--hubble is required for an Illustris table (Illustris-1: 0.704, TNG: 0.6774)")
    return read_illustris(args.table, args.hubble, snapshot_z=args.snapshot_z, omega_m=args.omega_m,
                          column_map=args.columns, centre=not args.no_centre)


def report(metrics: dict) -> str:
    """The held-out figures as a table: flow beside the Gaussian and the real-vs-real ceiling."""
    s = metrics["stars"]
    lines = [f"{metrics['flow'].upper()} on {s['after_cleaning']:,} stars ({s['train']:,} train, "
             f"{s['validation']:,} validation, {s['held_out']:,} held out; best step {metrics['best_step']} "
             f"of {metrics['steps']}, {metrics['train_seconds']:.0f} s)",
             f"{'held-out':<22}{'flow':>10}{'Gaussian':>10}{'real':>10}",
             f"{'NLL [nats/star]':<22}{metrics['nll']:>10.3f}{metrics['nll_gaussian']:>10.3f}{'':>10}",
             f"{'C2ST AUC (0.5 best)':<22}{metrics['c2st_auc']:>10.3f}{metrics['c2st_auc_gaussian']:>10.3f}"
             f"{metrics['c2st_auc_real']:>10.3f}"]
    for col, w in metrics["w1"].items():
        lines.append(f"{'W1 ' + col + ' [std]':<22}{w:>10.4f}{metrics['w1_gaussian'][col]:>10.4f}")
    for key, err in metrics.get("profile_error", {}).items():
        label = profile_error_label(key, ascii_only=True)
        lines.append(f"{label:<22}{err:>10.3f}{metrics['profile_error_gaussian'][key]:>10.3f}")
    return "\n".join(lines)


def _write(out: Path, flow, spec, std, metrics: dict) -> None:
    """Write into a temporary folder beside ``out`` and swap it in; an ``out`` holding anything but a
    previous fit is left alone."""
    if out.exists() and any(out.iterdir()) and not (out / METRICS_FILE).exists():
        raise ParticleError(f"{out} exists and is not a previous fit's folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_flow(tmp / FLOW_FILE, flow, spec, {"standardiser": std.to_dict()})
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        cfg = FitConfig(flow=args.flow, holdout=args.holdout, steps=args.steps, batch=args.batch, lr=args.lr,
                        transforms=args.transforms, hidden=hidden, seed=args.seed)
        clean_cfg = CleanConfig(r_percentile=args.r_percentile)
        ps = read_table(args)
    except (ParticleError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in ps.notes:
        print(f"  {note}")

    def progress(step: int, total: int, message: str) -> None:
        print(f"  {message}", flush=True)

    try:
        flow, spec, std, metrics = fit_galaxy(ps, cfg, clean_cfg, progress)
        _write(args.out, flow, spec, std, metrics)
    except (ParticleError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(metrics))
    print(f"wrote {args.out / (FLOW_FILE + '.safetensors')} and {args.out / METRICS_FILE}")
    return 0
