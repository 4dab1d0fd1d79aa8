"""The scorer columns of a result row, named one way for every layer that reads them.

A scorer named `exact` writes `score_exact` (float, null for an error row). The store's schemas,
the summaries, the MLflow traces, comparisons, the workbench and the command line find a run's
scorers by this prefix; this module imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SCORE_PREFIX", "score_column", "scorer_names"]

SCORE_PREFIX = "score_"


def score_column(scorer: str) -> str:
    """The result column of `scorer`."""
    return SCORE_PREFIX + scorer


def scorer_names(columns: Iterable[str]) -> list[str]:
    """The scorers whose columns are among `columns`, in their order."""
    return [c[len(SCORE_PREFIX) :] for c in columns if c.startswith(SCORE_PREFIX)]
