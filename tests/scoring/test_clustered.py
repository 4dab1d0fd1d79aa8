"""CR1 clustered standard errors, checked against independent computations (scipy, numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalcluster.scoring.clustered import ClusterSums, clustered_mean


def _sandwich_se(x: np.ndarray, groups: np.ndarray) -> float:
    """The cluster-robust variance of an intercept-only OLS, as matrices (bread-meat-bread)."""
    design = np.ones((len(x), 1))
    bread = np.linalg.inv(design.T @ design)
    residuals = x - (bread @ design.T @ x)
    labels = np.unique(groups)
    meat = np.zeros((1, 1))
    for g in labels:
        score = design[groups == g].T @ residuals[groups == g]
        meat += np.outer(score, score)
    g = len(labels)
    return float(np.sqrt((g / (g - 1) * bread @ meat @ bread)[0, 0]))


def test_balanced_clusters_match_the_standard_error_of_cluster_means() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), 5)
    x = rng.normal(size=12)[groups] + rng.normal(size=60)
    s = clustered_mean(x.tolist(), groups.tolist())
    cluster_means = x.reshape(12, 5).mean(axis=1)
    assert s.clusters == 12 and s.df == 11 and s.n == 60
    assert s.stderr == pytest.approx(stats.sem(cluster_means), rel=1e-12)
    low, high = stats.t.interval(0.95, 11, loc=cluster_means.mean(), scale=stats.sem(cluster_means))
    assert (s.ci_low, s.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert s.stderr_naive == pytest.approx(stats.sem(x), rel=1e-12)
    assert s.design_effect == pytest.approx((s.stderr / stats.sem(x)) ** 2)
    assert s.design_effect > 1.5  # the shared cluster effect inflates the variance


def test_unbalanced_clusters_match_the_sandwich_estimator() -> None:
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 9, size=80)
    x = (rng.random(80) < 0.6).astype(float)
    s = clustered_mean(x.tolist(), [f"g{g}" for g in groups])
    assert s.mean == pytest.approx(x.mean())
    assert s.stderr == pytest.approx(_sandwich_se(x, groups), rel=1e-10)


def test_binary_scores_get_the_wilson_interval_at_the_effective_size() -> None:
    rng = np.random.default_rng(12)
    groups = np.repeat(np.arange(20), 6)
    x = ((rng.normal(size=20)[groups] + rng.normal(size=120)) < 0.5).astype(float)
    s = clustered_mean(x.tolist(), groups.tolist())
    assert s.method == "cr1_wilson"
    n_eff = x.mean() * (1 - x.mean()) / s.stderr**2
    t = stats.t.ppf(0.975, 19)
    # Wilson's bounds are the roots of (p - pi)**2 = t**2 pi (1 - pi) / n_eff in pi.
    k = t * t / n_eff
    roots = np.sort(np.roots([1 + k, -(2 * x.mean() + k), x.mean() ** 2]).real)
    assert (s.ci_low, s.ci_high) == pytest.approx(tuple(roots), rel=1e-9)
    assert 0.0 <= s.ci_low < x.mean() < s.ci_high <= 1.0


def test_singleton_clusters_give_the_naive_standard_error() -> None:
    x = [0.0, 1.0, 1.0, 0.5, 0.25, 1.0, 0.0]
    s = clustered_mean(x, [None] * len(x))
    assert s.clusters == len(x)
    assert s.stderr == pytest.approx(stats.sem(x), rel=1e-12)
    assert s.design_effect == pytest.approx(1.0)


def test_merged_shards_equal_one_pass_and_none_scores_are_skipped() -> None:
    values = [1.0, 0.0, None, 1.0, 1.0, 0.0, 1.0, 0.0]
    clusters = ["a", "a", "a", "b", "b", "c", "c", "d"]
    whole = clustered_mean(values, clusters)
    left, right = ClusterSums(), ClusterSums()
    for i, (v, c) in enumerate(zip(values, clusters, strict=True)):
        (left if i < 4 else right).add(c, v)
    merged = left.merge(right).summary()
    assert whole.n == 7 and whole.clusters == 4
    assert merged.stderr == pytest.approx(whole.stderr, rel=1e-12)
    assert merged.mean == pytest.approx(whole.mean)


def test_one_cluster_has_no_interval_and_empty_input_has_nothing() -> None:
    one = clustered_mean([1.0, 0.0, 1.0], ["x", "x", "x"])
    assert one.clusters == 1 and one.stderr is None and one.ci_low is None
    assert one.stderr_naive is not None
    empty = clustered_mean([], [])
    assert empty.n == 0 and empty.mean is None


def test_bad_confidence_and_non_finite_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="confidence"):
        clustered_mean([1.0, 0.0], ["a", "b"], confidence=1.5)
    with pytest.raises(ValueError, match="finite"):
        clustered_mean([float("nan")], ["a"])
