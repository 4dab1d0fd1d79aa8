"""The `paired` section of a summary as MLflow parent-run metrics."""

from __future__ import annotations

import math

from evalcluster.scoring.summary import paired_metrics


def test_each_pair_and_scorer_becomes_named_metrics_and_missing_values_are_left_out() -> None:
    summary = {
        "paired": [
            {
                "a": "old",
                "b": "new",
                "scorers": {
                    "exact": {"diff": 0.02, "stderr": 0.01, "ci_low": None, "correlation": 0.7},
                    "f1": {"diff": math.nan, "ci_high": 0.3},
                },
            },
            "not a pair",
        ]
    }
    assert paired_metrics(summary) == {
        "paired/old_vs_new/exact/diff": 0.02,
        "paired/old_vs_new/exact/stderr": 0.01,
        "paired/old_vs_new/exact/correlation": 0.7,
        "paired/old_vs_new/f1/ci_high": 0.3,
    }
    assert paired_metrics({}) == {}


def test_keys_longer_than_mlflow_allows_are_dropped() -> None:
    long = "t" * 128
    summary = {"paired": [{"a": long, "b": long, "scorers": {"exact": {"diff": 0.1}}}]}
    assert paired_metrics(summary) == {}
