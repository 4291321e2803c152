"""The run directory ("atlas"): manifest, atomic stage folders, and the typed loaders pages use.

Layout of ``<home>/<run>/``::

    manifest.json        finished stages: config hash, input hashes, version, files, metrics
    progress.jsonl       one JSON event per line, appended by the running build
    .lock                flock-ed by the process building this run (see precompute.lock)
    .lock.json           who holds that lock (trusted only while it is held)
    .verified.json       cache of the files' sha256 keyed on size, times and inode
    <stage>/             one folder per finished stage, renamed into place when complete
    .tmp-<stage>-<id>/   a stage being written (never read by a loader)

A stage is *ready* when the manifest lists it, its folder holds every listed file with the
listed size and sha256 (:mod:`galaxyml.integrity`; a stage whose files changed is *stale*), and
the hashes of its inputs match the stages it was built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MANIFEST = "manifest.json"
PROGRESS = "progress.jsonl"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
MANIFEST_FORMAT = 1
FEATURE_MODELS = {
    "sae": "TopK SAE", "matryoshka": "Matryoshka SAE", "pca": "PCA (±component)",
    "sfnet_metallicity": "SFNet 12+log(O/H)", "sfnet_bpt": "SFNet BPT ratios",
}
"""Stages whose features the atlas page browses, with their display names."""
EMBEDDING_FEATURE_MODELS = ("sae", "matryoshka", "pca")
"""Those fitted on the galaxy embeddings (the others are layers of their own networks)."""


EMBEDDING_SOURCES = {
    "zoobot": "Zoobot-style network trained on the Galaxy Zoo votes",
    "encoder": "astroPT-style encoder",
    "file": "embeddings file",
}


class AtlasError(RuntimeError):
    """An atlas cannot be opened or lacks what was asked; the message says what to do."""


def home() -> Path:
    """Root folder of all runs: ``$GALAXYML_HOME`` if set, else ``./runs``."""
    return Path(os.environ.get("GALAXYML_HOME") or "runs").expanduser().absolute()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write a manifest atomically with the sha256 of its own content (``sha256``), so that a change to
    it, even one that keeps it valid JSON of the same size, is caught when it is read."""
    data = json.loads(json.dumps({k: v for k, v in manifest.items() if k != "sha256"}, default=str))
    write_json_atomic(path, {**data, "sha256": _manifest_digest(data)})


def read_manifest(run_dir: Path, name: str = MANIFEST) -> dict[str, Any]:
    """Read and validate ``manifest.json`` (or the copy ``name``), its own ``sha256`` included; a missing or
    corrupt one raises :class:`AtlasError`."""
    path = run_dir / name
    if not path.is_file():
        raise AtlasError(f"{path} does not exist: this run has no finished stage yet; build it with "
                         f"`python -m precompute --run {run_dir.name}`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AtlasError(f"{path} is corrupt ({e.__class__.__name__}: {e}); rebuild the run with "
                         f"`python -m precompute --run {run_dir.name}` (finished stage folders are reused)") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
        raise AtlasError(f"{path} is not an atlas manifest (no 'stages' table); rebuild the run")
    if "sha256" in manifest and manifest["sha256"] != _manifest_digest(manifest):
        raise AtlasError(f"{path} is corrupt (its content does not match its recorded sha256); rebuild the run with "
                         f"`python -m precompute --run {run_dir.name}` (finished stage folders are checked and reused)")
    return manifest


def empty_manifest(run_name: str) -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "run": run_name, "stages": {}, "config": {}, "versions": {}}


def stage_files(folder: Path) -> dict[str, Path]:
    """Every regular file under ``folder``, keyed by its POSIX path relative to the folder."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def commit_stage_dir(run_dir: Path, stage: str, tmp_dir: Path) -> Path:
    """Rename a finished temporary stage folder into place, replacing any older one."""
    final = run_dir / stage
    old = None
    if final.exists():
        old = run_dir / f"{TMP_PREFIX}old-{stage}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(tmp_dir, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def stage_is_ready(run_dir: Path, manifest: dict[str, Any], stage: str) -> bool:
    """True when ``stage`` is listed, complete on disk, and built from the current inputs."""
    entry = manifest["stages"].get(stage)
    if not entry or entry.get("not_applicable"):
        return False
    folder = run_dir / stage
    for rel, size in entry.get("bytes", {}).items():
        f = folder / rel
        if not f.is_file() or f.stat().st_size != size:
            return False
    for dep, dep_hash in entry.get("input_hashes", {}).items():
        dep_entry = manifest["stages"].get(dep)
        if not dep_entry or dep_entry.get("hash") != dep_hash:
            return False
    return True


@dataclass(frozen=True)
class RunInfo:
    """One run folder under the home: its name, path and whether it has a readable manifest."""

    name: str
    path: Path
    has_manifest: bool
    modified: float


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Run folders under ``root`` (default :func:`home`), most recently modified first."""
    root = root or home()
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if p.is_dir() and not p.name.startswith("."):
            m = p / MANIFEST
            stamp = max((f.stat().st_mtime for f in (m, p / PROGRESS) if f.exists()), default=p.stat().st_mtime)
            runs.append(RunInfo(p.name, p, m.is_file(), stamp))
    return sorted(runs, key=lambda r: -r.modified)


class Atlas:
    """Read-only view of one run directory, with typed loaders for each stage's artifacts.

    Examples
    --------
    >>> atlas = Atlas.open(home() / "demo")  # doctest: +SKIP
    >>> atlas.ready("sae"), atlas.metrics("sae")["fvu"]  # doctest: +SKIP
    """

    def __init__(self, path: Path, manifest: dict[str, Any], verify: bool = True):
        self.path = path
        self.manifest = manifest
        self.stale: dict[str, list[str]] = {}
        """Finished stages whose files no longer match their recorded sha256, with those files: not ready."""
        if verify:
            self.verify()

    def verify(self) -> dict[str, list[str]]:
        """Check every finished stage's files against the manifest's sha256 (hashing only files that changed
        since they were last checked) and mark the stages that differ stale, so that nothing serves them."""
        from galaxyml.integrity import verify_stages  # it reads this module's hashing helpers

        self.stale = verify_stages(self.path, self.manifest)
        return self.stale

    @classmethod
    def open(cls, path: str | Path) -> "Atlas":
        path = Path(path)
        if not path.is_dir():
            raise AtlasError(f"no atlas at {path}: the folder does not exist")
        return cls(path, read_manifest(path))

    @property
    def name(self) -> str:
        return self.path.name

    def ready(self, stage: str) -> bool:
        return stage not in self.stale and stage_is_ready(self.path, self.manifest, stage)

    def ready_stages(self) -> list[str]:
        return [s for s in self.manifest["stages"] if self.ready(s)]

    def stage_dir(self, stage: str) -> Path:
        """Folder of a ready stage; raises :class:`AtlasError` naming what is missing."""
        if stage in self.stale:
            raise AtlasError(f"atlas '{self.name}': the files of stage '{stage}' changed on disk since it was built "
                             f"({', '.join(self.stale[stage][:3])}); rebuild it with "
                             f"`python -m precompute --run {self.name}`")
        if not self.ready(stage):
            raise AtlasError(f"atlas '{self.name}' has no finished '{stage}' stage yet; "
                             f"build it with `python -m precompute --run {self.name}`")
        return self.path / stage

    def metrics(self, stage: str) -> dict[str, Any]:
        return dict(self.manifest["stages"].get(stage, {}).get("metrics", {}))

    def load_npy(self, stage: str, name: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.stage_dir(stage) / name, mmap_mode="r" if mmap else None, allow_pickle=False)

    def load_json(self, stage: str, name: str) -> Any:
        return json.loads((self.stage_dir(stage) / name).read_text())

    def load_table(self, stage: str, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.stage_dir(stage) / name)

    def has_file(self, stage: str, name: str) -> bool:
        """Whether the ready stage ``stage`` wrote ``name`` (some files depend on what the data hold)."""
        return self.ready(stage) and name in self.manifest["stages"][stage].get("files", {})

    # Typed loaders -------------------------------------------------------------------------
    def survey(self):
        """The survey (images memory-mapped)."""
        from galaxyml.data.survey import Survey

        return Survey.load(self.stage_dir("survey"))

    def catalog(self) -> pd.DataFrame:
        from galaxyml.data.survey import CATALOG_FILE

        return self.load_table("survey", CATALOG_FILE)

    def split(self):
        """The survey's train / validation / test split (:class:`galaxyml.data.split.Split`)."""
        from galaxyml.data.split import survey_split

        return survey_split(self.catalog())

    def prediction_floors(self) -> dict[str, float]:
        """Per property, the scatter no model can predict from the images (mock surveys; see
        :meth:`galaxyml.data.survey.Survey.prediction_floors`)."""
        return self.survey().prediction_floors() if self.ready("survey") else {}

    def survey_meta(self) -> dict[str, Any]:
        from galaxyml.data.survey import META_FILE

        return self.load_json("survey", META_FILE).get("meta", {})

    @property
    def is_mock(self) -> bool:
        return bool(self.ready("survey") and self.survey_meta().get("is_mock"))

    def thumbnails(self) -> np.ndarray:
        """(N, H, W, 3) uint8 display thumbnails, memory-mapped."""
        return self.load_npy("thumbnails", "thumbnails.npy")

    def embeddings(self) -> np.ndarray:
        """(N, D) float32 galaxy embeddings, memory-mapped (see :meth:`embeddings_source`)."""
        return self.load_npy("embeddings", "embeddings.npy")

    def embeddings_source(self) -> str:
        """What made the embeddings, in words (for captions)."""
        source = self.metrics("embeddings").get("source", "encoder")
        return EMBEDDING_SOURCES.get(source, source)

    def feature_set(self, model: str = "sae"):
        """The :class:`~galaxyml.features.FeatureSet` of a feature model (``sae``, ...)."""
        from galaxyml.features import FeatureSet

        return FeatureSet.load(self, model)

    def predictions(self, model: str) -> pd.DataFrame:
        """Per-galaxy predictions of an SFNet stage (galaxy_id, test, has_target, true_<t>, pred_<t>),
        in survey order."""
        return self.load_table(model, "predictions.parquet")

    def _linear_head(self, stage: str, names: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        from safetensors.numpy import load_file

        w = load_file(str(self.stage_dir(stage) / "sfnet.safetensors"))
        return w["head.weight"], w["head.bias"], self.load_json(stage, "config.json")[names]

    def sfnet_head(self, model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Linear head of an SFNet stage in physical units: weights (T, F), bias (T,), target names.
        A prediction is bias + sum_j activation_j * weights[:, j]."""
        return self._linear_head(model, "targets")

    def vote_head(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Linear head of the vote network (``zoobot`` stage) on its embeddings: weights (L, D), bias
        (L,), and the vote-fraction columns it predicts (through a softmax per question)."""
        return self._linear_head("zoobot", "vote_columns")

    def decoder_directions(self, model: str) -> np.ndarray:
        """(M, D) unit decoder direction of each feature of a model fitted on the embeddings, in the
        scaled space the model was fitted in (what the atlas's nearest features compare)."""
        from galaxyml.features import decoder_directions

        if model not in EMBEDDING_FEATURE_MODELS:
            raise AtlasError(f"model '{model}' is not fitted on the embeddings (those are {EMBEDDING_FEATURE_MODELS})")
        return decoder_directions(self.stage_dir(model), model)

    def feature_directions(self, model: str) -> np.ndarray:
        """(M, D) what one unit of each feature's activation adds to an embedding, for the feature
        models fitted on the embeddings (``sae``, ``matryoshka``, ``pca``): the decoder direction times
        the model's input scale (the models see the embeddings divided by it)."""
        scale = np.asarray(self.load_json(model, "config.json")["input_scale"], np.float32)
        return self.decoder_directions(model) * scale

    def probes(self) -> pd.DataFrame:
        """Cross-validated linear-probe scores per catalog property."""
        return self.load_table("probes", "probes.parquet")

    def encoder_probes(self) -> pd.DataFrame | None:
        """The same probes of the astroPT-style encoder's embeddings, when the atlas's embeddings come
        from elsewhere (None otherwise)."""
        path = self.stage_dir("probes") / "probes_encoder.parquet"
        return pd.read_parquet(path) if path.exists() else None

    def feature_models(self) -> list[str]:
        """The feature models of :data:`FEATURE_MODELS` this atlas can show, in that order."""
        from galaxyml.features import STATS_FILE

        summarised = self.ready("features")
        return [m for m in FEATURE_MODELS if self.ready(m) and (
            (self.path / m / STATS_FILE).is_file() or (summarised and (self.path / "features" / m).is_dir()))]

    def search_spaces(self) -> list[str]:
        """The spaces the ``index`` stage indexed: ``embeddings``, and ``codes`` (TopK SAE) when built."""
        if not self.ready("index"):
            return []
        return [s for s in ("embeddings", "codes") if (self.stage_dir("index") / f"{s}.faiss").is_file()]

    def search_vectors(self, space: str = "embeddings") -> np.ndarray:
        """The vectors of a search space: the embeddings (memory-mapped) or the dense TopK SAE codes."""
        if space == "embeddings":
            return self.embeddings()
        from galaxyml.features import CODE_INDICES_FILE, CODE_VALUES_FILE
        from galaxyml.search import dense_codes

        n_latents = self.load_json("sae", "config.json")["n_latents"]
        return dense_codes(self.load_npy("sae", CODE_INDICES_FILE), self.load_npy("sae", CODE_VALUES_FILE), n_latents)

    def map_spaces(self) -> list[str]:
        """The spaces the ``umap`` stage drew a 2-D map of: ``embeddings``, and ``codes`` when the SAE is built."""
        if not self.ready("umap"):
            return []
        return [s for s in ("embeddings", "codes") if (self.stage_dir("umap") / f"map_{s}.npy").is_file()]

    def map_coords(self, space: str = "embeddings") -> np.ndarray:
        """(N, 2) float32 UMAP coordinates of every galaxy in one space (see :mod:`galaxyml.maps`)."""
        return self.load_npy("umap", f"map_{space}.npy", mmap=False)

    def forge_flows(self) -> list[str]:
        """The flows the ``forge`` stage trained (see :mod:`precompute.stages.forge`)."""
        return list(self.metrics("forge").get("flows", {})) if self.ready("forge") else []

    def forge_flow(self, kind: str):
        """A trained conditional flow of the ``forge`` stage as :class:`galaxyml.forge.conditional.ConditionalForge`."""
        from galaxyml.forge.conditional import ConditionalForge

        if kind not in self.forge_flows():
            raise AtlasError(f"atlas '{self.name}' has no '{kind}' flow (it has: {', '.join(self.forge_flows()) or 'none'})")
        return ConditionalForge.load(self.stage_dir("forge") / f"flow_{kind}")

    def forge_galaxies(self) -> dict[str, Any]:
        """Rows of the galaxies the flows were trained, validated and tested on, and the test galaxies' contexts."""
        return self.load_json("forge", "galaxies.json")

    def cluster_members(self) -> pd.DataFrame | None:
        """The cluster fields' redMaPPer members file (None when the fields came without one)."""
        from galaxyml.data.redmapper import read_members

        if not self.has_file("cluster_fields", "redmapper_members.fits"):
            return None
        return read_members(self.stage_dir("cluster_fields") / "redmapper_members.fits")

    def autoencoder(self):
        """(model, normalisation, info) of the ``autoencoder`` stage."""
        from galaxyml.models.autoencoder import load_autoencoder

        return load_autoencoder(self.stage_dir("autoencoder"))

    def similarity_index(self, space: str = "embeddings"):
        """The FAISS index over the embeddings or the sparse codes (see :mod:`galaxyml.index`)."""
        from galaxyml.index import load_index

        if space != "embeddings":
            return load_index(self.stage_dir("index"), space)

        return load_index(self.stage_dir("index"))
