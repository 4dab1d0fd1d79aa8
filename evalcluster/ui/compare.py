"""Compare two targets (of one run or of two runs) sample by sample, on one scorer.

The difference is B minus A over the samples both scored (per-sample means over epochs, errors
left out), from `evalcluster.scoring.paired.compare_paired`: McNemar's test and the paired t
interval for binary scores, a paired bootstrap otherwise. The same is given per group of each
metadata column the suite groups by. A sample *flipped* when one side is right (score >=
`RIGHT_AT`) and the other is not.

The interval path shows how the difference's interval narrowed as samples accrued: after the
first n common samples (in A's order: the order the run evaluated them), the mean difference
with its paired t interval, at up to `PATH_POINTS` values of n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evalcluster.scoring.distributions import t_quantile
from evalcluster.scoring.paired import compare_paired
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.ui.queries import RIGHT_AT, RunTable, group_values, sample_scores

__all__ = ["MAX_FLIPS", "PATH_POINTS", "compare_targets", "interval_path"]

CONFIDENCE = 0.95
PATH_POINTS = 80
MAX_FLIPS = 500
RESAMPLES = 2000  # bootstrap resamples for non-binary scores: enough for a page, and quick


def interval_path(diffs: np.ndarray, confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """The running mean of `diffs` and its t interval after n of them, for up to
    `PATH_POINTS` values of n spread evenly from 2 to all."""
    n_all = len(diffs)
    if n_all < 2:
        return []
    sums = np.cumsum(diffs)
    squares = np.cumsum(diffs * diffs)
    counts = np.unique(np.linspace(2, n_all, min(PATH_POINTS, n_all - 1)).round().astype(int))
    path = []
    for n in counts.tolist():
        mean = float(sums[n - 1] / n)
        var = max(float(squares[n - 1] - n * mean * mean) / (n - 1), 0.0)
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(var / n)
        path.append({"n": n, "diff": mean, "ci_low": mean - half, "ci_high": mean + half})
    return path


def compare_targets(
    run_a: RunTable,
    target_a: str,
    run_b: RunTable,
    target_b: str,
    scorer: str,
    group_by: Sequence[str] = (),
    cluster: str | None = None,
) -> dict[str, Any]:
    """B against A: the paired comparison, per group, the flipped samples (up to
    `MAX_FLIPS`, with their count) and the interval path; with `cluster` (the suite's metadata
    column of clusters), also the cluster-robust paired difference. KeyError naming a scorer
    that either run lacks."""
    a = sample_scores(run_a, target_a, scorer)
    b = sample_scores(run_b, target_b, scorer)
    a_scores = dict(zip(a.sample_ids, a.scores.tolist(), strict=True))
    b_scores = dict(zip(b.sample_ids, b.scores.tolist(), strict=True))
    overall = compare_paired(a_scores, b_scores, resamples=RESAMPLES)
    common = [s for s in a.sample_ids if s in b_scores]
    diffs = np.array([b_scores[s] - a_scores[s] for s in common], dtype=float)
    groups: dict[str, Any] = {}
    for column in group_by:
        names = group_values(a.metadata, column)
        of_sample = dict(zip(a.sample_ids, names, strict=True))
        per: dict[str, Any] = {}
        for name in sorted(set(names)):
            ids = [s for s in common if of_sample[s] == name]
            per[name] = compare_paired(
                {s: a_scores[s] for s in ids}, {s: b_scores[s] for s in ids}, resamples=RESAMPLES
            ).to_dict()
        groups[column] = per
    flips = []
    for s in common:
        right_a, right_b = a_scores[s] >= RIGHT_AT, b_scores[s] >= RIGHT_AT
        if right_a != right_b:
            flips.append(
                {
                    "sample_id": s,
                    "score_a": a_scores[s],
                    "score_b": b_scores[s],
                    "direction": "b_better" if right_b else "a_better",
                }
            )
    clustered = None
    if cluster:
        clusters = dict(zip(a.sample_ids, group_values(a.metadata, cluster), strict=True))
        clustered = clustered_difference(a_scores, b_scores, clusters)
    return json_safe(
        {
            "a": {"run_id": run_a.run_id, "target": target_a},
            "clustered": clustered,
            "b": {"run_id": run_b.run_id, "target": target_b},
            "scorer": scorer,
            "confidence": CONFIDENCE,
            "comparison": overall.to_dict(),
            "verdict": verdict(overall.ci_low, overall.ci_high),
            "groups": groups,
            "flipped": len(flips),
            "flips": flips[:MAX_FLIPS],
            "path": interval_path(diffs),
        }
    )


def verdict(low: float | None, high: float | None) -> str:
    """``b_better``, ``a_better`` or ``undecided``: whether the interval excludes zero."""
    if low is None or high is None:
        return "undecided"
    if low > 0:
        return "b_better"
    if high < 0:
        return "a_better"
    return "undecided"


def clustered_difference(
    a: dict[str, float], b: dict[str, float], clusters: dict[str, str]
) -> dict[str, Any] | None:
    """The paired difference with cluster-robust (CR1) errors, from the statistics module
    (`evalcluster.scoring.differences`); None where that module is not installed."""
    try:
        from evalcluster.scoring.differences import paired_difference
    except ImportError:  # an older checkout without clustered statistics
        return None
    return paired_difference(a, b, clusters=clusters).to_dict()
