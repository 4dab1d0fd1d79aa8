import math

import pytest
from scipy import stats

from evalcluster.scoring.distributions import (
    binomial_cdf_half,
    chi2_sf_1df,
    incomplete_beta,
    normal_quantile,
    t_quantile,
    t_sf,
)

DFS = [1, 2, 3, 4, 5, 7, 9, 10, 19, 29, 30, 60, 99, 120, 500, 1000, 9999, 10_000, 1e5, 1e6, 2.5]
PS = [0.6, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.99999, 0.025, 0.005]


@pytest.mark.parametrize("df", DFS)
def test_t_quantile_matches_scipy(df: float) -> None:
    for p in PS:
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10, abs=1e-12)


def test_t_quantile_textbook_values() -> None:
    # The two-sided 95% critical values printed in every t table.
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=5e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=5e-4)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=5e-4)
    assert t_quantile(0.5, 7) == 0.0


def test_t_sf_matches_scipy_on_both_sides() -> None:
    for df in (1, 3, 12.5, 200):
        for t in (-8.0, -1.3, -1e-3, 0.0, 2e-5, 0.7, 2.2, 40.0):
            assert t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-11, abs=1e-15)


def test_incomplete_beta_matches_scipy() -> None:
    from scipy.special import betainc

    for a, b in ((0.5, 0.5), (2, 3), (10, 0.5), (50, 60), (0.1, 8)):
        for x in (1e-8, 0.01, 0.3, 0.5, 0.77, 0.999):
            assert incomplete_beta(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-11)
    assert incomplete_beta(2, 3, 0.0) == 0.0
    assert incomplete_beta(2, 3, 1.0) == 1.0


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_t_quantile_rejects_probabilities_outside_0_1(p: float) -> None:
    with pytest.raises(ValueError):
        t_quantile(p, 5)


def test_normal_quantile_and_chi2_tail() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959963984540054, rel=1e-14)
    assert chi2_sf_1df(3.841458820694124) == pytest.approx(0.05, rel=1e-12)
    for x in (0.0, 0.2, 1.0, 6.6, 25.0):
        assert chi2_sf_1df(x) == pytest.approx(stats.chi2.sf(x, 1), rel=1e-12)


def test_binomial_cdf_half_is_exact() -> None:
    assert binomial_cdf_half(1, 8) == 9 / 256
    assert binomial_cdf_half(0, 1) == 0.5
    assert binomial_cdf_half(-1, 5) == 0.0
    assert binomial_cdf_half(5, 5) == 1.0
    assert binomial_cdf_half(10, 30) == pytest.approx(stats.binom.cdf(10, 30, 0.5), rel=1e-13)
    assert math.isclose(binomial_cdf_half(400, 1000), stats.binom.cdf(400, 1000, 0.5), rel_tol=1e-9)
