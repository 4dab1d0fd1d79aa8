"""The asymptotic confidence sequence of paired differences (scoring/sequential.py), checked
against a direct computation of the published formula and by a small seeded Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from evalcluster.scoring.sequential import (
    PRIOR_VARIANCE,
    ConfidenceSequence,
    boundary,
    decide,
    tuned_rho2,
)


def direct_intervals(batches: list[np.ndarray], alpha: float, t_star: int) -> list[tuple]:
    """The running-intersection interval after each batch, straight from the formula."""
    rho2 = (2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha))) / t_star
    seen = np.array([])
    lower, upper = -1.0, 1.0
    out = []
    for batch in batches:
        seen = np.concatenate([seen, batch])
        t = seen.size
        sd = math.sqrt((np.sum((seen - seen.mean()) ** 2) + PRIOR_VARIANCE) / t)
        half = sd * math.sqrt(
            2 * (t * rho2 + 1) / (t**2 * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha)
        )
        lower, upper = max(lower, seen.mean() - half), min(upper, seen.mean() + half)
        out.append((t, seen.mean(), lower, upper))
    return out


def test_intervals_match_the_formula_computed_directly():
    rng = np.random.default_rng(7)
    batches = [rng.choice([-1.0, 0.0, 1.0], p=[0.05, 0.83, 0.12], size=40) for _ in range(30)]
    cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=300)
    looks = [cs.update(batch) for batch in batches]
    expected = direct_intervals(batches, 0.05, 300)
    for look, (t, mean, lower, upper) in zip(looks, expected, strict=True):
        assert look.samples == t
        assert look.difference == pytest.approx(mean, abs=1e-12)
        assert look.lower == pytest.approx(lower, abs=1e-12)
        assert look.upper == pytest.approx(upper, abs=1e-12)


def test_batch_updates_give_the_mean_and_variance_of_all_values():
    rng = np.random.default_rng(3)
    values = rng.uniform(-1, 1, size=1000)
    cs = ConfidenceSequence(alpha=0.1, margin=0.0, tune_samples=100)
    for chunk in np.array_split(values, 17):
        cs.update(chunk)
    assert cs.count == 1000
    assert cs.mean == pytest.approx(values.mean(), abs=1e-12)
    assert cs.m2 / (cs.count - 1) == pytest.approx(np.var(values, ddof=1), rel=1e-10)


def test_tuned_rho_is_near_the_numerical_optimum_at_the_tuning_time():
    t_star, alpha = 2000, 0.05
    best = optimize.minimize_scalar(
        lambda r2: boundary(t_star, alpha, r2), bounds=(1e-6, 1.0), method="bounded"
    )
    assert boundary(t_star, alpha, tuned_rho2(alpha, t_star)) <= best.fun * 1.01


def test_boundary_shrinks_like_one_over_root_t():
    rho2 = tuned_rho2(0.05, 1000)
    assert boundary(4000, 0.05, rho2) < boundary(1000, 0.05, rho2)
    # tuned at t*, the half-width times sqrt(t*) is about 3.0 standard deviations at alpha 0.05
    assert boundary(1000, 0.05, rho2) * math.sqrt(1000) == pytest.approx(3.03, abs=0.02)


@pytest.mark.parametrize(
    ("lower", "upper", "margin", "verdict"),
    [
        (0.011, 0.05, 0.01, "b_better"),
        (-0.05, -0.02, 0.01, "a_better"),
        (-0.009, 0.009, 0.01, "equivalent"),
        (-0.02, 0.005, 0.01, "undecided"),
        (0.001, 0.03, 0.0, "b_better"),
        (-0.001, 0.001, 0.0, "undecided"),  # no equivalence without a margin
        (0.005, 0.02, 0.01, "undecided"),  # better, but not by the margin yet
    ],
)
def test_decide(lower, upper, margin, verdict):
    assert decide(lower, upper, margin) == verdict


def test_tied_pairs_alone_decide_nothing_early():
    cs = ConfidenceSequence(alpha=0.05, margin=0.05, tune_samples=2000)
    look = cs.update([0.0] * 30)
    assert look.verdict == "undecided"
    assert look.upper - look.lower > 0.1


def test_first_decision_sticks_and_later_looks_only_narrow():
    cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=200)
    cs.update([1.0] * 60 + [0.0] * 140)
    assert cs.verdict == "b_better" and cs.decided_at == 0
    before = (cs.lower, cs.upper)
    cs.update([-1.0] * 50)
    assert cs.verdict == "b_better" and cs.decided_at == 0
    assert cs.lower >= before[0] and cs.upper <= before[1]
    assert cs.final_verdict() == "b_better"


def test_undecided_at_the_end_is_inconclusive():
    cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=100)
    cs.update([0.0, 1.0, -1.0, 0.0])
    assert cs.final_verdict() == "inconclusive"


def test_state_round_trips_and_resumes_identically():
    rng = np.random.default_rng(11)
    batches = [rng.choice([-1.0, 0.0, 1.0], size=25) for _ in range(8)]
    whole = ConfidenceSequence(alpha=0.05, margin=0.02, tune_samples=100)
    for batch in batches:
        whole.update(batch)
    part = ConfidenceSequence(alpha=0.05, margin=0.02, tune_samples=100)
    for batch in batches[:3]:
        part.update(batch)
    restored = ConfidenceSequence.from_dict(part.to_dict())
    assert restored == part
    for batch in batches[3:]:
        restored.update(batch)
    assert restored.to_dict() == whole.to_dict()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"alpha": 0.0, "margin": 0.0, "tune_samples": 10}, "alpha"),
        ({"alpha": 1.0, "margin": 0.0, "tune_samples": 10}, "alpha"),
        ({"alpha": 0.05, "margin": -0.1, "tune_samples": 10}, "margin"),
        ({"alpha": 0.05, "margin": 0.0, "tune_samples": 0}, "tune_samples"),
    ],
)
def test_bad_settings_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        ConfidenceSequence(**kwargs)


def test_differences_outside_minus_one_one_are_refused():
    cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=10)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        cs.update([0.5, 1.5])
    with pytest.raises(ValueError, match="finite"):
        cs.update([float("nan")])


def _paired_binary(rng, n, p_a, p_b, discordant):
    """Differences of two 0/1 scores with the given accuracies and P(they differ)."""
    # P(b right, a wrong) - P(a right, b wrong) = p_b - p_a; their sum is `discordant`
    up = (discordant + (p_b - p_a)) / 2
    down = (discordant - (p_b - p_a)) / 2
    return rng.choice([1.0, -1.0, 0.0], p=[up, down, 1 - up - down], size=n)


def test_monte_carlo_error_rate_under_no_difference_is_at_most_alpha():
    """A look every 100 pairs up to 4,000, no true difference: wrong decisions <= alpha
    (within Monte Carlo error: 300 runs, so 0.05 + 3 standard errors)."""
    rng = np.random.default_rng(2024)
    runs, wrong = 300, 0
    for _ in range(runs):
        d = _paired_binary(rng, 4000, 0.7, 0.7, discordant=0.12)
        cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=400)
        for chunk in d.reshape(40, 100):
            cs.update(chunk)
            if cs.decided:
                break
        wrong += cs.decided
    assert wrong / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)


def test_monte_carlo_detects_a_real_difference_in_the_right_direction():
    rng = np.random.default_rng(5)
    verdicts = []
    for _ in range(100):
        d = _paired_binary(rng, 8000, 0.70, 0.75, discordant=0.15)
        cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=800)
        for chunk in d.reshape(80, 100):
            cs.update(chunk)
            if cs.decided:
                break
        verdicts.append(cs.final_verdict())
    assert verdicts.count("b_better") >= 95
    assert "a_better" not in verdicts
