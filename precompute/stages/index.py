"""Stage ``index``: FAISS similarity indexes over the embeddings and over the TopK SAE's sparse codes,
with their recall@10 against exact search, single-query latency, and how well a neighbour search
retrieves galaxies that share a structure (held-out queries)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from galaxyml import index as gindex
from galaxyml.data.survey import Survey
from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE
from galaxyml.search import dense_codes, retrieval_table
from precompute.stage import StageContext, register

VERSION = 3  # 3: an index of the sparse codes, recall and latency measured, retrieval precision


@dataclass(frozen=True)
class IndexConfig:
    """Index construction and what is measured at build time."""

    large: Literal["ivf", "hnsw"] = "ivf"
    """Index above 1e5 galaxies (exact below): IVF-Flat (4 sqrt(N) lists, 4,096 from 1M) or an HNSW graph."""
    nprobe: int = 32
    """IVF lists searched per query. At 1M x 256 manifold vectors with 4,096 lists (``python bench/search.py
    --quick``, 2 cores): nprobe 16 recall@10 0.995 at p50 0.69 ms, 32: 1.000 at 0.96 ms, 64: 1.000 at 1.85 ms;
    the recall this atlas's index reaches is measured at build time."""
    shard_rows: int = 250_000
    """Rows per shard of an IVF index: the quantiser is trained once, each shard's lists filled and written
    on their own (kept in the run folder until the merge, so an interrupted build redoes only missing shards)."""
    hnsw_m: int = 32
    """Graph degree of the HNSW index."""
    measure_queries: int = 200
    """Queries drawn to measure recall@10 against exact search and the latency."""
    retrieval_queries: int = 300
    """Held-out galaxies per structure flag whose neighbours are scored (precision@10)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hnsw_m < 4 or min(self.nprobe, self.measure_queries, self.retrieval_queries, self.shard_rows) < 1:
            raise ValueError("index.hnsw_m must be >= 4; index.nprobe, measure_queries, retrieval_queries, "
                             "shard_rows >= 1")
        if self.large not in ("ivf", "hnsw"):
            raise ValueError(f"index.large must be 'ivf' or 'hnsw', got {self.large!r}")


def space_vectors(inputs: dict) -> dict[str, np.ndarray]:
    """The vectors of each search space from a stage's input folders: the embeddings, and the dense SAE
    activations when the SAE is built."""
    spaces = {"embeddings": np.load(inputs["embeddings"] / "embeddings.npy", mmap_mode="r", allow_pickle=False)}
    if "sae" in inputs:
        sae = inputs["sae"]
        n_latents = json.loads((sae / "config.json").read_text())["n_latents"]
        spaces["codes"] = dense_codes(np.load(sae / CODE_INDICES_FILE, mmap_mode="r", allow_pickle=False),
                                      np.load(sae / CODE_VALUES_FILE, mmap_mode="r", allow_pickle=False), n_latents)
    return spaces


def _sharded(ctx: StageContext, name: str, x: np.ndarray, cfg: IndexConfig) -> tuple[gindex.SimilarityIndex, list]:
    """The IVF index of one space built shard by shard by the build's executor, in the stage's shard folder
    of the run (kept across an interrupted build, removed once the stage is committed)."""
    sim, shards = gindex.build_sharded_index(x, ctx.shard_folder() / name, cfg.shard_rows, cfg.nprobe, cfg.seed,
                                             centre=name == "embeddings", run=ctx.shard_executor().map,
                                             report=lambda i, n, msg: ctx.progress(i, n, f"{name}: {msg}"))
    return sim, shards


@register("index", IndexConfig, inputs=("survey", "embeddings", "sae"), version=VERSION, optional=("sae",))
def build_index(ctx: StageContext) -> dict:
    """Index the centred embeddings and the sparse codes for cosine search; measure both."""
    cfg = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    held_out = survey.split().held_out
    metrics: dict = {"spaces": {}, "retrieval_p10": {}}
    spaces = space_vectors(ctx.inputs)
    for step, (name, x) in enumerate(spaces.items()):
        ctx.progress(step, len(spaces), f"indexing {len(x):,} {name}")
        if len(x) > gindex.EXACT_MAX_ROWS and cfg.large == "ivf":
            sim, shards = _sharded(ctx, name, x, cfg)
        else:
            sim, shards = gindex.build_index(x, hnsw_m=cfg.hnsw_m, centre=name == "embeddings", large=cfg.large,
                                             nprobe=cfg.nprobe, seed=cfg.seed), []
        info = gindex.save_index(sim, ctx.out, name)
        info["shards"] = len(shards)
        info.update(gindex.measure(sim, x, cfg.measure_queries, seed=cfg.seed))
        metrics["spaces"][name] = info
        if len(held_out):
            metrics["retrieval_p10"][name] = retrieval_table(
                lambda rows, k, _s=sim, _x=x: _s.search(np.asarray(_x[rows]), k), np.asarray(x), survey.catalog,
                held_out, max_queries=cfg.retrieval_queries, seed=cfg.seed)
    timings = ("p50_ms", "p99_ms")  # in the manifest only: the stage's files are the same on every rebuild
    (ctx.out / gindex.INFO_FILE).write_text(json.dumps(
        {name: {k: v for k, v in info.items() if k not in timings} for name, info in metrics["spaces"].items()}, indent=1))
    ctx.progress(len(spaces), len(spaces), "indexes written")
    emb = metrics["spaces"]["embeddings"]
    return {"n": emb["n"], "kind": emb["kind"], "recall_at_10": emb["recall_at_10"], "p50_ms": emb["p50_ms"],
            **metrics, "queries": "held-out galaxies (validation and test)"}
