"""What a feature does to the vote network's answers.

When an atlas's embeddings are the penultimate activations of its vote network (the ``zoobot``
stage), the network's head reads them directly, so each feature of a model fitted on those
embeddings (TopK SAE, Matryoshka SAE, PCA) can be removed from a galaxy's embedding and the
predicted vote fractions read again (:func:`galaxyml.interpret.ablation_effects`). The mean change
over the feature's top galaxies says which answers the feature raises or lowers: a causal
counterpart to its correlations with the catalog. The galaxies are the feature's strongest among the
held-out ones (validation and test splits): the vote network never trained on them, so its answers
there are not its memory of their votes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from galaxyml.atlas import EMBEDDING_FEATURE_MODELS, Atlas
from galaxyml.features import FeatureSet
from galaxyml.interpret import ablation_effects


def has_vote_effects(atlas: Atlas, model: str) -> bool:
    """Whether ``model``'s features can be read through the vote network: a model fitted on the
    embeddings, which came from the atlas's own vote network."""
    return (model in EMBEDDING_FEATURE_MODELS and atlas.ready("zoobot") and atlas.ready("embeddings")
            and atlas.metrics("embeddings").get("source") == "zoobot")


def vote_predictor(atlas: Atlas) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    """(n, D) embeddings -> (n, columns) predicted vote fractions, and the column names."""
    from galaxyml.models.zoobot import VoteSchema

    weights, bias, columns = atlas.vote_head()
    schema = VoteSchema.from_columns(columns)

    def predict(z: np.ndarray) -> np.ndarray:
        return schema.fractions(z @ weights.T + bias)

    return predict, list(schema.columns)


def held_out_top(fs: FeatureSet, feature: int, held_out: np.ndarray, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` held-out galaxies (row numbers among ``held_out``) on which ``feature`` is strongest, and
    their activations (strongest first; only active galaxies)."""
    acts = fs.activations(feature)[held_out]
    order = np.argsort(-acts, kind="stable")[:n]
    order = order[acts[order] > 0]
    return held_out[order], acts[order]


def vote_effects(atlas: Atlas, model: str, feature: int, fs: FeatureSet | None = None,
                 directions: np.ndarray | None = None,
                 predictor: tuple[Callable[[np.ndarray], np.ndarray], list[str]] | None = None,
                 held_out: np.ndarray | None = None) -> pd.DataFrame:
    """Mean change of every predicted vote fraction over the feature's top held-out galaxies caused by
    the feature: the predictions with it minus those with it removed from their embeddings (columns
    ``answer``, ``delta``; strongest first). A caller that caches them may pass the model's
    :class:`FeatureSet`, its :meth:`Atlas.feature_directions`, the :func:`vote_predictor` and the
    held-out rows (:meth:`Atlas.split`)."""
    if not has_vote_effects(atlas, model):
        raise ValueError(f"the features of '{model}' are not read by this atlas's vote network (its embeddings "
                         f"come from the {atlas.embeddings_source()})")
    held_out = atlas.split().held_out if held_out is None else held_out
    galaxies, acts = held_out_top(fs or atlas.feature_set(model), feature, held_out)
    predict, columns = predictor or vote_predictor(atlas)
    d = (atlas.feature_directions(model) if directions is None else directions)[feature]
    if not len(galaxies):
        delta = np.zeros(len(columns))
    else:
        rows = np.sort(galaxies)
        order = np.argsort(galaxies)
        z = np.asarray(atlas.embeddings()[rows])
        delta = ablation_effects(z, acts[order], d, predict)
    table = pd.DataFrame({"answer": columns, "delta": delta})
    return table.reindex(table["delta"].abs().sort_values(ascending=False).index).reset_index(drop=True)
