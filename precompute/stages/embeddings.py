"""Stage ``embeddings``: the galaxy embeddings the sparse-feature suite, the probes and the similarity
index read: the Zoobot-style network's (when the catalog has Galaxy Zoo votes), the astroPT-style
encoder's (streamed into an npy memmap), or a file of embeddings made elsewhere."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from galaxyml.atlas import sha256_file
from galaxyml.data.external_embeddings import load_aligned
from galaxyml.data.survey import Survey
from galaxyml.models.encoder import CONFIG_FILE as ENCODER_CONFIG
from galaxyml.models.encoder import load_encoder, patch_light
from precompute.shards import run_sharded, write_npy_atomic
from precompute.stage import StageContext, register
from precompute.stages.zoobot import EMBEDDINGS_FILE as ZOOBOT_EMBEDDINGS

EMBEDDINGS_FILE = "embeddings.npy"
SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class EmbeddingsConfig:
    """How the survey is encoded: by the trained encoder, or from a file of embeddings made elsewhere."""

    source: Literal["auto", "zoobot", "encoder", "file"] = "auto"
    """``zoobot``: the penultimate activations of the ``zoobot`` stage's vote-trained network;
    ``encoder``: the astroPT-style encoder of this atlas; ``file``: precomputed embeddings at ``path``;
    ``auto``: zoobot when the catalog has vote fractions, else encoder. Measured on the demo atlas (the
    ``features`` stage's truth alignment), SAE features of the zoobot embeddings align far better with the
    mock's truth (spiral arms 0.96 against 0.67 AUROC) than those of the encoder, whose embeddings have
    an effective rank of about 4 (``python bench/embeddings.py --run demo``). More galaxies and epochs do
    not close the gap: on the ``full`` preset's 20,000 galaxies with 30 encoder epochs (on a GPU), logistic
    probes of the encoder's embeddings reach bar 0.70 and ring 0.69 AUROC, against 0.99 and 0.82 for the
    vote network's (32 epochs), and the best SAE feature bar 0.55, ring 0.58."""
    path: str = ""
    """With source = file: a .parquet (galaxy_id + vector) or .npy (+ .ids.txt) file. A rerun notices
    when the file changes (size or modification time) and recomputes the stage."""
    id_column: str = "galaxy_id"
    """With source = file: the id column of a parquet file."""
    pooling: Literal["light", "mean"] = "light"
    """Pool the encoder's final states over patches weighted by their light (``light``, see
    ``galaxyml.models.encoder.patch_light``) or with a plain mean (``mean``, as astroPT)."""
    batch_size: int = 256
    """Galaxies encoded per batch."""
    shard_rows: int = 65_536
    """Galaxies per shard task of the encoder (``--executor``): each shard is written on its own, so an
    interrupted build redoes only missing shards and a cluster encodes shards in parallel."""
    threads: int = 1
    """CPU threads per shard task. Fixed, so that the local and Ray executors, whose workers get one CPU
    each, compute the same floating-point sums and write identical files."""

    def input_files(self) -> list[str]:
        """The embeddings file read with source = file (a change to it recomputes the stage)."""
        if self.source != "file":
            return []
        return [self.path, str(Path(self.path).with_suffix(".ids.txt"))] if self.path.endswith(".npy") else [self.path]

    def __post_init__(self) -> None:
        if min(self.batch_size, self.shard_rows, self.threads) < 1:
            raise ValueError("embeddings.batch_size, shard_rows and threads must be >= 1")
        if self.source not in ("auto", "zoobot", "encoder", "file"):
            raise ValueError(f"embeddings.source must be 'auto', 'zoobot', 'encoder' or 'file', got {self.source!r}")
        if self.pooling not in ("light", "mean"):
            raise ValueError(f"embeddings.pooling must be 'light' or 'mean', got {self.pooling!r}")
        if self.source == "file" and not self.path:
            raise ValueError("embeddings.source = 'file' needs embeddings.path")


def resolved_source(cfg: EmbeddingsConfig, available: set[str] | dict) -> str:
    """The source ``auto`` stands for: zoobot when that stage was applicable (the catalog has votes)."""
    if cfg.source == "auto":
        return "zoobot" if "zoobot" in available else "encoder"
    return cfg.source


def _reads(cfg: EmbeddingsConfig, built: set[str]) -> set[str]:
    """The inputs the stage reads: the encoder only when it makes the embeddings (it is built later otherwise)."""
    return {"survey", resolved_source(cfg, built)}


@register("embeddings", EmbeddingsConfig, inputs=("survey", "encoder", "zoobot"), version=5,
          optional=("zoobot", "encoder"), reads=_reads)
def embed_survey(ctx: StageContext) -> dict:
    """Galaxy embeddings: the Zoobot-style network's, the encoder's (pooled over patches) or a file's."""
    metrics = _embed(ctx)
    (ctx.out / SOURCE_FILE).write_text(json.dumps({"source": metrics["source"]}))  # what later stages may ask
    return metrics


def embeddings_source(folder: Path) -> str:
    """What made the embeddings of a finished ``embeddings`` stage: zoobot, encoder or file."""
    return json.loads((folder / SOURCE_FILE).read_text())["source"]


def _embed(ctx: StageContext) -> dict:
    survey = Survey.load(ctx.inputs["survey"])
    source = resolved_source(ctx.cfg, ctx.inputs)
    if source == "file":
        x = load_aligned(Path(ctx.cfg.path).expanduser(), survey.catalog["galaxy_id"], ctx.cfg.id_column)
        np.save(ctx.out / EMBEDDINGS_FILE, x, allow_pickle=False)
        return {"n": len(x), "dim": int(x.shape[1]), "source": "file", "file_sha256": sha256_file(Path(ctx.cfg.path))}
    if source == "zoobot":
        if "zoobot" not in ctx.inputs:
            raise ValueError("embeddings.source = 'zoobot' but the zoobot stage was not applicable "
                             "(the catalog has no Galaxy Zoo vote fractions); use 'encoder' or 'auto'")
        shutil.copyfile(ctx.inputs["zoobot"] / ZOOBOT_EMBEDDINGS, ctx.out / EMBEDDINGS_FILE)
        x = np.load(ctx.out / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
        return {"n": int(len(x)), "dim": int(x.shape[1]), "source": "zoobot"}
    if "encoder" not in ctx.inputs:
        raise ValueError("the embeddings come from the encoder here (the catalog has no vote fractions, or "
                         "embeddings.source = 'encoder'), but the encoder stage was left out (--skip encoder)")
    cfg, executor = ctx.cfg, ctx.shard_executor()
    dim = int(json.loads((ctx.inputs["encoder"] / ENCODER_CONFIG).read_text())["model"]["n_embd"])
    shards = run_sharded(executor, encode_shard,
                         lambda start, stop, path: (str(ctx.inputs["encoder"]), str(ctx.inputs["survey"]), cfg.pooling,
                                                    cfg.batch_size, cfg.threads, start, stop, str(path)),
                         len(survey), dim, cfg.shard_rows, ctx.shard_folder(), ctx.out / EMBEDDINGS_FILE, ctx.progress)
    out = np.load(ctx.out / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
    if not np.isfinite(out).all():
        raise FloatingPointError("the encoder produced non-finite embeddings; retrain with a lower encoder.lr")
    return {"n": len(out), "dim": dim, "source": "encoder", "pooling": cfg.pooling, "executor": executor.name,
            "shards": shards}


def encode_shard(encoder_dir: str, survey_dir: str, pooling: str, batch_size: int, threads: int, start: int,
                 stop: int, path: str) -> dict:
    """One shard task: galaxies [start, stop) encoded with ``threads`` CPU threads and written atomically to
    ``path`` (runs in this process or on a Ray worker; plain arguments, files in and out)."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    x = encode_survey(Path(encoder_dir), Survey.load(Path(survey_dir)), pooling, batch_size, lambda *a: None,
                      rows=np.arange(start, stop), check=False)
    write_npy_atomic(Path(path), x)
    return {"start": start, "stop": stop, "seconds": time.perf_counter() - t0}


def encode_survey(encoder_dir: Path, survey: Survey, pooling: str, batch_size: int,
                  progress: Callable[[int, int, str], None], path: Path | None = None,
                  rows: np.ndarray | None = None, check: bool = True) -> np.ndarray:
    """The encoder's final states of every galaxy (or of the sorted ``rows``), pooled over patches
    (``light`` or ``mean``), streamed into an npy memmap at ``path`` (or an array in memory without one)."""
    model, norm = load_encoder(encoder_dir)
    n = len(survey) if rows is None else len(rows)
    shape = (n, model.cfg.n_embd)
    if path:
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    else:
        out = np.empty(shape, np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            flux = np.asarray(survey.images[start:stop] if rows is None else survey.images[rows[start:stop]])
            weights = patch_light(flux, model.cfg.patch_size, model.order.numpy()) if pooling == "light" else None
            out[start:stop] = model.embed(norm(flux), weights).numpy()
            progress(stop, n, f"{stop:,}/{n:,} galaxies encoded")
    if path:
        out.flush()
    if check and not np.isfinite(out).all():
        raise FloatingPointError("the encoder produced non-finite embeddings; retrain with a lower encoder.lr")
    return out
