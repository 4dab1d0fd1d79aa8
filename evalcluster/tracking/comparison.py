"""A `compare:` run's outcome on its MLflow parent run: metrics and tags from the summary's
``comparison`` (written by jobs/sequential_compare.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TAG_PREFIX = "evalcluster.compare."
METRIC_PREFIX = "compare."
_METRICS = (
    "difference",
    "lower",
    "upper",
    "pairs",
    "pairs_excluded",
    "samples_used",
    "samples_at_decision",
    "samples_not_run",
    "cost_usd",
    "usd_not_spent",
    "looks",
)
_TAGS = ("verdict", "a", "b", "scorer", "margin", "alpha")


def comparison_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``compare.<name>`` for each finite number of the summary's comparison."""
    comparison = summary.get("comparison")
    if not isinstance(comparison, Mapping):
        return {}
    out = {}
    for name in _METRICS:
        value = comparison.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[METRIC_PREFIX + name] = float(value)
    return out


def comparison_tags(summary: Mapping[str, Any]) -> dict[str, str]:
    """``evalcluster.compare.<name>``: the verdict, the targets, the scorer and the settings."""
    comparison = summary.get("comparison")
    if not isinstance(comparison, Mapping):
        return {}
    return {TAG_PREFIX + k: str(comparison[k]) for k in _TAGS if comparison.get(k) is not None}
