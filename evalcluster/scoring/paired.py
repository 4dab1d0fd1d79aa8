"""Paired comparison of two runs scored on the same samples.

- Binary scores (every paired value 0 or 1): McNemar's test on the discordant pairs, exact
  (two-sided binomial test with p = 1/2) when there are fewer than `exact_below` (25) of them,
  otherwise the chi-square statistic with Edwards' continuity correction. The interval of the
  difference in accuracy is the t interval of the paired differences.
- Any other scores: a seeded paired bootstrap of the mean difference. The interval is the
  bootstrap percentile interval; the two-sided p-value is the share of resampled means of the
  differences, re-centred on zero (the null), at least as far from zero as the observed mean,
  computed as (1 + count) / (1 + resamples) so it is never exactly zero.

Only samples scored in both runs count; the others are reported as dropped.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from evalcluster.scoring.distributions import binomial_cdf_half, chi2_sf_1df
from evalcluster.scoring.stats import summarize

EXACT_BELOW = 25
_CHUNK_ELEMENTS = 2_000_000  # bootstrap draws per numpy batch, to bound memory


@dataclass(frozen=True, slots=True)
class Comparison:
    """Run B against run A on their common samples. `diff` is mean_b - mean_a."""

    n: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str  # "mcnemar_exact", "mcnemar_chi2_cc", "paired_bootstrap" or "none"
    a_better: int  # samples where A scored higher than B (discordant pairs for binary)
    b_better: int
    dropped_a: int  # samples scored only in A (or None in B)
    dropped_b: int  # samples scored only in B (or None in A)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


def compare_paired(
    a: Mapping[Hashable, float | None],
    b: Mapping[Hashable, float | None],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    exact_below: int = EXACT_BELOW,
) -> Comparison:
    """Compare per-sample scores of two runs; see the module docstring for the methods."""
    scored_a = {k for k, v in a.items() if v is not None}
    scored_b = {k for k, v in b.items() if v is not None}
    common = [k for k in a if k in scored_a and k in scored_b]
    xs = np.array([float(a[k]) for k in common], dtype=float)  # type: ignore[arg-type]
    ys = np.array([float(b[k]) for k in common], dtype=float)  # type: ignore[arg-type]
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("scores must be finite numbers")
    n = len(common)
    mean_a = mean_b = diff = low = high = p_value = None
    method = "none"
    if n > 0:
        mean_a, mean_b = math.fsum(xs) / n, math.fsum(ys) / n
        diff = mean_b - mean_a
        if bool(np.all((xs == 0) | (xs == 1)) and np.all((ys == 0) | (ys == 1))):
            p_value, method = mcnemar(int(np.sum(xs > ys)), int(np.sum(ys > xs)), exact_below)
            interval = summarize((ys - xs).tolist(), confidence=confidence, interval="t")
            low, high = interval.ci_low, interval.ci_high
        else:
            low, high, p_value = paired_bootstrap(ys - xs, confidence, resamples, seed)
            method = "paired_bootstrap"
    return Comparison(
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        diff=diff,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        method=method,
        a_better=int(np.sum(xs > ys)),
        b_better=int(np.sum(ys > xs)),
        dropped_a=len(scored_a - scored_b),
        dropped_b=len(scored_b - scored_a),
    )


class McNemarResult(NamedTuple):
    p_value: float
    method: str  # "mcnemar_exact" or "mcnemar_chi2_cc"


class BootstrapResult(NamedTuple):
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def mcnemar(a_only: int, b_only: int, exact_below: int = EXACT_BELOW) -> McNemarResult:
    """McNemar's two-sided p-value from the two discordant counts, and the method used."""
    discordant = a_only + b_only
    if discordant < exact_below:
        p = 2.0 * binomial_cdf_half(min(a_only, b_only), discordant)
        return McNemarResult(min(1.0, p), "mcnemar_exact")
    statistic = max(abs(a_only - b_only) - 1, 0) ** 2 / discordant
    return McNemarResult(chi2_sf_1df(statistic), "mcnemar_chi2_cc")


def paired_bootstrap(
    diffs: np.ndarray, confidence: float, resamples: int, seed: int
) -> BootstrapResult:
    """Percentile interval and two-sided p-value of the mean of `diffs`, by resampling."""
    n = len(diffs)
    if n < 2 or resamples < 1:
        return BootstrapResult(None, None, None)
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        boot[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    observed = float(diffs.mean())
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    # Re-centre on the null; the tiny slack keeps exact ties counted despite rounding.
    extreme = np.abs(boot - observed) >= abs(observed) * (1 - 1e-12)
    p_value = (1.0 + float(np.sum(extreme))) / (1.0 + resamples)
    return BootstrapResult(float(low), float(high), min(1.0, p_value))
