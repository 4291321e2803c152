"""Command line: ``python -m precompute --preset demo --run demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from precompute.config import ConfigError, preset_names, read_preset, resolve_configs

EPILOG = """examples:
  python -m precompute                              build the demo atlas into runs/demo
  python -m precompute --preset quick --run test    a 1,000-galaxy atlas in under a minute
  python -m precompute --run demo --set sae.k=16    change one setting; only affected stages rerun
  python -m precompute --list                       presets and stages

A rerun skips every stage whose configuration and inputs are unchanged, so an interrupted
build resumes where it stopped. Runs live under $GALAXYML_HOME (default ./runs)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m precompute", description="Build a Galaxy Feature Atlas: "
                                "train every model on a survey and index what they learned.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", help="preset name in precompute/configs/ or a .toml path (default: demo)")
    p.add_argument("--run", help="run name: the folder under the home (default: the preset name)")
    p.add_argument("--home", type=Path, help="folder holding the runs (default: $GALAXYML_HOME or ./runs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="override one config value, e.g. survey.n_galaxies=2000 (repeatable)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE", help="rebuild this stage even if unchanged")
    p.add_argument("--list", action="store_true", help="list presets and stages, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar (events still go to progress.jsonl)")
    return p.parse_args(argv)


def _progress_printer(quiet: bool):
    from tqdm import tqdm

    state: dict = {"bar": None}

    def on_event(e: dict) -> None:
        if quiet:
            return
        kind = e["event"]
        if kind == "stage_start":
            state["bar"] = tqdm(total=1, desc=f"{e['stage']:>10}", unit="", leave=True, file=sys.stderr,
                                bar_format="{desc} |{bar}| {percentage:3.0f}% {elapsed} {postfix}")
        elif kind == "progress" and state["bar"] is not None:
            bar = state["bar"]
            bar.total = max(e["total"], 1)
            bar.n = e["step"]
            bar.set_postfix_str(e["message"], refresh=True)
        elif kind == "stage_done" and state["bar"] is not None:
            state["bar"].n = state["bar"].total
            state["bar"].set_postfix_str(e["message"])
            state["bar"].close()
            state["bar"] = None
        elif kind == "stage_skip":
            print(f"{e['stage']:>10} | unchanged, kept", file=sys.stderr)

    return on_event


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from galaxyml.atlas import home
    from precompute.stage import all_stages

    stages = all_stages()
    if args.list:
        print("presets:", ", ".join(preset_names()))
        for name, st in stages.items():
            print(f"  {name:<11} reads {', '.join(st.inputs) or '-':<20} {st.description}")
        return 0
    from precompute.lock import BuildLocked
    from precompute.runner import BuildCancelled, StageFailed, run_pipeline

    try:
        configs = resolve_configs(stages, read_preset(args.preset), args.overrides)
        unknown = sorted(set(args.force) - set(stages))
        if unknown:
            raise ConfigError(f"--force names unknown stages {unknown} (valid: {', '.join(stages)})")
        run = args.run or Path(args.preset).stem
        root = (args.home or home()).absolute()
        result = run_pipeline(root, run, stages, configs, preset=args.preset,
                              on_event=_progress_printer(args.quiet), force=tuple(args.force))
    except (ConfigError, BuildLocked, PermissionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        logging.getLogger("precompute").debug("stage failure", exc_info=True)
        return 1
    except BuildCancelled as e:
        print(f"cancelled: {e}; run the same command again to resume", file=sys.stderr)
        return 130
    ran = [s for s, a in result.actions.items() if a == "ran"]
    print(f"atlas ready: {result.run_dir} ({len(ran)} stage(s) built, {len(result.actions) - len(ran)} unchanged)")
    return 0
