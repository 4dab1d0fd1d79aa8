import itertools
import math

import pytest

from evalcluster.scoring.passk import mean_pass_at_k, pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n attempts (c passing) that contain a pass."""
    attempts = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(attempts[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_equals_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), rel=1e-15, abs=0)


def test_pass_at_k_closed_form_values() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is c/n
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # only 2 failures: any 3 attempts contain a pass
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    # Large n stays exact where C(n, k) is astronomically large.
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_over_samples() -> None:
    scores = {
        "s1": [1.0, 0.0, 0.0, 0.0],  # pass@1 0.25, pass@2 0.5
        "s2": [0.0, 0.0, 0.0, 0.0],  # 0, 0
        "s3": [1.0, 1.0, None, 0.5],  # 3 attempts, 2 pass (0.5 < 1.0): 2/3, 1
        "s4": [1.0, None, None, None],  # 1 attempt: skipped for k = 2
    }
    one = mean_pass_at_k(scores, 1)
    assert one.summary.n == 4 and one.skipped == 0
    assert one.summary.mean == pytest.approx((0.25 + 0 + 2 / 3 + 1) / 4)
    two = mean_pass_at_k(scores, 2)
    assert two.summary.n == 3 and two.skipped == 1
    assert two.summary.mean == pytest.approx((0.5 + 0 + 1) / 3)
    lenient = mean_pass_at_k(scores, 1, threshold=0.5)
    assert lenient.summary.mean == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert two.to_dict()["k"] == 2 and two.to_dict()["skipped"] == 1
