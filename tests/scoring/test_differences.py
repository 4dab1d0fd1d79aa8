"""Paired differences between two targets, checked against scipy's paired tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalcluster.scoring.clustered import clustered_mean
from evalcluster.scoring.differences import PairAccumulator, paired_difference


def _binary_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    a = (difficulty + rng.normal(size=n) * 0.7 > -0.5).astype(float)
    b = (difficulty + rng.normal(size=n) * 0.7 > -0.6).astype(float)
    return a, b


def test_without_clusters_it_is_the_paired_t_test() -> None:
    a, b = _binary_pair(300, 5)
    d = paired_difference(dict(enumerate(a)), dict(enumerate(b)), names=("A", "B"))
    t = stats.ttest_rel(b, a)
    low, high = t.confidence_interval(0.95)
    assert (d.a, d.b, d.n) == ("A", "B", 300)
    assert d.diff == pytest.approx(b.mean() - a.mean())
    assert d.stderr == pytest.approx((b.mean() - a.mean()) / t.statistic, rel=1e-10)
    assert (d.ci_low, d.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert d.correlation == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-10)
    assert d.correlation > 0.3


def test_discordant_counts_and_exact_mcnemar_match_the_binomial_test() -> None:
    a = {i: v for i, v in enumerate([1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1])}
    b = {i: v for i, v in enumerate([1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])}
    d = paired_difference(a, b)
    assert (d.a_only, d.b_only) == (1, 4)
    assert d.p_method == "mcnemar_exact"
    assert d.p_value == pytest.approx(stats.binomtest(1, 5, 0.5).pvalue)


def test_clustered_difference_equals_the_clustered_mean_of_the_differences() -> None:
    a, b = _binary_pair(240, 6)
    clusters = {i: i // 8 for i in range(240)}
    d = paired_difference(dict(enumerate(a)), dict(enumerate(b)), clusters=clusters)
    direct = clustered_mean((b - a).tolist(), [i // 8 for i in range(240)])
    cluster_means = (b - a).reshape(30, 8).mean(axis=1)
    assert d.clusters == 30 and d.df == 29
    assert d.stderr == pytest.approx(stats.sem(cluster_means), rel=1e-10)
    assert d.stderr == pytest.approx(direct.stderr)
    assert d.stderr_naive == pytest.approx(stats.sem(b - a), rel=1e-10)


def test_samples_scored_by_one_target_are_left_out_and_scores_need_not_be_binary() -> None:
    a = {"x": 0.5, "y": 1.0, "z": None, "w": 0.25}
    b = {"x": 0.75, "y": 0.5, "z": 1.0}
    d = paired_difference(a, b)
    assert d.n == 2
    assert d.diff == pytest.approx(((0.75 - 0.5) + (0.5 - 1.0)) / 2)
    assert d.a_only is None and d.p_value is None


def test_merged_accumulators_equal_one_pass() -> None:
    a, b = _binary_pair(100, 7)
    whole, left, right = PairAccumulator(), PairAccumulator(), PairAccumulator()
    for i in range(100):
        whole.add(a[i], b[i], i // 5)
        (left if i < 37 else right).add(a[i], b[i], i // 5)
    one, two = whole.result("a", "b"), left.merge(right).result("a", "b")
    assert two.correlation == pytest.approx(one.correlation, rel=1e-12)
    assert two.stderr == pytest.approx(one.stderr, rel=1e-12)
    assert (two.a_only, two.b_only) == (one.a_only, one.b_only)
