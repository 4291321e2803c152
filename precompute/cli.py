"""Command line: ``python -m precompute --preset demo --run demo``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from precompute import source
from precompute.config import ConfigError, preset_names, read_preset, resolve_configs

ALWAYS_BUILT = ("survey", "thumbnails")
"""Stages ``--only`` always keeps: every page reads the survey and its thumbnails."""

EPILOG = """examples:
  python -m precompute                              build the demo atlas into runs/demo
  python -m precompute --preset quick --run test    a 1,000-galaxy atlas in under a minute
  python -m precompute --run demo --set sae.k=16    change one setting; only affected stages rerun
  python -m precompute --list                       presets and stages
  python -m precompute --source folder --images cutouts/ --catalog train.csv --test-catalog test.csv --target oh_p50 --run sdss
                                                    your own <objID>.jpg cutouts and CSV (--target bpt: line ratios)
  python -m precompute --run sdss --only sfnet_metallicity
                                                    one stage (and what it reads, plus thumbnails)

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
    src = p.add_argument_group("your own data (shortcuts for --set survey.*)")
    src.add_argument("--source", choices=("mock", "hf", "folder"),
                     help="mock universe (default), local Hugging Face dataset, or folder of <objID>.jpg cutouts + CSV")
    src.add_argument("--images", metavar="DIR", help="with --source folder/hf: the image folder or dataset path")
    src.add_argument("--catalog", metavar="CSV", help="with --source folder: CSV with objID and target columns")
    src.add_argument("--test-catalog", metavar="CSV", help="with --source folder: CSV of the test galaxies "
                     "(default: a seeded 20%% of --catalog)")
    src.add_argument("--target", metavar="COLUMN", help="SFNet target: a metallicity column such as oh_p50 "
                     "(trains sfnet_metallicity), or 'bpt' (trains sfnet_bpt on N2 and O3 from the line fluxes)")
    src.add_argument("--replace-survey", action="store_true",
                     help="allow this build to replace the survey of a run made from your files with another one "
                          "(without it such a build is refused; a rerun without source options reuses the "
                          "recorded ones)")
    sel = p.add_argument_group("which stages")
    sel.add_argument("--only", action="append", default=[], metavar="STAGE",
                     help="build only this stage and the stages it reads, plus thumbnails (repeatable)")
    sel.add_argument("--skip", action="append", default=[], metavar="STAGE",
                     help="leave out this stage and every stage that reads it (repeatable)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where shard tasks (embedding extraction) run: this process (default) or a Ray cluster "
                        "(pip install -r requirements-ray.txt); both give identical files")
    p.add_argument("--ray-address", metavar="ADDR", help="with --executor ray: the cluster to join, e.g. auto or "
                   "ray://head:10001 (default: $RAY_ADDRESS, else a Ray instance started on this machine)")
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
            if state["bar"] is not None:  # a stage that found nothing to do closes its bar
                state["bar"].close()
                state["bar"] = None
            print(f"{e['stage']:>10} | {e['message'].split(': ', 1)[-1]}", file=sys.stderr)

    return on_event


def source_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The --set overrides and --skip stages implied by --source / --images / --catalog / --target."""
    sets, skip = [], []
    source = args.source or ("folder" if args.catalog else None)
    if source:
        sets.append(f'survey.source="{source}"')
    if source in ("folder", "hf"):
        if not args.images:
            raise ConfigError(f"--source {source} needs --images DIR")
        if source == "folder" and not args.catalog:
            raise ConfigError("--source folder needs --catalog CSV (objID and target columns)")
        skip.append("cluster_fields")  # mock sky fields: nothing to do with the user's galaxies
    for flag, key in ((args.images, "dataset_path"), (args.catalog, "catalog_path"),
                      (args.test_catalog, "test_catalog_path")):
        if flag:
            sets.append(f"survey.{key}={json.dumps(str(Path(flag).expanduser().absolute()))}")  # a TOML string
    if args.target:
        if args.target.lower() == "bpt":
            sets.append('sfnet_bpt.target="n2,o3"')
            skip.append("sfnet_metallicity")
        else:
            sets.append(f"sfnet_metallicity.target={json.dumps(args.target)}")
            skip.append("sfnet_bpt")
    return sets, skip


def names_survey(args: argparse.Namespace) -> bool:
    """True when the command line chooses the galaxies (source options or a survey.* override)."""
    return bool(args.source or args.images or args.catalog or args.test_catalog) or any(
        o.split("=", 1)[0].strip() in {f"survey.{k}" for k in source.IDENTITY} for o in args.overrides)


def resolve_source(args: argparse.Namespace, manifest: dict) -> tuple[list[str], list[str], dict | None]:
    """The --set overrides and --skip stages that choose the galaxies and targets, and what to record of
    them in the manifest: those the command line names, or for a run made from the user's files and a
    command line that names no survey, the ones recorded by its earlier build (a new --target still wins)."""
    sets, skip = source_overrides(args)
    user_sets = [o for o in args.overrides if source.is_source_override(o)]
    if not names_survey(args) and source.user_survey(manifest) is not None:
        kept_sets, kept_skip = source.kept_source(manifest)
        if args.target or any(not o.strip().startswith("survey.") for o in user_sets):  # a new target replaces the old
            kept_sets = [o for o in kept_sets if o.startswith("survey.")]
            kept_skip = [n for n in kept_skip if not n.startswith("sfnet_")]
        sets, skip = [*kept_sets, *sets], [*kept_skip, *skip]
    named = sets or user_sets
    record = {"sets": [*sets, *user_sets], "skip": skip} if named else manifest.get("source")
    return sets, skip, record


def select_stages(stages: dict, only: list[str], skip: list[str]) -> dict:
    """The stages to build: with ``only``, those and what they read (plus thumbnails); minus ``skip``
    and everything downstream of it."""
    unknown = sorted((set(only) | set(skip)) - set(stages))
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)} (valid: {', '.join(stages)})")
    keep = set(stages)
    if only:
        keep = set()
        todo = [*only, *ALWAYS_BUILT]
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo.extend(stages[name].inputs)
    dropped = set(skip)
    for name, st in stages.items():  # registry order: inputs come first
        if dropped & (set(st.inputs) - set(st.optional)):
            dropped.add(name)
    clash = sorted(dropped & set(only))
    if clash:
        raise ConfigError(f"--only {', '.join(clash)} needs a stage that --skip / --target leaves out")
    return {n: st for n, st in stages.items() if n in keep and n not in dropped}


def on_demand_stages(stages: dict, only: list[str], configs: dict) -> frozenset[str]:
    """With ``only``: the stages kept only as optional inputs that no stage would read even if every
    stage were there (the encoder when the embeddings come from the vote network; the vote network
    when ``embeddings.source`` names the encoder or a file). The build makes them only if a stage
    reads them after all (the encoder, when the vote network turns out not applicable)."""
    if not only:
        return frozenset()
    everything = set(stages)
    read = {*only, *ALWAYS_BUILT}
    for name, st in stages.items():
        read |= {d for d in st.inputs if d not in st.optional}
        read |= set(st.inputs) if st.reads is None else st.reads(configs[name], everything)
    return frozenset(everything - read)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from galaxyml.atlas import home
    from precompute.stage import all_stages

    stages = all_stages()
    if args.list:
        print("presets:", ", ".join(preset_names()))
        for name, st in stages.items():
            later = " (built last, unless a stage reads it sooner)" if st.deferred else ""
            print(f"  {name:<18} reads {', '.join(st.inputs) or '-':<28} {st.description}{later}")
        return 0
    from precompute.executor import ExecutorError, make_executor
    from precompute.lock import BuildLocked
    from precompute.runner import BuildCancelled, StageFailed, run_pipeline

    try:
        run = args.run or Path(args.preset).stem
        root = (args.home or home()).absolute()
        manifest = source.recorded(root / run)
        implied_sets, implied_skip, record = resolve_source(args, manifest)
        configs = resolve_configs(stages, read_preset(args.preset), [*implied_sets, *args.overrides])
        source.check_replacement(manifest, configs["survey"], run, args.replace_survey)
        unknown = sorted(set(args.force) - set(stages))
        if unknown:
            raise ConfigError(f"--force names unknown stages {unknown} (valid: {', '.join(stages)})")
        stages = select_stages(stages, args.only, [*implied_skip, *args.skip])
        configs = {n: configs[n] for n in stages}
        executor = make_executor(args.executor, args.ray_address)
        try:
            result = run_pipeline(root, run, stages, configs, preset=args.preset,
                                  on_event=_progress_printer(args.quiet), force=tuple(args.force),
                                  on_demand=on_demand_stages(stages, args.only, configs), source=record,
                                  executor=executor)
        finally:
            executor.close()
    except (ConfigError, BuildLocked, PermissionError, ValueError, ExecutorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: {e}\n(finished stages are kept as they were; fix the cause and run the same command again)",
              file=sys.stderr)
        logging.getLogger("precompute").debug("stage failure", exc_info=True)
        return 1
    except BuildCancelled as e:
        print(f"cancelled: {e}; run the same command again to resume", file=sys.stderr)
        return 130
    counts = {a: sum(1 for v in result.actions.values() if v == a)
              for a in ("ran", "skipped", "not applicable", "not needed")}
    print(f"atlas ready: {result.run_dir} ({counts['ran']} stage(s) built, {counts['skipped']} unchanged"
          + (f", {counts['not applicable']} not applicable to this survey" if counts["not applicable"] else "")
          + (f", {counts['not needed']} not needed by --only" if counts["not needed"] else "") + ")")
    if counts["not applicable"]:
        from galaxyml.atlas import read_manifest

        entries = read_manifest(result.run_dir)["stages"]
        for name in (n for n, a in result.actions.items() if a == "not applicable"):
            print(f"  {name}: not applicable: {entries.get(name, {}).get('not_applicable', '')}")
    return 0
