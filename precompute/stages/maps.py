"""Stage ``umap``: 2-D maps of the survey (UMAP after a PCA pre-reduction chosen by measurement) of the
embeddings and, when the TopK SAE is built, of its sparse codes; the explore page draws them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from galaxyml.data.survey import Survey
from galaxyml.maps import fit_map
from precompute.stage import StageContext, register
from precompute.stages.index import space_vectors

MAP_FILE = "map_{space}.npy"
INFO_FILE = "maps.json"


@dataclass(frozen=True)
class MapsConfig:
    """UMAP settings (McInnes et al. 2018) and the PCA sizes tried before it."""

    pca_candidates: tuple[int, ...] = (0, 16)
    """PCA components tried before UMAP (0: none); the one whose map keeps validation galaxies'
    neighbourhoods best is kept. On the demo (``python -m precompute --set umap.pca_candidates=[0,32,8]``)
    the sizes differ little (embeddings: 0.334 none, 0.339 32, 0.326 8; codes: 0.323, 0.318, 0.268), so
    two are tried."""
    n_neighbors: int = 15
    """UMAP's neighbourhood size: larger keeps more of the global layout, smaller more local detail."""
    min_dist: float = 0.1
    """UMAP's minimum distance between points on the map."""
    fit_max: int = 20000
    """Training galaxies UMAP is fitted on; every other galaxy is placed by UMAP's transform."""
    queries: int = 500
    """Validation (choice) and test (score) galaxies whose neighbourhoods are compared."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.pca_candidates or any(c < 0 for c in self.pca_candidates):
            raise ValueError("umap.pca_candidates must be a non-empty list of sizes >= 0 (0: no PCA)")
        if self.n_neighbors < 2 or not 0 <= self.min_dist <= 1 or self.fit_max < 20 or self.queries < 1:
            raise ValueError("umap: n_neighbors >= 2, 0 <= min_dist <= 1, fit_max >= 20 and queries >= 1")


@register("umap", MapsConfig, inputs=("survey", "embeddings", "sae"), optional=("sae",))
def build_maps(ctx: StageContext) -> dict:
    """Fit a 2-D UMAP map of each search space on training galaxies, place the rest, score it on test galaxies."""
    cfg: MapsConfig = ctx.cfg
    split = Survey.load(ctx.inputs["survey"]).split()
    spaces = space_vectors(ctx.inputs)
    metrics: dict = {}
    for i, (name, x) in enumerate(spaces.items()):
        def progress(step, total, message, _i=i):
            ctx.progress(_i * total + step, len(spaces) * total, f"{name}: {message}")

        result = fit_map(x, split.train, split.val, split.test, centre=name == "embeddings",
                         candidates=[c or None for c in cfg.pca_candidates], n_neighbors=cfg.n_neighbors,
                         min_dist=cfg.min_dist, fit_max=cfg.fit_max, queries=cfg.queries, seed=cfg.seed,
                         progress=progress)
        np.save(ctx.out / MAP_FILE.format(space=name), result.coords, allow_pickle=False)
        metrics[name] = result.info
    (ctx.out / INFO_FILE).write_text(json.dumps(metrics, indent=1))
    emb = metrics["embeddings"]
    return {"spaces": metrics, "pca_dims": emb["pca_dims"], "test_preservation": emb.get("test_preservation"),
            "pca2_test_preservation": emb.get("pca2_test_preservation"),
            "scored_on": "test galaxies (PCA size chosen on validation galaxies)"}
