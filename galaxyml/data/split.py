"""The survey-level split: every galaxy is ``train``, ``val`` or ``test``, once, for every stage.

Networks train on ``train``, choose their epoch (early stopping) and any hyper-parameter on ``val``,
and are scored on ``test``. Everything computed downstream of a network trained on catalog columns
(the vote network's embeddings) is scored on the galaxies that network never trained on: ``val`` and
``test`` together, the *held-out* galaxies; a choice among many (the best of 1,024 features for a
property) is made on ``val`` and its score reported on ``test``, since choosing the best and scoring it
on the same rows is biased upward.

The split is drawn once, seeded, when the survey is built, stored as the catalog's ``split`` column
and recorded in the manifest (the ``survey`` stage's metrics), so that every stage reads the same one.
A catalog that already says which galaxies are test galaxies (a ``split`` column, or a test CSV) keeps
them, and the validation galaxies are drawn from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
SPLIT_COLUMN = "split"
MIN_SCORED = 10
"""Fewer test galaxies than this cannot give a score worth showing (an RMSE of 5 galaxies moves by
tens of percent between draws)."""


class SplitError(ValueError):
    """The split cannot be drawn or used; the message says how many galaxies each part has."""


@dataclass(frozen=True)
class Split:
    """Row indices (sorted, int64) of the train, validation and test galaxies of a survey."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def held_out(self) -> np.ndarray:
        """Validation and test galaxies: those no network of the atlas trained on."""
        return np.union1d(self.val, self.test)

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def mask(self, part: str, n: int) -> np.ndarray:
        """Boolean mask over the ``n`` galaxies of one part (``train``, ``val``, ``test``, ``held_out``)."""
        m = np.zeros(n, bool)
        m[getattr(self, part)] = True
        return m

    def labels(self, n: int) -> np.ndarray:
        """The ``n`` galaxies' labels ("train", "val", "test") as a string array."""
        out = np.full(n, "train", dtype=object)
        out[self.val], out[self.test] = "val", "test"
        return out.astype(str)

    def describe(self) -> str:
        c = self.counts()
        return f"{c['train']:,} train / {c['val']:,} validation / {c['test']:,} test galaxies"


def assign_split(catalog: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 seed: int = 0) -> pd.Series:
    """A ``split`` label for every row: the catalog's own test rows kept, the rest drawn with ``seed``.

    Without a ``split`` column, a seeded permutation gives round(test_fraction N) test and
    round(val_fraction N) validation galaxies (exact counts, so two surveys of the same size split
    alike). With one, its ``test`` rows (case-insensitive) stay test, its ``val`` / ``validation`` rows
    stay validation, and, if it names none, round(val_fraction N_train) validation galaxies are drawn
    from its other rows.

    Examples
    --------
    >>> s = assign_split(pd.DataFrame({"galaxy_id": [str(i) for i in range(10)]}), 0.1, 0.2)
    >>> s.value_counts().to_dict()
    {'train': 7, 'test': 2, 'val': 1}
    """
    if not (0.0 <= val_fraction < 0.5 and 0.0 < test_fraction < 0.9 and val_fraction + test_fraction < 0.95):
        raise SplitError(f"survey.val_fraction = {val_fraction} and survey.test_fraction = {test_fraction} must "
                         "be in [0, 0.5) and (0, 0.9) with their sum below 0.95")
    n = len(catalog)
    rng = np.random.default_rng(seed + 7919)
    labels = np.full(n, "train", dtype=object)
    if SPLIT_COLUMN in catalog:
        given = catalog[SPLIT_COLUMN].astype(str).str.strip().str.lower().to_numpy()
        labels[given == "test"] = "test"
        labels[np.isin(given, ("val", "validation", "valid"))] = "val"
        if not (labels == "val").any():
            rest = np.flatnonzero(labels == "train")
            labels[rng.permutation(rest)[: int(round(val_fraction * len(rest)))]] = "val"
    else:
        perm = rng.permutation(n)
        n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
        labels[perm[:n_test]] = "test"
        labels[perm[n_test : n_test + n_val]] = "val"
    return pd.Series(labels.astype(str), index=catalog.index, name=SPLIT_COLUMN)


def survey_split(catalog: pd.DataFrame) -> Split:
    """The :class:`Split` of a catalog from its ``split`` column; a catalog written without one (an
    atlas built before the split was recorded) gets the default seeded split."""
    labels = (catalog[SPLIT_COLUMN] if SPLIT_COLUMN in catalog else assign_split(catalog)).astype(str).to_numpy()
    unknown = set(np.unique(labels)) - set(SPLITS)
    if unknown:
        raise SplitError(f"catalog column 'split' holds {sorted(unknown)[:3]}; expected train, val or test")
    return Split(*(np.flatnonzero(labels == part).astype(np.int64) for part in SPLITS))


def check_scorable(split: Split, has_target: np.ndarray | None = None, what: str = "galaxies",
                   min_test: int = MIN_SCORED, min_train: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test rows with a target; raises :class:`SplitError` naming the counts when
    there are too few to train on or to score.

    Validation rows are optional: with fewer than 2, the caller carves its own from the training rows.
    """
    keep = (lambda rows: rows) if has_target is None else (lambda rows: rows[has_target[rows]])
    train, val, test = keep(split.train), keep(split.val), keep(split.test)
    if len(test) < min_test or len(train) < min_train:
        raise SplitError(f"{len(train)} training and {len(test)} test galaxies have {what}; at least {min_train} "
                         f"and {min_test} are needed to train and to score (add galaxies, or raise "
                         f"survey.test_fraction)")
    return train, val, test


def scoring_sample(split: Split, cap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The galaxies features are scored on: the held-out ones (validation and test splits, at most
    ``cap``, seeded), sorted, and a mask over them of those that *choose* a best feature (the validation
    galaxies; a seeded half of the held-out ones when there are fewer than 10 of those); the others
    score it."""
    rng = np.random.default_rng(seed)
    rows = split.held_out
    if len(rows) > cap:
        rows = np.sort(rng.choice(rows, cap, replace=False))
    select = np.isin(rows, split.val)
    if select.sum() < 10 or (~select).sum() < 10:
        select = np.zeros(len(rows), bool)
        select[rng.permutation(len(rows))[: len(rows) // 2]] = True
    return rows, select
