"""Zoobot-style morphology network: a CNN trained to predict Galaxy Zoo volunteers' vote fractions,
whose penultimate activations serve as general-purpose galaxy embeddings (Walmsley et al. 2022,
"Practical galaxy morphology tools from deep supervised representation learning", MNRAS 513, 1581;
the embeddings of the Euclid Q1 feature atlas come from such a network).

The network is the residual CNN of :mod:`galaxyml.models.sfnet` without a top-k. Each decision-tree
question q of the survey (``smooth-or-featured``, ``bar``, ...) gets a softmax over its answers, and
the loss is the multinomial negative log-likelihood of the volunteers' answers, written per galaxy as
the Kullback-Leibler divergence from the observed fractions f to the predicted p,

    L = 1/Q sum_q sum_a f_qa (log f_qa - log p_qa),

which is Zoobot's likelihood with the votes' fractions in place of their counts (Zoobot uses a
Dirichlet-multinomial over counts; catalogs of fractions alone carry no counts). A question with a
single answer column (``merging_merger_fraction``) is binary: its complement is the other answer.
Questions a galaxy was not asked (missing fractions) add nothing to its loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from galaxyml.data.survey import FRACTION_SUFFIX, is_vote_column



@dataclass(frozen=True)
class VoteSchema:
    """The decision tree's questions, read from Galaxy Zoo column names ``<question>_<answer>_fraction``."""

    columns: tuple[str, ...]
    """The vote-fraction columns, in catalog order."""
    questions: tuple[str, ...]
    """One name per question."""
    slices: tuple[tuple[int, int], ...]
    """Each question's [start, stop) range of logits (its answers, plus a complement if binary)."""
    column_logit: tuple[int, ...]
    """For each column, its logit."""
    n_answers: tuple[int, ...]
    """Each question's number of columns (1 for a binary question)."""

    @classmethod
    def from_columns(cls, columns: Sequence[str]) -> VoteSchema:
        """Group ``<question>_<answer>_fraction`` columns by question (order of first appearance)."""
        groups: dict[str, list[str]] = {}
        for col in columns:
            if not is_vote_column(col):
                raise ValueError(f"vote column {col!r} is not named <question>_<answer>_fraction")
            groups.setdefault(col[: -len(FRACTION_SUFFIX)].rsplit("_", 1)[0], []).append(col)
        if not groups:
            raise ValueError("no vote-fraction columns (named <question>_<answer>_fraction)")
        ordered, slices, column_logit, start = [], [], {}, 0
        for cols in groups.values():
            for i, col in enumerate(cols):
                ordered.append(col)
                column_logit[col] = start + i
            n = len(cols) + (len(cols) == 1)  # a binary question's complement
            slices.append((start, start + n))
            start += n
        return cls(tuple(ordered), tuple(groups), tuple(slices), tuple(column_logit[c] for c in ordered),
                   tuple(len(cols) for cols in groups.values()))

    @property
    def n_logits(self) -> int:
        return self.slices[-1][1]

    def targets(self, fractions: np.ndarray) -> np.ndarray:
        """(N, columns) vote fractions -> (N, n_logits) per-question answer distributions.

        A binary question gets its complement; each question's fractions are renormalised to sum to
        one; a question with a missing (non-finite) or all-zero answer is NaN (not asked)."""
        f = np.asarray(fractions, np.float64)
        if f.shape[1] != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} vote columns, got {f.shape[1]}")
        out = np.full((len(f), self.n_logits), np.nan)
        col = 0
        for (a, b), n_cols in zip(self.slices, self.n_answers):
            block = f[:, col : col + n_cols]
            if n_cols == 1:
                block = np.column_stack([block[:, 0], 1.0 - block[:, 0]])
            block = np.clip(block, 0.0, 1.0)
            total = block.sum(1, keepdims=True)
            ok = np.isfinite(total[:, 0]) & (total[:, 0] > 0)
            out[ok, a:b] = block[ok] / total[ok]
            col += n_cols
        return out.astype(np.float32)

    def fractions(self, logits: Tensor | np.ndarray) -> np.ndarray:
        """(N, n_logits) logits -> (N, columns) predicted vote fractions (softmax per question)."""
        z = torch.as_tensor(logits, dtype=torch.float32)
        p = torch.cat([z[:, a:b].softmax(1) for a, b in self.slices], dim=1)
        return p[:, list(self.column_logit)].numpy()


def vote_loss(schema: VoteSchema):
    """The loss of the module docstring, as a function (logits (B, n_logits), targets (B, n_logits))
    -> mean over galaxies and asked questions; targets come from :meth:`VoteSchema.targets`."""

    def loss(logits: Tensor, target: Tensor) -> Tensor:
        total = logits.new_zeros(())
        asked = logits.new_zeros(())
        for a, b in schema.slices:
            t = target[:, a:b]
            ok = torch.isfinite(t[:, 0])
            t = torch.where(ok[:, None], t, torch.zeros_like(t))
            log_p = logits[:, a:b].log_softmax(1)
            kl = (torch.xlogy(t, t) - t * log_p).sum(1)
            total = total + (kl * ok).sum()
            asked = asked + ok.sum()
        return total / asked.clamp_min(1)

    return loss
