"""Paired comparison of two runs on the samples they share (`evalcluster compare`)."""

from __future__ import annotations

from typing import Any

from evalcluster.rows import SCORE_PREFIX, scorer_names
from evalcluster.scoring.paired import compare_paired
from evalcluster.scoring.summary import scores_by_sample
from evalcluster.store.fs import Store
from evalcluster.store.lake import read_results


def _rows(store: Store, run_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    table = read_results(store, run_id)
    scorers = scorer_names(table.column_names)
    keep = ["target", "sample_id", "epoch", "error_kind", *(SCORE_PREFIX + s for s in scorers)]
    return table.select(keep).to_pylist(), scorers


def compare_runs(store: Store, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """One row per (target, scorer) present in both runs: B minus A with CI and p-value."""
    rows_a, scorers_a = _rows(store, run_a)
    rows_b, scorers_b = _rows(store, run_b)
    targets = sorted({r["target"] for r in rows_a} & {r["target"] for r in rows_b})
    out = []
    for target in targets:
        for scorer in [s for s in scorers_a if s in scorers_b]:
            a = scores_by_sample(rows_a, target, scorer)
            b = scores_by_sample(rows_b, target, scorer)
            c = compare_paired(a, b)
            out.append(
                {
                    "target": target,
                    "scorer": scorer,
                    "n": c.n,
                    "mean_a": c.mean_a,
                    "mean_b": c.mean_b,
                    "diff": c.diff,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "p_value": c.p_value,
                    "method": c.method,
                    "a_better": c.a_better,
                    "b_better": c.b_better,
                    "dropped": c.dropped_a + c.dropped_b,
                }
            )
    return out
