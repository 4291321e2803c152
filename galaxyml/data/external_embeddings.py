"""Embeddings computed elsewhere (Zoobot, astroPT, ...) aligned to a survey by ``galaxy_id``.

Accepted files:

- parquet with a ``galaxy_id`` column (or the named id column) and either one list-valued column of
  vectors or numeric columns (every numeric column except the id is a dimension);
- npy of shape (N, D) with a sibling ``<stem>.ids.txt`` (one galaxy_id per line) or, when the row
  count equals the survey's, in the survey's order.

Rows are returned in the survey's order (rows for galaxies outside the survey are ignored); a survey
galaxy without an embedding, a row with NaN or inf, or a repeated id is an error naming the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class EmbeddingsError(ValueError):
    """External embeddings cannot be used; the message names the file and the problem."""


def _read(path: Path, id_column: str, n_survey: int) -> tuple[np.ndarray, np.ndarray | None]:
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as e:
            raise EmbeddingsError(f"cannot read {path}: {e}") from e
        if id_column not in df:
            raise EmbeddingsError(f"{path} has no column '{id_column}' (found: {', '.join(map(str, df.columns[:8]))}); "
                                  f"rename the id column or set embeddings.id_column")
        ids = df[id_column].astype(str).to_numpy()
        rest = df.drop(columns=[id_column])
        vector_cols = [c for c in rest.columns if rest[c].dtype == object]
        if len(vector_cols) == 1:
            x = np.stack(rest[vector_cols[0]].to_numpy()).astype(np.float32)
        else:
            numeric = rest.select_dtypes("number")
            if numeric.shape[1] == 0:
                raise EmbeddingsError(f"{path} has no embedding columns besides '{id_column}'")
            x = numeric.to_numpy(np.float32)
        return x, ids
    if path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EmbeddingsError(f"cannot read {path}: {e}") from e
        if x.ndim != 2:
            raise EmbeddingsError(f"{path} holds an array of shape {x.shape}; expected (galaxies, dimensions)")
        ids_file = path.with_suffix(".ids.txt")
        if ids_file.is_file():
            return x.astype(np.float32), np.array(ids_file.read_text().split())
        if len(x) != n_survey:
            raise EmbeddingsError(f"{path} has {len(x)} rows but the survey has {n_survey} galaxies, and there is no "
                                  f"{ids_file.name} naming the galaxy of each row")
        return x.astype(np.float32), None
    raise EmbeddingsError(f"{path}: embeddings must be a .parquet or .npy file")


def load_aligned(path: str | Path, galaxy_ids: pd.Series | np.ndarray, id_column: str = "galaxy_id") -> np.ndarray:
    """(N, D) float32 embeddings in the order of ``galaxy_ids``.

    Raises
    ------
    EmbeddingsError
        Missing file or columns, non-finite rows, galaxies without embeddings, duplicated ids.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsError(f"embeddings file {path} does not exist")
    wanted = np.asarray(galaxy_ids, dtype=str)
    x, ids = _read(path, id_column, len(wanted))
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        where = ids[bad][:3] if ids is not None else np.nonzero(bad)[0][:3]
        raise EmbeddingsError(f"{path} has {int(bad.sum())} rows with NaN or inf (e.g. {', '.join(map(str, where))}); "
                              f"drop or recompute them")
    if ids is None:
        return np.ascontiguousarray(x)
    if len(set(ids)) != len(ids):
        raise EmbeddingsError(f"{path} lists some galaxy_id more than once")
    position = pd.Series(np.arange(len(ids)), index=ids)
    missing = ~pd.Index(wanted).isin(position.index)
    if missing.any():
        raise EmbeddingsError(f"{int(missing.sum())} of {len(wanted)} survey galaxies have no embedding in {path} "
                              f"(e.g. {', '.join(wanted[missing][:3])}); galaxy_id values must match the catalog's")
    return np.ascontiguousarray(x[position.loc[wanted].to_numpy()])
