"""Scorers and statistics.

Scorers turn an output into a `Score`; `build_scorers` makes them from a suite's `scorers`
list through a registry (see `registry`). The statistics give every mean its standard error
and confidence interval (`summarize`, `ScoreAccumulator`), break them down by metadata
(`group_by`), estimate pass@k and compare two runs sample by sample (`compare_paired`);
`evalcluster.jobs.summary` builds ``summary.json`` from them.
"""

from evalcluster.scoring.base import JudgedScorer, Score, Scorer, needs_judge
from evalcluster.scoring.model_graded import JudgeRequiredError, ModelGradedScorer
from evalcluster.scoring.paired import Comparison, compare_paired, mcnemar
from evalcluster.scoring.passk import PassAtK, mean_pass_at_k, pass_at_k
from evalcluster.scoring.registry import build_scorers, register_scorer, scorer_types
from evalcluster.scoring.stats import (
    AccumulatorKey,
    ScoreAccumulator,
    ScoreAccumulators,
    Summary,
    group_by,
    summarize,
    wilson_interval,
)
from evalcluster.scoring.summary import scores_by_sample

__all__ = [
    "AccumulatorKey",
    "Comparison",
    "JudgeRequiredError",
    "JudgedScorer",
    "ModelGradedScorer",
    "PassAtK",
    "Score",
    "ScoreAccumulator",
    "ScoreAccumulators",
    "Scorer",
    "Summary",
    "build_scorers",
    "compare_paired",
    "group_by",
    "mcnemar",
    "mean_pass_at_k",
    "needs_judge",
    "pass_at_k",
    "register_scorer",
    "scorer_types",
    "scores_by_sample",
    "summarize",
    "wilson_interval",
]
