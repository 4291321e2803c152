"""Do the features that align best with the mock's truth act on the matching vote answer?

For each generating factor with a Galaxy Zoo answer (spiral arms, bar, merger, edge-on, artefact) and
each feature model fitted on the vote network's embeddings, takes the model's best truth-aligned
feature and prints the change of the matching predicted vote fraction over the feature's top galaxies
when the feature is removed from their embeddings (``galaxyml.effects.vote_effects``), that answer's
rank among all answers by |change|, and whether the sign agrees with the feature's direction (a
``low`` feature fires on galaxies without the factor, so it should lower the answer). An atlas whose
embeddings are not the vote network's has no such effects.

    python bench/effects.py --run demo [--home runs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxyml.atlas import EMBEDDING_FEATURE_MODELS, Atlas, home  # noqa: E402
from galaxyml.effects import has_vote_effects, vote_effects  # noqa: E402

ANSWERS = {"spiral": "has-spiral-arms_yes_fraction", "bar": "bar_strong_fraction",
           "merger": "merging_merger_fraction", "edge_on": "disk-edge-on_yes_fraction",
           "artefact": "smooth-or-featured_artifact_fraction"}
"""The vote answer that matches each generating factor."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="demo")
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()
    atlas = Atlas.open((args.home or home()) / args.run)
    models = [m for m in EMBEDDING_FEATURE_MODELS if atlas.ready(m) and has_vote_effects(atlas, m)]
    if not models:
        sys.exit(f"atlas {atlas.name}: its embeddings come from the {atlas.embeddings_source()}, not the vote "
                 "network, so its features have no vote effects")
    print(f"atlas {atlas.name}: change of the matching vote fraction when each factor's best feature is removed")
    print(f"{'model':<12}{'factor':<10}{'feature':>8}{'AUROC':>7} {'dir':>5}  {'answer':<38}{'change':>8}{'rank':>6}"
          f"{'sign':>6}")
    agree = []
    for model in models:
        fs = atlas.feature_set(model)
        if fs.truth_alignment is None:
            continue
        best = fs.truth_alignment.set_index("factor")
        for factor, answer in ANSWERS.items():
            if factor not in best.index:
                continue
            f = int(best.loc[factor, "feature"])
            effects = vote_effects(atlas, model, f, fs=fs).set_index("answer")["delta"]
            if answer not in effects.index:
                continue
            rank = list(effects.index).index(answer) + 1
            direction = best.loc[factor, "direction"]
            ok = (effects[answer] > 0) == (direction == "high")
            agree.append(ok)
            print(f"{model:<12}{factor:<10}{f:>8}{best.loc[factor, 'auroc']:>7.3f} {direction:>5}  {answer:<38}"
                  f"{effects[answer]:>+8.3f}{rank:>3}/{len(effects)}{'yes' if ok else 'no':>7}")
    print(f"sign agrees with the feature's direction in {sum(agree)} of {len(agree)}")


if __name__ == "__main__":
    main()
