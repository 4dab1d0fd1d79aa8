"""Sample-size planning for a paired comparison of two targets on the same questions.

The test is the one the run reports (`evalcluster.scoring.differences`): the mean of the
per-question differences d_i = b_i - a_i, two-sided at level alpha, with a clustered standard
error when questions share clusters. Its variance per question, for accuracies p_a and p_b
whose scores correlate with Pearson's rho (Fleiss, Levin & Paik 2003, "Statistical Methods for
Rates and Proportions", ch. 13; Miller 2024, "Adding Error Bars to Evals", section 5):

    sd_d**2 = p_a (1 - p_a) + p_b (1 - p_b) - 2 rho sqrt(p_a (1 - p_a) p_b (1 - p_b))

Epochs: a share w of each target's score variance may be resampling noise (a model sampled at
temperature > 0 answers one question differently each time), independent between the targets.
Averaging K epochs divides that part by K:

    V_within = w (p_a (1 - p_a) + p_b (1 - p_b)),   sd_d**2(K) = sd_d**2 - V_within (1 - 1/K)

Clusters of m questions whose differences have intra-cluster correlation icc inflate the
variance of the mean by the design effect (Kish 1965, "Survey Sampling", section 5.4; Donner &
Klar 2000, "Design and Analysis of Cluster Randomization Trials", ch. 5):

    deff = 1 + (m - 1) icc

The questions needed for power 1 - beta against a true difference delta (Chow, Shao & Wang
2008, "Sample Size Calculations in Clinical Research", section 3.1, the paired case):

    n = deff * ((t(1 - alpha/2, df) + t(1 - beta, df)) * sd_d(K) / delta)**2

with df = n / m - 1 (clusters - 1, the degrees of freedom of the clustered interval), solved by
iterating from the normal quantiles; and conversely the minimum detectable difference at n:

    delta = (t(1 - alpha/2, df) + t(1 - beta, df)) * sd_d(K) * sqrt(deff / n)

A pilot run's rows give p_a, p_b, rho, sd_d, the within-question variances (several epochs) and
the icc (the one-way ANOVA estimator for unequal cluster sizes, Donner & Klar 2000, eq. 5.2).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from evalcluster.scoring.distributions import normal_quantile, t_quantile
from evalcluster.scoring.epochs import epoch_split

MAX_SAMPLES = 10**9


@dataclass(frozen=True, slots=True)
class Design:
    """What the variance of one question's difference is made of, and the test's settings."""

    sd_diff: float  # sd of d_i at one epoch (of the per-question means at `pilot_epochs`)
    alpha: float = 0.05
    power: float = 0.8
    epochs: int = 1
    var_within: float = 0.0  # V_within: resampling variance of d_i at one epoch
    pilot_epochs: int = 1  # the epochs sd_diff was measured at (1 without a pilot)
    icc: float = 0.0
    cluster_size: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sd_diff) and self.sd_diff >= 0):
            raise ValueError(f"sd_diff must be a finite number >= 0, got {self.sd_diff}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.power < 1.0:
            raise ValueError(f"power must be in (0, 1), got {self.power}")
        if self.epochs < 1 or self.pilot_epochs < 1:
            raise ValueError("epochs must be at least 1")
        if not 0.0 <= self.icc <= 1.0:
            raise ValueError(f"icc must be in [0, 1], got {self.icc}")
        if not self.cluster_size >= 1.0:
            raise ValueError(f"cluster_size must be at least 1, got {self.cluster_size}")
        if not self.var_within >= 0.0:
            raise ValueError(f"var_within must be >= 0, got {self.var_within}")

    @property
    def design_effect(self) -> float:
        return 1.0 + (self.cluster_size - 1.0) * self.icc

    @property
    def variance(self) -> float:
        """sd_d**2 at the planned epochs (never below zero)."""
        between = self.sd_diff**2 - self.var_within / self.pilot_epochs
        return max(0.0, between + self.var_within / self.epochs)


def diff_sd(p_a: float, p_b: float, correlation: float) -> float:
    """sd of b_i - a_i for binary scores with accuracies p_a, p_b and correlation rho."""
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [-1, 1], got {correlation}")
    va, vb = p_a * (1 - p_a), p_b * (1 - p_b)
    return math.sqrt(max(0.0, va + vb - 2.0 * correlation * math.sqrt(va * vb)))


def _quantiles(design: Design, n: float) -> float:
    df = n / design.cluster_size - 1.0
    upper = 1.0 - design.alpha / 2.0
    if df < 1.0:
        df = 1.0
    return t_quantile(upper, df) + t_quantile(design.power, df)


def samples_needed(design: Design, delta: float) -> int:
    """Questions needed to detect a true difference `delta` (see the module docstring)."""
    if not (math.isfinite(delta) and abs(delta) >= 1e-6):
        raise ValueError(f"delta must be a number at least 1e-6 away from 0, got {delta}")
    scale = design.design_effect * design.variance / delta**2
    if scale == 0.0:
        return max(2, math.ceil(2 * design.cluster_size))
    z = normal_quantile(1.0 - design.alpha / 2.0) + normal_quantile(design.power)
    n = max(2.0, z * z * scale)
    for _ in range(50):
        if n >= MAX_SAMPLES:
            return MAX_SAMPLES
        q = _quantiles(design, n)
        updated = max(2.0, q * q * scale)
        if abs(updated - n) < 0.5:
            n = updated
            break
        n = updated
    return min(MAX_SAMPLES, math.ceil(n))


def detectable_difference(design: Design, n: int) -> float:
    """The smallest true difference detected with the design's power at `n` questions."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    return _quantiles(design, n) * math.sqrt(design.design_effect * design.variance / n)


def power_at(design: Design, n: int, delta: float) -> float:
    """The power of the two-sided test at `n` questions against a true difference `delta`
    (normal approximation of the t test's non-central distribution)."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    se = math.sqrt(design.design_effect * design.variance / n)
    if se == 0.0:
        return 1.0
    df = max(1.0, n / design.cluster_size - 1.0)
    crit = t_quantile(1.0 - design.alpha / 2.0, df)
    shift = abs(delta) / se
    phi = NormalDist().cdf
    return phi(shift - crit) + phi(-shift - crit)


@dataclass(frozen=True, slots=True)
class PilotEstimate:
    """What a pilot run says about a pair of targets on one scorer."""

    n: int
    p_a: float
    p_b: float
    diff: float
    sd_diff: float  # of the per-question means' differences, at the pilot's epochs
    correlation: float | None
    epochs: int
    var_within: float  # resampling variance of one epoch's difference (0 with one epoch)
    icc: float
    clusters: int
    cluster_size: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_pilot(
    a: Mapping[Hashable, Sequence[float]],
    b: Mapping[Hashable, Sequence[float]],
    *,
    clusters: Mapping[Hashable, Hashable | None] | None = None,
) -> PilotEstimate:
    """Estimate the planning inputs from each question's scored epochs under targets a and b.

    Only questions scored by both count. Raises ValueError when fewer than two are.
    """
    common = [k for k in a if a[k] and b.get(k)]
    if len(common) < 2:
        raise ValueError(
            f"the pilot has {len(common)} question(s) scored by both targets; at least 2 needed"
        )
    xs = [math.fsum(a[k]) / len(a[k]) for k in common]
    ys = [math.fsum(b[k]) / len(b[k]) for k in common]
    ds = [y - x for x, y in zip(xs, ys, strict=True)]
    n = len(common)
    p_a, p_b, diff = math.fsum(xs) / n, math.fsum(ys) / n, math.fsum(ds) / n
    sd = math.sqrt(math.fsum((d - diff) ** 2 for d in ds) / (n - 1))
    va = math.fsum((x - p_a) ** 2 for x in xs)
    vb = math.fsum((y - p_b) ** 2 for y in ys)
    cov = math.fsum((x - p_a) * (y - p_b) for x, y in zip(xs, ys, strict=True))
    correlation = cov / math.sqrt(va * vb) if va > 0 and vb > 0 else None
    epochs = max(max(len(a[k]), len(b[k])) for k in common)
    var_within = 0.0
    if epochs > 1:
        for per_target in (a, b):
            split = epoch_split([per_target[k] for k in common])
            var_within += split.var_within or 0.0
    labels = [None if clusters is None else clusters.get(k) for k in common]
    icc, count = anova_icc(ds, labels)
    return PilotEstimate(
        n=n,
        p_a=p_a,
        p_b=p_b,
        diff=diff,
        sd_diff=sd,
        correlation=correlation,
        epochs=epochs,
        var_within=var_within,
        icc=icc,
        clusters=count,
        cluster_size=n / count,
    )


def anova_icc(values: Sequence[float], clusters: Sequence[Hashable | None]) -> tuple[float, int]:
    """The one-way ANOVA estimate of the intra-cluster correlation (clipped to [0, 1]) and the
    number of clusters; a None cluster is a cluster of its own."""
    groups: dict[Hashable, list[float]] = {}
    for i, (value, cluster) in enumerate(zip(values, clusters, strict=True)):
        key = ("\0single", i) if cluster is None else cluster
        groups.setdefault(key, []).append(value)
    g, n = len(groups), len(values)
    if g < 2 or g == n:
        return 0.0, g
    grand = math.fsum(values) / n
    ssb = math.fsum(len(v) * (math.fsum(v) / len(v) - grand) ** 2 for v in groups.values())
    ssw = math.fsum(math.fsum((x - math.fsum(v) / len(v)) ** 2 for x in v) for v in groups.values())
    msb, msw = ssb / (g - 1), ssw / (n - g)
    m0 = (n - math.fsum(len(v) ** 2 for v in groups.values()) / n) / (g - 1)
    denominator = msb + (m0 - 1.0) * msw
    if denominator <= 0:
        return 0.0, g
    return min(1.0, max(0.0, (msb - msw) / denominator)), g
