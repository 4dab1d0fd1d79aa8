"""Reading a run's summary: scores per sample (`scores_by_sample`, for `compare_paired`), the
``group_by`` breakdown (`group_rows`) and the paired metrics for MLflow (`paired_metrics`).

`summary.json` itself is computed shard by shard in `evalcluster.jobs.summary`."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evalcluster.rows import SCORE_PREFIX


def default_pass_ks(epochs: int) -> list[int]:
    """The k of pass@k reported for a run with `epochs` attempts per sample."""
    return sorted({1, *(k for k in (5, 10) if k < epochs), epochs})


def scores_by_sample(
    rows: Iterable[Mapping[str, Any]], target: str, scorer: str
) -> dict[Hashable, float | None]:
    """One target's score per sample (the mean over its scored epochs), for `compare_paired`.

    Errored rows are left out; a sample none of whose epochs was scored maps to None.
    """
    values: dict[Hashable, list[float]] = {}
    for row in rows:
        if str(row["target"]) != target or row.get("error_kind"):
            continue
        bucket = values.setdefault(row["sample_id"], [])
        score = row.get(SCORE_PREFIX + scorer)
        if score is not None:
            bucket.append(float(score))
    return {k: (math.fsum(v) / len(v) if v else None) for k, v in values.items()}


@dataclass(frozen=True)
class GroupRow:
    """One group of one target in a ``group_by`` breakdown: its value, its size and the
    summary (``n``, ``mean``, ``ci_low``, ...) of each scorer that has the group."""

    value: str
    n: int
    scorers: dict[str, dict[str, Any]]


def group_columns(summary: Mapping[str, Any]) -> list[str]:
    """The ``group_by`` columns found anywhere in a summary's targets, in the order first met."""
    columns: dict[str, None] = {}
    for target in _mapping(summary.get("targets")).values():
        for scorer in _mapping(_mapping(target).get("scorers")).values():
            columns.update(dict.fromkeys(_mapping(_mapping(scorer).get("groups"))))
    return list(columns)


def group_rows(
    target: Mapping[str, Any], column: str, *, limit: int | None = None
) -> tuple[list[GroupRow], int]:
    """One target's groups of metadata `column`, in value order, and how many were left out.

    ``n`` is the group's largest ``n`` over the scorers (a scorer that could not score some of
    the group's samples counts fewer). With `limit`, only the `limit` largest groups are kept
    (by ``n``, then value): the count of the others is returned beside them.
    """
    by_value: dict[str, dict[str, dict[str, Any]]] = {}
    for name, scorer in _mapping(target.get("scorers")).items():
        for value, stats in _mapping(_mapping(_mapping(scorer).get("groups")).get(column)).items():
            if isinstance(stats, Mapping):
                by_value.setdefault(str(value), {})[str(name)] = dict(stats)
    rows = [
        GroupRow(value, max(int(s.get("n") or 0) for s in scorers.values()), scorers)
        for value, scorers in by_value.items()
    ]
    left_out = 0
    if limit is not None and len(rows) > limit:
        left_out = len(rows) - max(limit, 0)
        rows = sorted(rows, key=lambda r: (-r.n, r.value))[: max(limit, 0)]
    return sorted(rows, key=lambda r: r.value), left_out


MAX_METRIC_KEY = 250
PAIRED_METRICS = ("diff", "stderr", "ci_low", "ci_high", "correlation")


def paired_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """A summary's ``paired`` section as parent-run metrics: ``paired/<a>_vs_<b>/<scorer>/diff``."""
    metrics: dict[str, float] = {}
    for pair in summary.get("paired") or ():
        if not isinstance(pair, Mapping):
            continue
        for scorer, stats in _mapping(pair.get("scorers")).items():
            for stat in PAIRED_METRICS:
                value = _mapping(stats).get(stat)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    key = f"paired/{pair.get('a')}_vs_{pair.get('b')}/{scorer}/{stat}"
                    if len(key) <= MAX_METRIC_KEY:  # MLflow's limit; all are in summary.json
                        metrics[key] = float(value)
    return metrics


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
