"""Epochs: the variance of a mean split into between-question and within-question parts.

With k_i scored epochs of question i, its mean m_i and the n questions' grand mean the mean of
the m_i (per-question means first, then across questions), a one-way random-effects model
x_ij = mu + b_i + e_ij gives Var(m_i) = s_b**2 + s_w**2 / k_i. Method-of-moments estimates
(the ANOVA estimators; Searle, Casella & McCulloch 1992, "Variance Components", ch. 3; Miller
2024, "Adding Error Bars to Evals", section 3):

    s_w**2 = sum_i sum_j (x_ij - m_i)**2 / sum_i (k_i - 1)          within (resampling)
    s_b**2 = max(0, var(m_i) - s_w**2 * mean(1 / k_i))               between questions

where var(m_i) is the sample variance (ddof = 1) of the question means. For a balanced design
s_b**2 = (MSB - MSW) / k, the textbook formula. The stderr of the mean is sqrt(var(m_i) / n);
`stderr_double_questions` and `stderr_double_epochs` project it for twice the questions or
twice the epochs, so a user sees which buys more precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evalcluster.scoring.stats import ScoreAccumulator


@dataclass(frozen=True, slots=True)
class EpochSplit:
    """The variance components of a mean over questions scored over several epochs."""

    questions: int
    mean_epochs: float | None  # the mean k_i
    var_between: float | None  # s_b**2: how much questions differ
    var_within: float | None  # s_w**2: how much one question's epochs differ
    within_share: float | None  # share of Var(m_i) due to resampling: s_w**2 mean(1/k) / var(m)
    stderr: float | None  # sqrt(var(m_i) / n)
    stderr_double_questions: float | None
    stderr_double_epochs: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


@dataclass(slots=True)
class EpochAccumulator:
    """Streaming sums for `EpochSplit`, one question at a time; mergeable across shards."""

    means: ScoreAccumulator = field(default_factory=ScoreAccumulator)
    ss_within: float = 0.0
    df_within: int = 0
    epochs_total: int = 0
    inverse_k: float = 0.0

    def add_question(self, scores: Sequence[float]) -> None:
        """Add one question's scored epochs (an empty list is ignored)."""
        k = len(scores)
        if k == 0:
            return
        mean = math.fsum(scores) / k
        self.means.add(mean)
        self.ss_within += math.fsum((x - mean) ** 2 for x in scores)
        self.df_within += k - 1
        self.epochs_total += k
        self.inverse_k += 1.0 / k

    def merge(self, other: EpochAccumulator) -> EpochAccumulator:
        """Fold `other` into this one (in place) and return it."""
        self.means.merge(other.means)
        self.ss_within += other.ss_within
        self.df_within += other.df_within
        self.epochs_total += other.epochs_total
        self.inverse_k += other.inverse_k
        return self

    def split(self) -> EpochSplit:
        """The variance split of everything added so far (see the module docstring)."""
        n = self.means.n
        if n == 0:
            return EpochSplit(0, None, None, None, None, None, None, None)
        mean_k = self.epochs_total / n
        if n < 2 or self.df_within == 0:
            return EpochSplit(n, mean_k, None, None, None, None, None, None)
        var_means = self.means.m2 / (n - 1)
        var_within = self.ss_within / self.df_within
        resampling = var_within * self.inverse_k / n  # s_w**2 * mean(1 / k_i)
        var_between = max(0.0, var_means - resampling)
        share = min(1.0, resampling / var_means) if var_means > 0 else None
        return EpochSplit(
            questions=n,
            mean_epochs=mean_k,
            var_between=var_between,
            var_within=var_within,
            within_share=share,
            stderr=math.sqrt(var_means / n),
            stderr_double_questions=math.sqrt(var_means / (2 * n)),
            stderr_double_epochs=math.sqrt((var_between + resampling / 2.0) / n),
        )


def epoch_split(per_question: Iterable[Sequence[float | None]]) -> EpochSplit:
    """The `EpochSplit` of each question's epoch scores (None scores are left out)."""
    acc = EpochAccumulator()
    for scores in per_question:
        acc.add_question([float(x) for x in scores if x is not None])
    return acc.split()
