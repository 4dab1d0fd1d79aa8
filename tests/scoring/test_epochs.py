"""The epoch variance split, checked against the one-way ANOVA computed independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalcluster.scoring.epochs import EpochAccumulator, epoch_split


def test_balanced_design_matches_the_anova_estimators() -> None:
    rng = np.random.default_rng(3)
    questions, k = 40, 4
    data = rng.normal(size=(questions, 1)) * 0.8 + rng.normal(size=(questions, k)) * 0.5
    split = epoch_split(data.tolist())
    grand = data.mean()
    msb = k * ((data.mean(axis=1) - grand) ** 2).sum() / (questions - 1)
    msw = ((data - data.mean(axis=1, keepdims=True)) ** 2).sum() / (questions * (k - 1))
    assert stats.f_oneway(*data).statistic == pytest.approx(msb / msw, rel=1e-10)
    assert split.var_within == pytest.approx(msw, rel=1e-10)
    assert split.var_between == pytest.approx((msb - msw) / k, rel=1e-10)
    assert split.stderr == pytest.approx(stats.sem(data.mean(axis=1)), rel=1e-10)
    assert split.within_share == pytest.approx((msw / k) / (msb / k), rel=1e-10)
    assert split.mean_epochs == k


def test_projections_favour_questions_when_questions_differ_most() -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(size=(50, 1)) * 2.0 + rng.normal(size=(50, 3)) * 0.1
    split = epoch_split(data.tolist())
    assert split.stderr_double_questions < split.stderr_double_epochs < split.stderr
    noisy = rng.normal(size=(50, 1)) * 0.01 + rng.normal(size=(50, 3)) * 1.0
    split = epoch_split(noisy.tolist())
    assert split.within_share > 0.8
    assert split.var_between == pytest.approx(0.0, abs=0.02)


def test_unbalanced_questions_and_merging() -> None:
    per_question = [[1.0, 0.0, 1.0], [1.0, 1.0], [0.0], [0.0, 0.0, 1.0, None], [1.0, 1.0, 1.0]]
    whole = epoch_split(per_question)
    left, right = EpochAccumulator(), EpochAccumulator()
    for i, scores in enumerate(per_question):
        (left if i % 2 else right).add_question([x for x in scores if x is not None])
    merged = left.merge(right).split()
    assert merged.var_within == pytest.approx(whole.var_within)
    assert merged.var_between == pytest.approx(whole.var_between)
    assert merged.stderr == pytest.approx(whole.stderr)
    # within: (SS of q1 = 2/3) + 0 + 0 + (SS of q4 = 2/3) + 0 over df 2 + 1 + 0 + 2 + 2 = 7
    assert whole.var_within == pytest.approx((4 / 3) / 7)
    assert whole.questions == 5 and whole.mean_epochs == pytest.approx(12 / 5)


def test_single_epochs_have_no_split() -> None:
    split = epoch_split([[1.0], [0.0], [1.0]])
    assert split.questions == 3 and split.var_within is None and split.stderr is None
