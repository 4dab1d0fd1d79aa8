"""Means with their uncertainty: `summarize`, the mergeable `ScoreAccumulator`, `group_by`.

Intervals (95% unless told otherwise):

- binary scores (every value 0 or 1): the Wilson score interval of the proportion. Unlike the
  t (Wald) interval it never leaves [0, 1] and is not zero-width at 0% or 100% accuracy, and
  its coverage holds for small n (Brown, Cai & DasGupta 2001, "Interval Estimation for a
  Binomial Proportion");
- any other scores: mean +- t(n-1) * stderr, Student's t with n-1 degrees of freedom.

`stderr` is always the sample standard deviation (ddof=1) over sqrt(n). With n = 0 every
field is None; with n = 1 stderr is None, and so is a t interval (a Wilson interval exists).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from evalcluster.scoring.distributions import normal_quantile, t_quantile

Interval = Literal["auto", "t", "wilson"]
MISSING_GROUP = "null"  # the group of rows whose metadata column is missing or None


@dataclass(frozen=True, slots=True)
class Summary:
    """The mean of n scores, its standard error and a confidence interval (see module doc)."""

    n: int
    mean: float | None
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    method: str | None = None  # "wilson", "t", or None when there is no interval

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


def _check(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"scores must be finite numbers, got {value!r}")
    return value


def summarize(
    values: Iterable[float | None], *, confidence: float = 0.95, interval: Interval = "auto"
) -> Summary:
    """Summarise scores; None values (unscorable rows) are left out."""
    xs = [_check(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return summary_from_moments(0, 0.0, 0.0, False, confidence=confidence)
    mean = math.fsum(xs) / n
    m2 = math.fsum((x - mean) ** 2 for x in xs)  # two passes: no cancellation
    is_binary = all(x in (0.0, 1.0) for x in xs)
    return summary_from_moments(n, mean, m2, is_binary, confidence=confidence, interval=interval)


def summary_from_moments(
    n: int,
    mean: float,
    m2: float,
    is_binary: bool,
    *,
    confidence: float = 0.95,
    interval: Interval = "auto",
) -> Summary:
    """A `Summary` from n, the mean and M2 (the sum of squared deviations from the mean)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return Summary(0, None, None, None, None, None)
    stderr = math.sqrt(max(m2, 0.0) / (n - 1) / n) if n > 1 else None
    use_wilson = interval == "wilson" or (interval == "auto" and is_binary)
    if use_wilson:
        low, high = wilson_interval(round(mean * n), n, confidence)
        return Summary(n, mean, stderr, low, high, "wilson")
    if stderr is None:
        return Summary(n, mean, None, None, None, None)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * stderr
    return Summary(n, mean, stderr, mean - half, mean + half, "t")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `n` (n >= 1), as (low, high)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    z = normal_quantile(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(slots=True)
class ScoreAccumulator:
    """Streaming n, mean and M2 of scores; shards merge theirs without keeping rows.

    Kept as (n, mean, M2) rather than (n, sum, sum of squares): the same information, but the
    variance does not come from subtracting two large, nearly equal numbers. `add` is
    Welford's update, `merge` Chan, Golub & LeVeque's pairwise combination (1979).
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    binary: bool = True  # every value so far was 0 or 1

    def add(self, value: float | None) -> None:
        """Add one score; None (unscorable) is ignored."""
        if value is None:
            return
        x = _check(value)
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        self.binary = self.binary and x in (0.0, 1.0)

    def merge(self, other: ScoreAccumulator) -> ScoreAccumulator:
        """Fold `other` into this accumulator (in place) and return it."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2, self.binary = other.n, other.mean, other.m2, other.binary
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.binary = self.binary and other.binary
        return self

    def summary(self, *, confidence: float = 0.95, interval: Interval = "auto") -> Summary:
        """The `Summary` of everything added so far."""
        return summary_from_moments(
            self.n, self.mean, self.m2, self.binary, confidence=confidence, interval=interval
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; `from_dict` restores it exactly."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreAccumulator:
        return cls(int(data["n"]), float(data["mean"]), float(data["m2"]), bool(data["binary"]))


class AccumulatorKey(NamedTuple):
    """What one accumulator counts: a target's scores on one scorer, maybe within a group."""

    target: str
    scorer: str
    group: tuple[str, str] | None = None  # (metadata column, value); None = all samples


class ScoreAccumulators:
    """Accumulators keyed by (target, scorer, group), mergeable across shards."""

    def __init__(self) -> None:
        self._by_key: dict[AccumulatorKey, ScoreAccumulator] = {}

    def add(self, key: AccumulatorKey, value: float | None) -> None:
        """Add one score under `key`."""
        self._by_key.setdefault(key, ScoreAccumulator()).add(value)

    def merge(self, other: ScoreAccumulators) -> ScoreAccumulators:
        """Fold `other` into this set (in place) and return it."""
        for key, acc in other._by_key.items():
            self._by_key.setdefault(key, ScoreAccumulator()).merge(acc)
        return self

    def __getitem__(self, key: AccumulatorKey) -> ScoreAccumulator:
        return self._by_key[key]

    def keys(self) -> list[AccumulatorKey]:
        return list(self._by_key)

    def summaries(self, *, confidence: float = 0.95) -> dict[AccumulatorKey, Summary]:
        """The summary of every key."""
        return {k: a.summary(confidence=confidence) for k, a in self._by_key.items()}


def group_key(value: Hashable | None) -> str:
    """The JSON key of a metadata value: its text, or "null" when missing."""
    return MISSING_GROUP if value is None else str(value)


def group_by(
    rows: Iterable[Mapping[str, Any]],
    by: str,
    score_column: str,
    *,
    confidence: float = 0.95,
) -> dict[str, Summary]:
    """Summaries of `score_column` per value of the metadata column `by`.

    Rows without the column (or with None) form the group "null"; rows whose score is
    None are left out (they still create their group, with n = 0).
    """
    groups: dict[str, ScoreAccumulator] = {}
    for row in rows:
        acc = groups.setdefault(group_key(row.get(by)), ScoreAccumulator())
        acc.add(row.get(score_column))
    return {k: groups[k].summary(confidence=confidence) for k in sorted(groups)}
