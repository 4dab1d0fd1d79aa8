"""An anytime-valid confidence sequence for the mean paired difference of two targets' scores.

The sequence is the asymptotic confidence sequence (AsympCS) of Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences"
(Annals of Statistics, 2024; arXiv:2103.06476), eq. (2.5) there, a time-uniform analogue of
the CLT interval built on Robbins' (1970) two-sided normal-mixture boundary:

    C_t = d_t +- s_t * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

with d_t the mean of the t differences seen, s_t their standard deviation, and rho^2 tuned so
that the sequence is tightest at `tune_samples` observations (the paper's approximation):

    rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / t*

It is valid at every look at once (a run may stop whenever it decides), asymptotically; for
scores in [0, 1] the differences lie in [-1, 1] and have every moment the theory needs.
Two guards keep the first looks honest, where the asymptotics have not set in yet:

- the variance is regularised with one pseudo-observation of variance 1 (the largest a
  difference in [-1, 1] can have): s_t^2 = (sum of squared deviations + 1) / t, so that a
  handful of tied pairs (all differences 0) cannot give an interval of width zero;
- the reported interval is the running intersection of the intervals at every look, clipped
  to [-1, 1] (still a (1 - alpha) confidence sequence, and it never widens, so a decided
  verdict never contradicts a later interval).

A verdict with margin m >= 0: `b_better` when the interval lies above +m, `a_better` below -m,
`equivalent` inside [-m, +m] (only with m > 0), else `undecided`; a run that ends undecided
(samples or budget spent) reports `inconclusive`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Verdict = Literal["b_better", "a_better", "equivalent", "undecided", "inconclusive"]
DECIDED: frozenset[str] = frozenset({"b_better", "a_better", "equivalent"})
PRIOR_VARIANCE = 1.0  # one pseudo-observation of the largest variance a difference can have
MIN_SAMPLES = 2  # no interval (so no verdict) from fewer differences


def tuned_rho2(alpha: float, tune_samples: int) -> float:
    """The mixture's rho^2 making the sequence tightest near `tune_samples` observations."""
    log_inv = math.log(1.0 / alpha)
    return (2.0 * log_inv + math.log(1.0 + 2.0 * log_inv)) / max(1, tune_samples)


def boundary(t: int, alpha: float, rho2: float) -> float:
    """The half-width of the sequence at `t` observations for unit variance."""
    u = t * rho2
    return math.sqrt(2.0 * (u + 1.0) / (t * u) * math.log(math.sqrt(u + 1.0) / alpha))


def decide(lower: float, upper: float, margin: float) -> Verdict:
    """The verdict an interval [lower, upper] of mean(b - a) gives with `margin`."""
    if lower > margin:
        return "b_better"
    if upper < -margin:
        return "a_better"
    if margin > 0 and lower >= -margin and upper <= margin:
        return "equivalent"
    return "undecided"


@dataclass(frozen=True, slots=True)
class Look:
    """The sequence after one update: samples so far, mean difference, interval, verdict."""

    samples: int
    difference: float
    lower: float
    upper: float
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConfidenceSequence:
    """The running state: counts and moments of the differences, the intersected interval and
    the looks so far. Pure and serialisable (`to_dict` / `from_dict`): a resumed run that
    replays the same updates in the same order reaches the same state bit for bit."""

    alpha: float
    margin: float
    tune_samples: int
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean (Welford / Chan)
    lower: float = -1.0
    upper: float = 1.0
    verdict: Verdict = "undecided"
    decided_at: int | None = None  # index of the look that decided
    looks: list[Look] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.tune_samples < 1:
            raise ValueError(f"tune_samples must be >= 1, got {self.tune_samples}")

    @property
    def decided(self) -> bool:
        return self.verdict in DECIDED

    @property
    def rho2(self) -> float:
        return tuned_rho2(self.alpha, self.tune_samples)

    def half_width(self) -> float:
        """The unintersected half-width at the current count (inf before MIN_SAMPLES)."""
        if self.count < MIN_SAMPLES:
            return math.inf
        variance = (self.m2 + PRIOR_VARIANCE) / self.count
        return math.sqrt(variance) * boundary(self.count, self.alpha, self.rho2)

    def update(self, differences: Iterable[float]) -> Look:
        """Add a batch of differences (each in [-1, 1]) and look once. The first look that
        decides fixes the verdict; later looks still narrow the interval."""
        values = np.fromiter(differences, dtype=np.float64)
        if values.size and (not np.all(np.isfinite(values)) or np.max(np.abs(values)) > 1.0):
            raise ValueError("paired differences must be finite and within [-1, 1]")
        if values.size:
            self._merge(values)
        if self.count >= MIN_SAMPLES:
            half = self.half_width()
            self.lower = max(self.lower, self.mean - half)
            self.upper = min(self.upper, self.mean + half)
        current = decide(self.lower, self.upper, self.margin) if self.count else "undecided"
        if not self.decided and current in DECIDED:
            self.verdict = current
            self.decided_at = len(self.looks)
        look = Look(self.count, self.mean, self.lower, self.upper, current)
        self.looks.append(look)
        return look

    def _merge(self, values: np.ndarray) -> None:
        # Chan, Golub and LeVeque's pairwise update: the batch's own mean and M2, merged.
        n_b = int(values.size)
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def final_verdict(self) -> Verdict:
        """The verdict of a run that stops here: `inconclusive` when still undecided."""
        return self.verdict if self.decided else "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["looks"] = [look.to_dict() for look in self.looks]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceSequence:
        looks = [Look(**look) for look in data.get("looks", [])]
        fields = {k: v for k, v in data.items() if k != "looks"}
        return cls(**fields, looks=looks)
