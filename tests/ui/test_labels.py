"""Labels in the lake, Cohen's kappa and the prediction-powered estimate."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from evalcluster.errors import StoreError
from evalcluster.store.fs import open_store
from evalcluster.ui.labels import (
    Label,
    LabelRequest,
    append_label,
    cohen_kappa,
    human_summary,
    label_key,
    latest_verdicts,
    new_label,
    prediction_powered_mean,
    read_labels,
)


def _pairs(both_yes: int, a_only: int, b_only: int, both_no: int) -> list[tuple[str, str]]:
    return (
        [("yes", "yes")] * both_yes
        + [("yes", "no")] * a_only
        + [("no", "yes")] * b_only
        + [("no", "no")] * both_no
    )


def test_kappa_matches_the_textbook_example():
    # Wikipedia's "Cohen's kappa" worked example: 50 proposals, p_o = 0.7, p_e = 0.5.
    k = cohen_kappa(_pairs(20, 5, 10, 15))
    assert k.n == 50 and k.observed == pytest.approx(0.7) and k.expected == pytest.approx(0.5)
    assert k.kappa == pytest.approx(0.4)


@pytest.mark.parametrize("table", [(45, 15, 25, 15), (1, 0, 0, 1), (30, 2, 9, 60), (3, 7, 5, 1)])
def test_kappa_matches_the_two_by_two_closed_form(table):
    a, b, c, d = table  # yes/yes, yes/no, no/yes, no/no
    closed = 2 * (a * d - b * c) / ((a + b) * (b + d) + (a + c) * (c + d))
    assert cohen_kappa(_pairs(*table)).kappa == pytest.approx(closed)


def test_kappa_is_undefined_when_both_raters_use_one_class():
    k = cohen_kappa([(1, 1)] * 4)
    assert k.kappa is None and k.observed == 1.0
    assert cohen_kappa([]).kappa is None


def test_ppi_adds_the_rectifier_to_the_scorer_mean():
    scores = [1, 1, 0, 1, 0, 1, 1, 1, 0, 1]
    est = prediction_powered_mean(scores, [1, 1, 0, 1], [0, 1, 0, 0])
    assert est.scorer_mean == pytest.approx(0.7) and est.rectifier == pytest.approx(-0.5)
    assert est.estimate == pytest.approx(0.2)
    diff = np.array([-1, 0, 0, -1.0])
    half = 1.959963984540054 * math.sqrt(np.var(scores, ddof=1) / 10 + diff.var(ddof=1) / 4)
    assert est.ci_low == pytest.approx(0.2 - half) and est.ci_high == pytest.approx(0.2 + half)
    same = prediction_powered_mean(scores, [1, 0], [1, 0])
    assert same.estimate == pytest.approx(0.7)
    assert prediction_powered_mean(scores, [1], [0]).ci_low is None


def test_ppi_interval_covers_the_human_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered, trials = 0, 300
    for _ in range(trials):
        human = rng.random(2000) < 0.6
        # A judge that errs on 15% of items, more often towards "right".
        flip = rng.random(2000) < 0.15
        judge = np.where(flip, rng.random(2000) < 0.8, human).astype(float)
        labelled = rng.choice(2000, 100, replace=False)
        est = prediction_powered_mean(judge, judge[labelled], human[labelled].astype(float))
        covered += est.ci_low <= human.mean() <= est.ci_high
    assert 0.9 <= covered / trials <= 0.99


def _label(sample: str, verdict: float, at: datetime, scorer: str = "exact") -> Label:
    request = LabelRequest(target="t0", sample_id=sample, scorer=scorer, verdict=verdict)
    return new_label(request, "run-l", "team-a", "abc123", now=at)


def test_labels_are_appended_once_and_read_back_oldest_first(tmp_path):
    store = open_store(str(tmp_path))
    t0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
    second = _label("s1", 1, t0 + timedelta(seconds=5))
    first = _label("s1", 0, t0)
    append_label(store, second)
    append_label(store, first)
    with pytest.raises(StoreError):
        append_label(store, first)
    labels = read_labels(store, "run-l")
    assert [lab.label_id for lab in labels] == [first.label_id, second.label_id]
    assert store.exists(label_key("run-l", first.label_id))
    latest = latest_verdicts(labels, "t0", "exact")
    assert latest[("s1", 0)].verdict == 1  # the newest counts
    assert latest_verdicts(labels, "t0", "numeric") == {}


def test_a_label_request_refuses_bad_values():
    with pytest.raises(ValidationError):
        LabelRequest(target="t0", sample_id="s", scorer="exact", verdict=2)
    with pytest.raises(ValidationError):
        LabelRequest(target="t0", sample_id="s", scorer="exact", verdict=1, extra=1)
    with pytest.raises(ValidationError):
        LabelRequest(target="t0", sample_id="s", scorer="exact", verdict=float("nan"))


def test_human_summary_corrects_and_measures_agreement():
    scores = {(f"s{i}", 0): float(i % 2) for i in range(10)}  # 5 right
    scores[("s_err", 0)] = None
    at = datetime(2026, 11, 27, tzinfo=UTC)
    verdicts = {
        ("s1", 0): _label("s1", 1, at),  # agrees (right)
        ("s3", 0): _label("s3", 0, at),  # disagrees: judge right, human wrong
        ("s0", 0): _label("s0", 0, at),  # agrees (wrong)
        ("gone", 0): _label("gone", 1, at),  # not a row of the run: ignored
    }
    out = human_summary(scores, verdicts)
    assert out["labelled"] == 3 and out["disagreements"] == 1
    assert out["scorer_mean"] == pytest.approx(0.5)
    assert out["corrected_mean"] == pytest.approx(0.4)
    assert out["agreement"]["observed"] == pytest.approx(2 / 3)
    assert out["agreement"]["kappa"] == pytest.approx(cohen_kappa([(1, 1), (1, 0), (0, 0)]).kappa)
    assert out["ppi"]["estimate"] == pytest.approx(0.5 - 1 / 3)
