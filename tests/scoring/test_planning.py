"""Sample-size planning, checked against scipy's distributions and the issue's worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evalcluster.scoring.planning import (
    Design,
    anova_icc,
    detectable_difference,
    diff_sd,
    estimate_pilot,
    power_at,
    samples_needed,
)


def _normal_n(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> float:
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return (z * sd / delta) ** 2


def test_pairing_cuts_the_questions_for_72_against_70_from_8100_to_2400() -> None:
    unpaired = samples_needed(Design(diff_sd(0.70, 0.72, 0.0)), 0.02)
    paired = samples_needed(Design(diff_sd(0.70, 0.72, 0.7)), 0.02)
    assert unpaired == pytest.approx(_normal_n(math.sqrt(0.21 + 0.2016), 0.02), abs=3)
    assert 8_050 <= unpaired <= 8_110
    assert 2_400 <= paired <= 2_450


def test_the_sd_of_a_difference_matches_simulated_correlated_binary_pairs() -> None:
    p_a, p_b, rho = 0.6, 0.75, 0.4
    p11 = p_a * p_b + rho * math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    cells = [p11, p_a - p11, p_b - p11, 1 - p_a - p_b + p11]  # (1,1), (1,0), (0,1), (0,0)
    draws = np.random.default_rng(8).choice(4, size=400_000, p=cells)
    a = np.isin(draws, (0, 1)).astype(float)
    b = np.isin(draws, (0, 2)).astype(float)
    assert stats.pearsonr(a, b).statistic == pytest.approx(rho, abs=0.01)
    assert diff_sd(p_a, p_b, rho) == pytest.approx(np.std(b - a), rel=0.01)


def test_power_at_the_planned_size_matches_the_noncentral_t() -> None:
    design = Design(0.5, alpha=0.05, power=0.9)
    n = samples_needed(design, 0.05)
    df = n - 1
    crit = stats.t.ppf(0.975, df)
    shift = 0.05 / (0.5 / math.sqrt(n))
    exact = stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift)
    assert exact == pytest.approx(0.9, abs=0.01)
    assert power_at(design, n, 0.05) == pytest.approx(exact, abs=0.005)


def test_clusters_multiply_the_questions_by_the_design_effect() -> None:
    iid = samples_needed(Design(0.4), 0.03)
    clustered = Design(0.4, icc=0.1, cluster_size=10)
    assert clustered.design_effect == pytest.approx(1.9)
    assert samples_needed(clustered, 0.03) == pytest.approx(1.9 * iid, rel=0.01)


def test_epochs_divide_only_the_within_question_variance() -> None:
    one = Design(0.5, var_within=0.2)
    four = Design(0.5, var_within=0.2, epochs=4)
    assert four.variance == pytest.approx(0.25 - 0.2 + 0.05)
    assert samples_needed(four, 0.05) < samples_needed(one, 0.05)
    assert Design(0.5, epochs=4).variance == pytest.approx(0.25)  # no within part: no gain


def test_detectable_difference_inverts_the_sample_size() -> None:
    design = Design(diff_sd(0.5, 0.5, 0.5), power=0.8, icc=0.05, cluster_size=5)
    n = samples_needed(design, 0.04)
    assert detectable_difference(design, n) <= 0.04
    assert detectable_difference(design, n) == pytest.approx(0.04, rel=0.01)


def test_bad_settings_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Design(0.5, alpha=0.0)
    with pytest.raises(ValueError, match="power"):
        Design(0.5, power=1.0)
    with pytest.raises(ValueError, match="icc"):
        Design(0.5, icc=-0.1)
    with pytest.raises(ValueError, match="delta"):
        samples_needed(Design(0.5), 0.0)
    with pytest.raises(ValueError, match="p_b"):
        diff_sd(0.5, 1.5, 0.0)


def test_anova_icc_matches_the_balanced_textbook_formula() -> None:
    rng = np.random.default_rng(9)
    data = rng.normal(size=(30, 1)) * 0.5 + rng.normal(size=(30, 6))
    values = data.ravel().tolist()
    labels = np.repeat(np.arange(30), 6).tolist()
    k = 6
    msb = k * data.mean(axis=1).var(ddof=1)
    msw = data.var(axis=1, ddof=1).mean()
    icc, clusters = anova_icc(values, labels)
    assert clusters == 30
    assert icc == pytest.approx((msb - msw) / (msb + (k - 1) * msw), rel=1e-10)
    assert anova_icc(values, [None] * len(values)) == (0.0, len(values))


def test_a_pilot_gives_accuracies_correlation_and_within_variance() -> None:
    rng = np.random.default_rng(10)
    a = {i: rng.integers(0, 2, size=3).astype(float).tolist() for i in range(200)}
    b = {i: [min(1.0, x + float(rng.random() < 0.2)) for x in a[i]] for i in range(200)}
    pilot = estimate_pilot(a, b, clusters={i: i // 4 for i in range(200)})
    xs = np.array([np.mean(a[i]) for i in range(200)])
    ys = np.array([np.mean(b[i]) for i in range(200)])
    assert pilot.p_a == pytest.approx(xs.mean()) and pilot.p_b == pytest.approx(ys.mean())
    assert pilot.correlation == pytest.approx(stats.pearsonr(xs, ys).statistic)
    assert pilot.sd_diff == pytest.approx(np.std(ys - xs, ddof=1))
    assert pilot.epochs == 3 and pilot.var_within > 0
    assert pilot.clusters == 50 and pilot.cluster_size == 4
    with pytest.raises(ValueError, match="at least 2"):
        estimate_pilot({1: [1.0]}, {1: [0.0]})
