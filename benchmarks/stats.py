"""Monte Carlo checks of the statistics: interval coverage with clustered data, and `plan`'s power.

    .venv/bin/python benchmarks/stats.py [--reps 10000] [--seed 0]

1. Coverage of the 95% interval of a mean over `--reps` simulated evaluations of binary scores
   in clusters (50 passages x 10 questions, latent intra-cluster correlation 0.3, accuracy 0.7):
   the clustered interval (`scoring.clustered`, CR1 with t(G-1)) beside the naive Wilson and
   t intervals the run reports without `cluster:`. Then the same for the paired difference of
   two targets (`scoring.differences`).
2. `plan`'s sample size (`scoring.planning`) against simulation: for a design with correlated
   targets (and one with clusters too), the share of `--reps` simulated evaluations of the
   planned size whose paired interval excludes 0, against the stated power 0.8.
3. The sequential comparison (`benchmarks/stats_sequential.py`, also runnable alone): its
   type-I error with a look after every shard, its power and samples used at twice the fixed
   design's minimum detectable difference, over `--runs` simulated comparisons
   (`--no-sequential` skips it).

Scores come from a latent Gaussian model: question i of cluster g is right for target t when
sqrt(c) K_g + sqrt(c_t) K_tg + sqrt(r - c) S_i + sqrt(1 - r - c_t) E_ti < Phi^-1(p_t), so every
accuracy is exact, r is the two targets' latent correlation and c, c_t the clusters' shares.
Prints figures; asserts nothing (benchmarks/README.md records them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalcluster.scoring.clustered import clustered_mean  # noqa: E402
from evalcluster.scoring.differences import paired_difference  # noqa: E402
from evalcluster.scoring.distributions import t_quantile  # noqa: E402
from evalcluster.scoring.planning import Design, anova_icc, samples_needed  # noqa: E402
from evalcluster.scoring.stats import summarize  # noqa: E402

Z = NormalDist().inv_cdf


def latent_pairs(
    rng: np.random.Generator,
    clusters: int,
    size: int,
    p: tuple[float, float],
    r: float,
    c: float,
    c_own: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Binary scores of two targets on clusters x size questions (see the module docstring)."""
    n = clusters * size
    shared = np.repeat(rng.normal(size=clusters), size) * np.sqrt(c)
    item = rng.normal(size=n) * np.sqrt(r - c)
    out = []
    for t in range(2):
        own = np.repeat(rng.normal(size=clusters), size) * np.sqrt(c_own[t])
        noise = rng.normal(size=n) * np.sqrt(1.0 - r - c_own[t])
        out.append((shared + own + item + noise < Z(p[t])).astype(float))
    return out[0], out[1]


def coverage(reps: int, rng: np.random.Generator) -> None:
    clusters, size, p, c = 50, 10, 0.7, 0.3
    labels = np.repeat(np.arange(clusters), size).tolist()
    hit = {
        "clustered": 0,  # what _summary.json reports: CR1, Wilson at n_eff with t(G-1)
        "clustered t": 0,  # CR1, mean +- t(G-1) stderr
        "wilson": 0,  # the naive intervals reported without `cluster:`
        "t": 0,
        "paired clustered": 0,
        "paired naive": 0,
    }
    true_diff = 0.75 - 0.70
    deffs = []
    start = time.perf_counter()
    for _ in range(reps):
        a, b = latent_pairs(rng, clusters, size, (0.70, 0.75), r=0.5, c=c, c_own=(0.1, 0.1))
        s = clustered_mean(a.tolist(), labels)
        hit["clustered"] += s.ci_low <= p <= s.ci_high
        half = t_quantile(0.975, clusters - 1) * s.stderr
        hit["clustered t"] += s.mean - half <= p <= s.mean + half
        deffs.append(s.design_effect)
        w = summarize(a.tolist())
        hit["wilson"] += w.ci_low <= p <= w.ci_high
        t = summarize(a.tolist(), interval="t")
        hit["t"] += t.ci_low <= p <= t.ci_high
        d = paired_difference(
            dict(enumerate(a)), dict(enumerate(b)), clusters=dict(enumerate(labels))
        )
        hit["paired clustered"] += d.ci_low <= true_diff <= d.ci_high
        half = t_quantile(0.975, len(a) - 1) * d.stderr_naive
        hit["paired naive"] += d.diff - half <= true_diff <= d.diff + half
    elapsed = time.perf_counter() - start
    print(
        f"coverage of the 95% interval, {reps} evaluations of {clusters} clusters x {size} "
        f"questions (latent cluster share {c}, mean design effect {np.mean(deffs):.2f}), "
        f"{elapsed:.1f} s:"
    )
    for name, count in hit.items():
        share = count / reps
        error = np.sqrt(share * (1 - share) / reps)
        print(f"  {name:<17} {share:.4f} (+- {1.96 * error:.4f})")


def planned_power(
    reps: int,
    rng: np.random.Generator,
    *,
    p: tuple[float, float],
    r: float,
    c: float,
    c_own: tuple[float, float],
    size: int,
) -> None:
    # The design's true sd of the difference and icc, from one very large simulation.
    big_a, big_b = latent_pairs(rng, 40_000 // size * 10, size, p, r, c, c_own)
    d = big_b - big_a
    sd = float(d.std(ddof=1))
    icc = 0.0
    if size > 1:
        icc, _ = anova_icc(d.tolist(), np.repeat(np.arange(len(d) // size), size).tolist())
    design = Design(sd_diff=sd, alpha=0.05, power=0.8, icc=icc, cluster_size=size)
    delta = p[1] - p[0]
    n = samples_needed(design, delta)
    clusters = int(np.ceil(n / size))
    crit = t_quantile(0.975, clusters - 1)
    rejections = 0
    start = time.perf_counter()
    for _ in range(reps):
        a, b = latent_pairs(rng, clusters, size, p, r, c, c_own)
        diffs = (b - a).reshape(clusters, size)
        # CR1 for equal clusters: the standard error of the clusters' means (scoring.clustered).
        se = diffs.mean(axis=1).std(ddof=1) / np.sqrt(clusters)
        rejections += abs(diffs.mean()) > crit * se
    elapsed = time.perf_counter() - start
    power = rejections / reps
    error = 1.96 * np.sqrt(power * (1 - power) / reps)
    print(
        f"  accuracies {p[0]:.2f}/{p[1]:.2f}, latent r {r}, cluster size {size} "
        f"(icc {icc:.3f}, design effect {design.design_effect:.2f}, sd {sd:.3f}): plan says "
        f"{n} questions for power 0.80; simulated power {power:.3f} (+- {error:.3f}), "
        f"{reps} evaluations, {elapsed:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=2000, help="sequential comparisons")
    parser.add_argument("--no-sequential", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    coverage(args.reps, rng)
    print("plan's sample size against simulated power (alpha 0.05, two-sided, paired):")
    planned_power(args.reps, rng, p=(0.70, 0.75), r=0.6, c=0.0, c_own=(0.0, 0.0), size=1)
    planned_power(args.reps, rng, p=(0.70, 0.75), r=0.6, c=0.2, c_own=(0.1, 0.1), size=8)
    if not args.no_sequential:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import stats_sequential

        print("sequential comparison (scoring.sequential):")
        stats_sequential.run(runs=args.runs, seed=args.seed)


if __name__ == "__main__":
    main()
