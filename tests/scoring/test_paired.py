import numpy as np
import pytest
from scipy import stats

from evalcluster.scoring.paired import compare_paired, mcnemar


def pairs(table: dict[tuple[int, int], int]) -> tuple[dict[int, float], dict[int, float]]:
    """Per-sample scores of runs A and B from a 2x2 table {(a, b): count}."""
    a: dict[int, float] = {}
    b: dict[int, float] = {}
    i = 0
    for (x, y), count in table.items():
        for _ in range(count):
            a[i], b[i] = float(x), float(y)
            i += 1
    return a, b


def test_mcnemar_exact_published_example() -> None:
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91, the Bentur et al.
    # airway example: 21 pairs, discordant 1 and 7. Published: exact conditional p = 0.070.
    a, b = pairs({(1, 1): 1, (1, 0): 1, (0, 1): 7, (0, 0): 12})
    result = compare_paired(a, b)
    assert result.method == "mcnemar_exact"
    assert (result.a_better, result.b_better) == (1, 7)
    assert result.p_value == pytest.approx(18 / 256)  # 0.0703
    assert round(result.p_value, 3) == 0.070
    assert result.n == 21
    assert result.mean_a == pytest.approx(2 / 21) and result.mean_b == pytest.approx(8 / 21)
    assert result.diff == pytest.approx(6 / 21)
    diffs = [b[k] - a[k] for k in a]
    low, high = stats.t.interval(0.95, 20, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_mcnemar_chi_square_with_continuity_correction() -> None:
    # Agresti, Categorical Data Analysis: approval ratings, discordant 150 and 86 (n = 1600).
    # Corrected statistic (|150 - 86| - 1)^2 / 236 = 16.818.
    a, b = pairs({(1, 1): 794, (1, 0): 150, (0, 1): 86, (0, 0): 570})
    result = compare_paired(a, b)
    assert result.method == "mcnemar_chi2_cc"
    assert result.p_value == pytest.approx(stats.chi2.sf(63**2 / 236, 1), rel=1e-10)
    assert result.p_value == pytest.approx(4.115e-5, rel=1e-3)
    assert result.diff == pytest.approx((86 - 150) / 1600)


def test_mcnemar_switches_method_at_25_discordant_pairs() -> None:
    assert mcnemar(12, 12)[1] == "mcnemar_exact"
    assert mcnemar(12, 13)[1] == "mcnemar_chi2_cc"
    assert mcnemar(0, 0) == (1.0, "mcnemar_exact")
    assert mcnemar(5, 5)[0] == 1.0
    assert mcnemar(0, 10)[0] == pytest.approx(2 / 1024)
    assert mcnemar(13, 13)[0] == 1.0  # correction never makes the statistic negative


def test_only_common_samples_count_and_drops_are_reported() -> None:
    a = {"s1": 1.0, "s2": 0.0, "s3": 1.0, "s4": None}
    b = {"s1": 1.0, "s2": 1.0, "s4": 1.0, "s5": 0.0, "s6": 1.0}
    result = compare_paired(a, b)
    assert result.n == 2
    assert result.dropped_a == 1  # s3
    assert result.dropped_b == 3  # s4 (None in A), s5, s6
    assert result.mean_a == 0.5 and result.mean_b == 1.0


def test_no_common_samples() -> None:
    result = compare_paired({"x": 1.0}, {"y": 1.0})
    assert result.n == 0 and result.method == "none" and result.p_value is None
    assert result.dropped_a == 1 and result.dropped_b == 1


def test_continuous_scores_use_a_seeded_paired_bootstrap() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, size=200)
    a = {i: float(v) for i, v in enumerate(base)}
    b = {i: float(v + 0.05 + rng.normal(0, 0.05)) for i, v in enumerate(base)}
    result = compare_paired(a, b, seed=3)
    assert result.method == "paired_bootstrap"
    assert result.ci_low < 0.05 < result.ci_high
    assert result.ci_low > 0.0
    assert result.p_value == pytest.approx(1 / 10_001)  # no resample comes near zero
    assert compare_paired(a, b, seed=3) == result  # same seed, same numbers
    diffs = np.array([b[i] - a[i] for i in a])
    low, high = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
    assert result.ci_low == pytest.approx(low, abs=0.003)
    assert result.ci_high == pytest.approx(high, abs=0.003)


def test_bootstrap_p_value_is_large_without_a_difference() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.1, size=300)
    a = {i: 0.5 for i in range(300)}
    b = {i: float(0.5 + noise[i] - noise.mean()) for i in range(300)}  # mean difference 0
    result = compare_paired(a, b, resamples=2000)
    assert result.p_value > 0.9
    assert result.ci_low < 0 < result.ci_high


def test_bootstrap_p_value_agrees_with_t_test_for_moderate_effect() -> None:
    rng = np.random.default_rng(5)
    diffs = rng.normal(0.02, 0.1, size=400)
    a = {i: 0.5 for i in range(400)}
    b = {i: float(0.5 + d) for i, d in enumerate(diffs)}
    result = compare_paired(a, b, resamples=20_000)
    expected = stats.ttest_1samp(diffs, 0.0).pvalue
    assert result.p_value == pytest.approx(expected, abs=0.01)


def test_identical_runs_have_p_value_one() -> None:
    a = {i: v for i, v in enumerate([0.1, 0.4, 0.9, 0.3])}
    assert compare_paired(a, dict(a)).p_value == 1.0
    binary = {i: float(i % 2) for i in range(10)}
    same = compare_paired(binary, dict(binary))
    assert same.p_value == 1.0 and same.diff == 0.0 and same.ci_low == same.ci_high == 0.0
