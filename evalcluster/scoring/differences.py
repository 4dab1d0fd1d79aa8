"""Paired differences between two targets scored on the same samples.

For each sample scored by both targets, d_i = b_i - a_i (per-sample means over epochs). The
mean difference is the mean of the d_i; its standard error is the cluster-robust CR1 one of
`evalcluster.scoring.clustered` applied to the d_i (each sample its own cluster when the suite
names no `cluster` column, which is then the paired t standard error s_d / sqrt(n)), and the
interval is t(G - 1). Pairing removes the shared part of the two targets' variances:

    Var(d) = Var(a) + Var(b) - 2 rho sd(a) sd(b)

so the Pearson correlation rho of the two targets' scores is reported beside it (Miller 2024,
"Adding Error Bars to Evals", section 4). For binary scores McNemar's discordant counts (a right
and b wrong, and the reverse) and its p-value (`evalcluster.scoring.paired.mcnemar`) are given.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from evalcluster.scoring.clustered import ClusterSums
from evalcluster.scoring.paired import mcnemar


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Target b against target a on their common samples; `diff` is mean_b - mean_a."""

    a: str
    b: str
    n: int
    clusters: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    stderr: float | None  # clustered (CR1) when the suite has `cluster`, else paired t
    ci_low: float | None
    ci_high: float | None
    df: int | None
    stderr_naive: float | None  # s_d / sqrt(n), ignoring clusters
    correlation: float | None  # Pearson's r of the two targets' per-sample scores
    a_only: int | None  # binary scores: samples a got right and b wrong
    b_only: int | None
    p_value: float | None  # McNemar's, binary scores only
    p_method: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


@dataclass(slots=True)
class PairAccumulator:
    """Streaming sums for one pair of targets on one scorer; mergeable across shards.

    The co-moments are kept as (n, means, M2s, C) and merged with Chan, Golub & LeVeque's
    pairwise update, as `ScoreAccumulator` does for one variable.
    """

    diffs: ClusterSums = field(default_factory=ClusterSums)
    n: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    m2_a: float = 0.0
    m2_b: float = 0.0
    c_ab: float = 0.0
    binary: bool = True
    a_only: int = 0
    b_only: int = 0

    def add(self, a: float, b: float, cluster: Hashable | None = None) -> None:
        """Add one sample's pair of scores."""
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"scores must be finite numbers, got {a!r} and {b!r}")
        self.diffs.add(cluster, b - a)
        self.n += 1
        da = a - self.mean_a
        db = b - self.mean_b
        self.mean_a += da / self.n
        self.mean_b += db / self.n
        self.m2_a += da * (a - self.mean_a)
        self.m2_b += db * (b - self.mean_b)
        self.c_ab += da * (b - self.mean_b)
        self.binary = self.binary and a in (0.0, 1.0) and b in (0.0, 1.0)
        self.a_only += a > b
        self.b_only += b > a

    def merge(self, other: PairAccumulator) -> PairAccumulator:
        """Fold `other` into this one (in place) and return it."""
        self.diffs.merge(other.diffs)
        if other.n:
            n = self.n + other.n
            da, db = other.mean_a - self.mean_a, other.mean_b - self.mean_b
            w = self.n * other.n / n
            self.m2_a += other.m2_a + da * da * w
            self.m2_b += other.m2_b + db * db * w
            self.c_ab += other.c_ab + da * db * w
            self.mean_a += da * other.n / n
            self.mean_b += db * other.n / n
            self.n = n
        self.binary = self.binary and other.binary
        self.a_only += other.a_only
        self.b_only += other.b_only
        return self

    def result(self, a: str, b: str, *, confidence: float = 0.95) -> PairedDifference:
        """The `PairedDifference` of everything added so far."""
        s = self.diffs.summary(confidence=confidence)
        correlation = None
        if self.n > 1 and self.m2_a > 0 and self.m2_b > 0:
            correlation = max(-1.0, min(1.0, self.c_ab / math.sqrt(self.m2_a * self.m2_b)))
        binary = self.binary and self.n > 0
        p_value = p_method = None
        if binary and self.a_only + self.b_only > 0:
            p_value, p_method = mcnemar(self.a_only, self.b_only)
        empty = self.n == 0
        return PairedDifference(
            a=a,
            b=b,
            n=self.n,
            clusters=s.clusters,
            mean_a=None if empty else self.mean_a,
            mean_b=None if empty else self.mean_b,
            diff=s.mean,
            stderr=s.stderr,
            ci_low=s.ci_low,
            ci_high=s.ci_high,
            df=s.df,
            stderr_naive=s.stderr_naive,
            correlation=correlation,
            a_only=self.a_only if binary else None,
            b_only=self.b_only if binary else None,
            p_value=p_value,
            p_method=p_method,
        )


def paired_difference(
    a: Mapping[Hashable, float | None],
    b: Mapping[Hashable, float | None],
    *,
    clusters: Mapping[Hashable, Hashable | None] | None = None,
    names: tuple[str, str] = ("a", "b"),
    confidence: float = 0.95,
) -> PairedDifference:
    """Compare per-sample scores of targets `a` and `b`; samples scored by only one are left out.

    `clusters` maps a sample to its cluster (a sample missing from it is its own cluster).
    """
    acc = PairAccumulator()
    for sample, x in a.items():
        y = b.get(sample)
        if x is None or y is None:
            continue
        acc.add(x, y, None if clusters is None else clusters.get(sample))
    return acc.result(names[0], names[1], confidence=confidence)
