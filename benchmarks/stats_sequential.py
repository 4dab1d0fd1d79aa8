"""Monte Carlo of the sequential comparison's statistics (scoring/sequential.py), no run.

Paired 0/1 scores of two targets: with accuracies p_a, p_b and correctness correlation phi,
the difference d = b - a is +1 with probability u, -1 with probability w and 0 otherwise, where
u + w = q (the discordant share) and u - w = delta (the true difference). The issue's example
(0.72 vs 0.70, phi 0.7) gives q = 0.124. Each simulated comparison feeds the real
`ConfidenceSequence` one shard (256 pairs) at a time and stops at its first decision, as a run
with `compare:` does.

Fixed design: the paired sample size to detect delta at two-sided alpha with the given power,

    n = (z_{1-alpha/2} + z_{power})^2 * var(d) / delta^2,     var(d) = q - delta^2

(the normal approximation to the paired t-test), so its minimum detectable difference at n
pairs is MDE(n) = (z_{1-alpha/2} + z_{power}) * sd(d) / sqrt(n).

Checks (printed, with Monte Carlo standard errors):
1. type-I error, true delta 0, a look after every shard up to 20,000 pairs (the default
   max_samples): wrong decisions (either direction) at most alpha;
2. true delta = 2 x MDE of the fixed design sized for the issue's 0.72 vs 0.70, capped at that
   fixed size: power >= 0.8, median pairs used <= 60% of the fixed size;
3. the issue's own numbers (delta 0.02, cap 20,000) for reference.

    python benchmarks/stats_sequential.py [--runs 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from statistics import NormalDist

import numpy as np

from evalcluster.scoring.sequential import ConfidenceSequence

SHARD = 256
ALPHA = 0.05
POWER = 0.8
TUNE_FRACTION = 10  # as jobs/sequential_compare.py: tightest at cap / 10


def discordance(p_a: float, p_b: float, phi: float) -> float:
    """P(a and b differ) for 0/1 scores with these accuracies and correlation."""
    both = p_a * p_b + phi * math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    return p_a + p_b - 2 * both


def fixed_design_n(delta: float, q: float, alpha: float = ALPHA, power: float = POWER) -> int:
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return math.ceil(z**2 * (q - delta**2) / delta**2)


def mde(n: int, q: float, alpha: float = ALPHA, power: float = POWER) -> float:
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * math.sqrt(q) / math.sqrt(n)


def simulate(
    rng: np.random.Generator, *, delta: float, q: float, cap: int, runs: int
) -> tuple[list[str], np.ndarray]:
    """Verdicts and pairs used of `runs` comparisons capped at `cap` pairs."""
    up, down = (q + delta) / 2, (q - delta) / 2
    verdicts, used = [], np.empty(runs, dtype=np.int64)
    for r in range(runs):
        draws = rng.random(cap)
        d = np.where(draws < up, 1.0, np.where(draws < up + down, -1.0, 0.0))
        cs = ConfidenceSequence(alpha=ALPHA, margin=0.0, tune_samples=max(1, cap // TUNE_FRACTION))
        for start in range(0, cap, SHARD):
            cs.update(d[start : start + SHARD])
            if cs.decided:
                break
        verdicts.append(cs.final_verdict())
        used[r] = cs.count
    return verdicts, used


def share(verdicts: list[str], *names: str) -> tuple[float, float]:
    p = sum(v in names for v in verdicts) / len(verdicts)
    return p, 1.96 * math.sqrt(p * (1 - p) / len(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(runs=args.runs, seed=args.seed)


def run(*, runs: int, seed: int) -> None:
    """Print every figure for `runs` simulated comparisons (a quarter of that, at least 200,
    for the issue's own numbers)."""
    rng = np.random.default_rng(seed)
    q = discordance(0.70, 0.72, 0.7)
    n_fixed = fixed_design_n(0.02, q)
    started = time.perf_counter()
    print(f"issue's example: p_a 0.70, p_b 0.72, phi 0.7 -> discordant q = {q:.4f}")
    print(f"fixed design for delta 0.02 (alpha {ALPHA}, power {POWER}): n = {n_fixed:,} pairs")
    print(f"(unpaired it would need {fixed_design_n(0.02, 0.7 * 0.3 + 0.72 * 0.28):,} per arm)")

    for label, q_null in (("q = issue's", q), ("q = 0.03 (rare discordance)", 0.03)):
        verdicts, used = simulate(rng, delta=0.0, q=q_null, cap=20_000, runs=runs)
        p, ci = share(verdicts, "a_better", "b_better")
        print(
            f"type-I, delta 0, {label}, looks every {SHARD} up to 20,000: "
            f"{p:.4f} +- {ci:.4f} (alpha {ALPHA}; {runs} runs)"
        )

    delta = 2 * mde(n_fixed, q)
    verdicts, used = simulate(rng, delta=delta, q=q, cap=n_fixed, runs=runs)
    p, ci = share(verdicts, "b_better")
    wrong, _ = share(verdicts, "a_better")
    median = float(np.median(used))
    print(
        f"delta = 2 x MDE = {delta:.4f}, cap = fixed n {n_fixed:,}: power {p:.4f} +- {ci:.4f}, "
        f"wrong direction {wrong:.4f}, median pairs {median:,.0f} "
        f"= {median / n_fixed:.0%} of the fixed design (mean {used.mean():,.0f})"
    )

    few = max(200, runs // 4)
    verdicts, used = simulate(rng, delta=0.02, q=q, cap=20_000, runs=few)
    p, ci = share(verdicts, "b_better")
    print(
        f"issue's numbers, delta 0.02, cap 20,000: b_better {p:.4f} +- {ci:.4f}, "
        f"median pairs {np.median(used):,.0f}, quartiles {np.percentile(used, 25):,.0f}"
        f"-{np.percentile(used, 75):,.0f} ({few} runs)"
    )
    print(f"wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
