"""pass@k: the chance that at least one of k attempts passes, from n >= k attempts per sample.

The unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
Code", eq. 1): with c passing attempts out of n, pass@k = 1 - C(n-c, k) / C(n, k). It is
computed in exact rationals, so it does not overflow or cancel for any n a run can have.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from evalcluster.scoring.stats import Summary, summarize


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one sample with `c` passes out of `n` attempts (1 <= k <= n)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0  # every draw of k attempts contains a pass
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@dataclass(frozen=True, slots=True)
class PassAtK:
    """Mean pass@k over samples; `summary.n` samples had at least k scored attempts."""

    k: int
    summary: Summary
    skipped: int  # samples with fewer than k scored attempts (errors leave attempts out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: k, skipped and the summary's fields."""
        return {"k": self.k, "skipped": self.skipped, **self.summary.to_dict()}


def mean_pass_at_k(
    scores: Mapping[Hashable, Sequence[float | None]],
    k: int,
    *,
    threshold: float = 1.0,
    confidence: float = 0.95,
) -> PassAtK:
    """Mean pass@k across samples from each sample's per-epoch scores.

    An attempt passes when its score is >= `threshold`. None scores (the attempt errored or
    could not be scored) are not attempts; a sample with fewer than k attempts is skipped.
    The interval is over samples (see `summarize`).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_sample: list[float] = []
    skipped = 0
    for attempts in scores.values():
        scored = [s for s in attempts if s is not None]
        if len(scored) < k:
            skipped += 1
            continue
        passes = sum(1 for s in scored if s >= threshold)
        per_sample.append(pass_at_k(len(scored), passes, k))
    return PassAtK(k, summarize(per_sample, confidence=confidence), skipped)
