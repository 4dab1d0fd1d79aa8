"""Cluster-robust standard errors of a mean (CR1), with the naive one beside them.

Scores x_i (i = 1..n) fall in G clusters (questions sharing a passage, a document, a
template). Scores in one cluster are correlated, so the naive s / sqrt(n) understates the
uncertainty of the mean. With x̄ the mean and S_g = sum over cluster g of (x_i - x̄):

    V_CR1 = G / (G - 1) * sum_g S_g**2 / n**2,    stderr = sqrt(V_CR1)

(Liang & Zeger 1986; Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust
Inference", sections IIB and VIC). The G / (G - 1) factor is the CR1 small-sample correction for
a mean; with every score its own cluster it makes V_CR1 exactly s**2 / n (ddof = 1), the naive
variance.

The interval uses Student's t on G - 1 degrees of freedom:

- any scores: x̄ +- t(G - 1) * stderr (method ``cr1_t``);
- binary scores (every value 0 or 1): the Wilson interval at the effective sample size
  n_eff = x̄ (1 - x̄) / stderr**2 (at most n), with t(G - 1) in place of z (method
  ``cr1_wilson``; Korn & Graubard 1998, "Confidence intervals for proportions with small
  expected number of positive counts estimated from survey data", Survey Methodology 24). Like
  the naive Wilson interval it stays in [0, 1]; in benchmarks/stats.py it covers closer to 95%
  than the symmetric t interval when clusters make the proportion's distribution skewed.

The design effect is (stderr / stderr_naive)**2: how many times more samples the clustered data
needs for the precision independent samples would give (Kish 1965, "Survey Sampling").

`ClusterSums` keeps one (count, sum) per cluster, so shards merge theirs without keeping rows.
A score whose cluster is unknown (None) is its own cluster: nothing says it shares anything.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from evalcluster.scoring.distributions import t_quantile
from evalcluster.scoring.stats import ScoreAccumulator


@dataclass(frozen=True, slots=True)
class ClusteredSummary:
    """A mean with its cluster-robust (CR1) standard error and t(G-1) interval."""

    n: int
    clusters: int
    mean: float | None
    stderr: float | None  # CR1; None with fewer than two clusters
    ci_low: float | None
    ci_high: float | None
    df: int | None  # clusters - 1
    stderr_naive: float | None  # s / sqrt(n), as if every score were independent
    design_effect: float | None  # (stderr / stderr_naive)**2
    method: str | None = None  # "cr1_t", "cr1_wilson", or None when there is no interval

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


@dataclass(slots=True)
class ClusterSums:
    """Streaming per-cluster counts and sums of scores, mergeable across shards."""

    counts: dict[Hashable, int] = field(default_factory=dict)
    sums: dict[Hashable, float] = field(default_factory=dict)
    naive: ScoreAccumulator = field(default_factory=ScoreAccumulator)
    _singletons: int = 0

    def add(self, cluster: Hashable | None, value: float | None) -> None:
        """Add one score in `cluster`; a None score is ignored, a None cluster is its own."""
        if value is None:
            return
        self.naive.add(value)
        if cluster is None:
            self._singletons += 1
            cluster = ("\0singleton", self._singletons, id(self))
        self.counts[cluster] = self.counts.get(cluster, 0) + 1
        self.sums[cluster] = self.sums.get(cluster, 0.0) + float(value)

    def merge(self, other: ClusterSums) -> ClusterSums:
        """Fold `other` into this one (in place) and return it."""
        for cluster, count in other.counts.items():
            self.counts[cluster] = self.counts.get(cluster, 0) + count
            self.sums[cluster] = self.sums.get(cluster, 0.0) + other.sums[cluster]
        self.naive.merge(other.naive)
        return self

    def summary(self, *, confidence: float = 0.95) -> ClusteredSummary:
        """The clustered summary of everything added so far."""
        return clustered_from_sums(
            list(self.counts.values()),
            [self.sums[c] for c in self.counts],
            naive=self.naive,
            confidence=confidence,
        )


def clustered_mean(
    values: Iterable[float | None],
    clusters: Iterable[Hashable | None],
    *,
    confidence: float = 0.95,
) -> ClusteredSummary:
    """The clustered summary of `values`, the i-th in cluster `clusters[i]`; None scores skipped."""
    sums = ClusterSums()
    for value, cluster in zip(values, clusters, strict=True):
        sums.add(cluster, value)
    return sums.summary(confidence=confidence)


def clustered_from_sums(
    counts: list[int],
    sums: list[float],
    *,
    naive: ScoreAccumulator,
    confidence: float = 0.95,
) -> ClusteredSummary:
    """The CR1 summary from each cluster's count and sum (see the module docstring)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = sum(counts)
    g = len(counts)
    if n == 0:
        return ClusteredSummary(0, 0, None, None, None, None, None, None, None)
    mean = math.fsum(sums) / n
    naive_se = math.sqrt(naive.m2 / (n - 1) / n) if n > 1 else None
    if g < 2:
        return ClusteredSummary(n, g, mean, None, None, None, None, naive_se, None)
    meat = math.fsum((s - c * mean) ** 2 for c, s in zip(counts, sums, strict=True))
    se = math.sqrt(g / (g - 1) * meat) / n
    t = t_quantile(0.5 + confidence / 2.0, g - 1)
    deff = (se / naive_se) ** 2 if naive_se else None
    if naive.binary:
        n_eff = min(float(n), mean * (1.0 - mean) / se**2) if se > 0 else float(n)
        low, high = wilson_bounds(mean, n_eff, t)
        return ClusteredSummary(n, g, mean, se, low, high, g - 1, naive_se, deff, "cr1_wilson")
    low, high = mean - t * se, mean + t * se
    return ClusteredSummary(n, g, mean, se, low, high, g - 1, naive_se, deff, "cr1_t")


def wilson_bounds(p: float, n: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion `p` at a (possibly fractional) size `n`."""
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(max(0.0, p * (1.0 - p) / n + z2n / (4.0 * n)))
    return max(0.0, centre - half), min(1.0, centre + half)
