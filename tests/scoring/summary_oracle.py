"""A whole-rows reference for `summary.json` (the test oracle of `evalcluster.jobs.summary`,
which computes the same figures shard by shard with mergeable accumulators).

It holds every row in memory, so the product never uses it; the tests compare the two."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalcluster.rows import SCORE_PREFIX, scorer_names
from evalcluster.scoring.clustered import clustered_mean
from evalcluster.scoring.differences import paired_difference
from evalcluster.scoring.epochs import epoch_split
from evalcluster.scoring.passk import mean_pass_at_k
from evalcluster.scoring.stats import group_key, summarize
from evalcluster.scoring.summary import default_pass_ks


@dataclass
class _TargetRows:
    rows: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    epochs: dict[Hashable, set[Any]] = field(default_factory=lambda: defaultdict(set))
    # scorer -> sample -> that sample's scores over epochs (None = not scorable)
    scores: dict[str, dict[Hashable, list[float | None]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    # sample -> metadata column -> group value
    groups: dict[Hashable, dict[str, str]] = field(default_factory=dict)
    clusters: dict[Hashable, str | None] = field(default_factory=dict)  # sample -> cluster


def summary_for_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    scorers: Sequence[str] | None = None,
    group_by: Sequence[str] = (),
    pass_ks: Sequence[int] | None = None,
    threshold: float = 1.0,
    confidence: float = 0.95,
    cluster: str | None = None,
) -> dict[str, Any]:
    """Per-target, per-scorer summaries of result rows, as a JSON-serialisable dict.

    Rows are dicts with ``target``, ``sample_id``, ``epoch``, ``error_kind``, a
    ``score_<name>`` column per scorer (`scorers`; by default every such column seen) and the
    metadata columns named in `group_by`. A row with an ``error_kind`` is an infrastructure
    failure: it is counted under ``errors`` and never as a wrong answer.

    The shape is `summary.json`'s scorer part, documented in `evalcluster.jobs.summary`.
    """
    by_target: dict[str, _TargetRows] = defaultdict(_TargetRows)
    wanted = list(scorers) if scorers is not None else None
    for row in rows:
        target = by_target[str(row["target"])]
        target.rows += 1
        sample = row["sample_id"]
        target.epochs[sample].add(row.get("epoch", 0))
        target.groups.setdefault(sample, {c: group_key(row.get(c)) for c in group_by})
        if cluster is not None and sample not in target.clusters:
            value = row.get(cluster)
            target.clusters[sample] = None if value is None else group_key(value)
        if row.get("error_kind"):
            target.errors[str(row["error_kind"])] += 1
            continue
        names = wanted if wanted is not None else _score_columns(row)
        for name in names:
            target.scores[name][sample].append(row.get(SCORE_PREFIX + name))
    names = sorted(by_target)
    return {
        "confidence": confidence,
        "pass_threshold": threshold,
        "cluster": cluster,
        "targets": {
            name: _target_summary(
                by_target[name], wanted, group_by, pass_ks, threshold, confidence, cluster
            )
            for name in names
        },
        "paired": [
            _pair_summary(by_target, a, b, wanted, confidence)
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        ],
    }


def _sample_means(per_sample: Mapping[Hashable, list[float | None]]) -> dict[Hashable, float]:
    means = {}
    for sample, values in per_sample.items():
        scored = [v for v in values if v is not None]
        if scored:
            means[sample] = math.fsum(scored) / len(scored)
    return means


def _pair_summary(
    by_target: Mapping[str, _TargetRows],
    a: str,
    b: str,
    wanted: Sequence[str] | None,
    confidence: float,
) -> dict[str, Any]:
    ta, tb = by_target[a], by_target[b]
    names = wanted if wanted is not None else sorted(set(ta.scores) & set(tb.scores))
    return {
        "a": a,
        "b": b,
        "scorers": {
            name: paired_difference(
                _sample_means(ta.scores.get(name, {})),
                _sample_means(tb.scores.get(name, {})),
                clusters=ta.clusters or None,
                names=(a, b),
                confidence=confidence,
            ).to_dict()
            for name in names
        },
    }


def _score_columns(row: Mapping[str, Any]) -> list[str]:
    return scorer_names(row)


def _target_summary(
    t: _TargetRows,
    wanted: Sequence[str] | None,
    group_by: Sequence[str],
    pass_ks: Sequence[int] | None,
    threshold: float,
    confidence: float,
    cluster: str | None = None,
) -> dict[str, Any]:
    epochs = max((len(e) for e in t.epochs.values()), default=0)
    names = wanted if wanted is not None else sorted(t.scores)
    return {
        "rows": t.rows,
        "samples": len(t.epochs),
        "epochs": epochs,
        "errors": sum(t.errors.values()),
        "error_kinds": dict(sorted(t.errors.items())),
        "scorers": {
            name: _scorer_summary(
                t.scores.get(name, {}), t.groups, epochs, group_by, pass_ks, threshold, confidence
            )
            | _more_summaries(t.scores.get(name, {}), t.clusters, epochs, cluster, confidence)
            for name in names
        },
    }


def _scorer_summary(
    per_sample: Mapping[Hashable, list[float | None]],
    groups: Mapping[Hashable, Mapping[str, str]],
    epochs: int,
    group_by: Sequence[str],
    pass_ks: Sequence[int] | None,
    threshold: float,
    confidence: float,
) -> dict[str, Any]:
    sample_means: dict[Hashable, float] = {}
    rows_scored = unscored = 0
    for sample, values in per_sample.items():
        scored = [v for v in values if v is not None]
        rows_scored += len(scored)
        unscored += len(values) - len(scored)
        if scored:
            sample_means[sample] = math.fsum(scored) / len(scored)
    out: dict[str, Any] = summarize(sample_means.values(), confidence=confidence).to_dict()
    out["rows_scored"] = rows_scored
    out["unscored"] = unscored
    out["groups"] = {}
    for column in group_by:
        by_value: dict[str, list[float]] = defaultdict(list)
        for sample, mean in sample_means.items():
            by_value[groups[sample][column]].append(mean)
        out["groups"][column] = {
            value: summarize(by_value[value], confidence=confidence).to_dict()
            for value in sorted(by_value)
        }
    if epochs > 1:
        ks = default_pass_ks(epochs) if pass_ks is None else sorted(set(pass_ks))
        out["pass_at_k"] = {
            str(k): mean_pass_at_k(
                per_sample, k, threshold=threshold, confidence=confidence
            ).to_dict()
            for k in ks
        }
    return out


def _more_summaries(
    per_sample: Mapping[Hashable, list[float | None]],
    clusters: Mapping[Hashable, str | None],
    epochs: int,
    cluster: str | None,
    confidence: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cluster is not None:
        means = _sample_means(per_sample)
        out["clustered"] = clustered_mean(
            list(means.values()), [clusters.get(k) for k in means], confidence=confidence
        ).to_dict()
    if epochs > 1:
        out["epoch_split"] = epoch_split(per_sample.values()).to_dict()
    return out
