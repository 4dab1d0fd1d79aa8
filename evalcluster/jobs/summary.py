"""A run's `summary.json`, computed from the lake one shard at a time.

A shard holds every epoch of its samples, so per-sample means and pass@k are complete within
one shard file; the rest are mergeable accumulators. Shard k of every target holds the same
samples, so shards are read index by index and the paired differences between targets are
accumulated from one index's files. Memory therefore stays bounded by one shard per target,
whatever the run's size. Each target also gets usage, cost and latency. The scorer part:

A sample's epochs are first averaged, so ``n`` counts samples and the interval reflects
sample-to-sample variation (with one epoch this is the plain per-row summary). Shape::

    {
      "confidence": 0.95,
      "pass_threshold": 1.0,            # a score >= this is a pass, for pass@k
      "targets": {
        "<target>": {
          "rows": 120, "samples": 40, "epochs": 3,
          "errors": 2, "error_kinds": {"rate_limited": 2},
          "scorers": {
            "<scorer>": {
              "n": 40, "mean": 0.8, "stderr": 0.05, "ci_low": 0.7, "ci_high": 0.9,
              "method": "t",             # "wilson" (binary scores), "t", or null
              "rows_scored": 117,        # rows with a score
              "unscored": 1,             # rows without error whose score was null
              "groups": {"<column>": {"<value>": {n, mean, stderr, ci_low, ci_high,
                                                  method}}},
              "pass_at_k": {"1": {"k": 1, "skipped": 0, n, mean, ...}, "3": {...}}
            }
          }
        }
      }
    }

``pass_at_k`` is present only when the target has more than one epoch; ``groups`` is
empty without `group_by`. Missing metadata values form the group "null".

With `cluster` (a metadata column) each scorer also gets ``clustered``
(`evalcluster.scoring.clustered`); with more than one epoch, ``epoch_split``
(`evalcluster.scoring.epochs`). ``paired`` lists, for each pair of targets in name order,
the per-scorer `evalcluster.scoring.differences.PairedDifference` of b - a.

The statistics beyond that (formulas in docs/statistics.md):

- ``clustered`` under each scorer when the suite names a ``cluster`` column: the CR1 standard
  error and t(G-1) interval of the mean beside the naive ``stderr`` (`scoring/clustered.py`);
- ``epoch_split`` under each scorer when the suite has more than one epoch: the variance of the
  mean split into between- and within-question parts (`scoring/epochs.py`);
- ``paired``: for each pair of targets (in the suite's order, ``diff`` = b - a) and scorer, the
  mean difference on their common samples with its (clustered) standard error and interval,
  the correlation of their scores and McNemar's discordant counts (`scoring/differences.py`).
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from itertools import combinations, groupby
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evalcluster.rows import ADDED_COLUMNS, score_column
from evalcluster.scoring.clustered import ClusterSums
from evalcluster.scoring.differences import PairAccumulator
from evalcluster.scoring.epochs import EpochAccumulator
from evalcluster.scoring.passk import pass_at_k
from evalcluster.scoring.stats import ScoreAccumulator, group_key
from evalcluster.scoring.summary import default_pass_ks
from evalcluster.store.fs import Store
from evalcluster.store.lake import file_columns, list_shards, with_added_columns
from evalcluster.suite.loader import LoadedSuite

CONFIDENCE = 0.95
PASS_THRESHOLD = 1.0
LATENCY_SAMPLE_CAP = 200_000  # latencies kept for percentiles; beyond it, a uniform subsample


@dataclass
class _ScorerAcc:
    overall: ScoreAccumulator = field(default_factory=ScoreAccumulator)
    groups: dict[str, dict[str, ScoreAccumulator]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(ScoreAccumulator))
    )
    pass_at: dict[int, ScoreAccumulator] = field(
        default_factory=lambda: defaultdict(ScoreAccumulator)
    )
    pass_skipped: Counter[int] = field(default_factory=Counter)
    clustered: ClusterSums = field(default_factory=ClusterSums)
    epochs: EpochAccumulator = field(default_factory=EpochAccumulator)
    rows_scored: int = 0
    unscored: int = 0


@dataclass
class _TargetAcc:
    rows: int = 0
    samples: int = 0
    epochs: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_cost_usd: float = 0.0
    batch_rows: int = 0
    cached_input_tokens: int = 0
    usd_saved_batch: float = 0.0
    usd_saved_cache: float = 0.0
    latencies: list[float] = field(default_factory=list)
    latency_seen: int = 0
    served_by: Counter[str] = field(default_factory=Counter)
    scorers: dict[str, _ScorerAcc] = field(default_factory=lambda: defaultdict(_ScorerAcc))


@dataclass
class _ShardMeans:
    """One shard file's per-sample means (scorer -> sample -> mean) and sample clusters."""

    means: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    clusters: dict[str, Hashable | None] = field(default_factory=dict)


def build_summary(
    store: Store, run_id: str, suite: LoadedSuite, scorer_names: list[str], status: str
) -> dict[str, Any]:
    epochs = suite.spec.epochs
    group_by = list(suite.spec.group_by)
    cluster = suite.spec.cluster
    targets: dict[str, _TargetAcc] = defaultdict(_TargetAcc)
    columns = [  # the target is the shard's partition, not a column of its file
        "sample_id",
        "epoch",
        "error_kind",
        "cache_hit",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "judge_input_tokens",
        "judge_output_tokens",
        "judge_cost_usd",
        "latency_ms",
        "served_by",
        *sorted(ADDED_COLUMNS),  # null in files written before they existed
        *(["metadata"] if group_by or cluster else []),  # only groups and clusters read it
        *(score_column(s) for s in scorer_names),
    ]
    order = [t.name for t in suite.spec.targets]
    pairs: dict[tuple[str, str, str], PairAccumulator] = defaultdict(PairAccumulator)
    rng = np.random.default_rng(0)
    shards = sorted(list_shards(store, run_id), key=lambda s: (s.index, s.target))
    for _, same_index in groupby(shards, key=lambda s: s.index):
        means: dict[str, _ShardMeans] = {}
        for shard in same_index:
            table = _read_shard(store.get(shard.key), columns, f"run {run_id!r}")
            means[shard.target] = _add_shard(
                targets[shard.target], table, scorer_names, group_by, cluster, epochs, rng
            )
        _add_pairs(pairs, means, order, scorer_names)
    return {
        "run_id": run_id,
        "suite": suite.spec.name,
        "suite_version": suite.version,
        "status": status,
        "confidence": CONFIDENCE,
        "pass_threshold": PASS_THRESHOLD,
        "cluster": cluster,
        "targets": {
            name: _target_dict(acc, epochs, cluster is not None)
            for name, acc in sorted(targets.items())
        },
        # What the vendors' batch APIs and prompt caches saved, all targets and judges.
        "usd_saved_batch": round(math.fsum(t.usd_saved_batch for t in targets.values()), 10),
        "usd_saved_cache": round(math.fsum(t.usd_saved_cache for t in targets.values()), 10),
        "paired": _paired_list(pairs, order, scorer_names),
    }


def _read_shard(data: bytes, columns: list[str], where: str) -> pa.Table:
    """The shard file's `columns`; an `ADDED_COLUMNS` column the file predates reads as null."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    return with_added_columns(parquet.read(columns=file_columns(parquet, columns, where)), columns)


def _add_pairs(
    pairs: dict[tuple[str, str, str], PairAccumulator],
    means: dict[str, _ShardMeans],
    order: list[str],
    scorers: list[str],
) -> None:
    present = [t for t in order if t in means]
    for a, b in combinations(present, 2):
        for name in scorers:
            values_a, values_b = means[a].means[name], means[b].means[name]
            acc = pairs[(a, b, name)]
            for sample, x in values_a.items():
                y = values_b.get(sample)
                if y is not None:
                    acc.add(x, y, means[a].clusters.get(sample))


def _paired_list(
    pairs: dict[tuple[str, str, str], PairAccumulator], order: list[str], scorers: list[str]
) -> list[dict[str, Any]]:
    out = []
    for a, b in combinations(order, 2):
        if not any((a, b, name) in pairs for name in scorers):
            continue
        out.append(
            {
                "a": a,
                "b": b,
                "scorers": {
                    name: pairs[(a, b, name)].result(a, b, confidence=CONFIDENCE).to_dict()
                    for name in scorers
                    if (a, b, name) in pairs
                },
            }
        )
    return out


def _add_shard(
    t: _TargetAcc,
    table: pa.Table,
    scorers: list[str],
    group_by: list[str],
    cluster: str | None,
    epochs: int,
    rng: np.random.Generator,
) -> _ShardMeans:
    # Column lists, not a dict per row: the summary is built after the last shard commits,
    # so its time is added to the run's.
    c = table.to_pydict()
    errors, hits = c["error_kind"], c["cache_hit"]
    t.rows += table.num_rows
    t.input_tokens += sum(c["input_tokens"])
    t.output_tokens += sum(c["output_tokens"])
    t.judge_input_tokens += sum(c["judge_input_tokens"])
    t.judge_output_tokens += sum(c["judge_output_tokens"])
    for cost in c["cost_usd"]:
        t.cost_usd += cost
    for cost in c["judge_cost_usd"]:
        t.judge_cost_usd += cost
    t.served_by.update(c["served_by"])
    t.batch_rows += sum(1 for batched in c["batch"] if batched)
    t.cached_input_tokens += sum(n for n in c["cached_input_tokens"] if n)
    t.usd_saved_batch += math.fsum(v for v in c["usd_saved_batch"] if v)
    t.usd_saved_cache += math.fsum(v for v in c["usd_saved_cache"] if v)
    t.cache_hits += sum(1 for hit in hits if hit)
    t.errors.update(error for error in errors if error)
    for error, hit, latency in zip(errors, hits, c["latency_ms"], strict=True):
        if not error and not hit:
            _keep_latency(t, latency, rng)
    per_sample: dict[str, list[int]] = defaultdict(list)
    for i, sample_id in enumerate(c["sample_id"]):
        per_sample[sample_id].append(i)
    t.samples += len(per_sample)
    t.epochs = max(t.epochs, max(map(len, per_sample.values()), default=0))
    groups: dict[str, str] = {}
    out = _ShardMeans()
    sample_cluster: Hashable | None = None
    for sample_id, indices in per_sample.items():
        if group_by or cluster:
            metadata = json.loads(c["metadata"][indices[0]] or "{}")
            groups = {column: group_key(metadata.get(column)) for column in group_by}
            if cluster:
                value = metadata.get(cluster)
                sample_cluster = None if value is None else group_key(value)
                out.clusters[sample_id] = sample_cluster
        for name in scorers:
            mean = _add_sample(
                t.scorers[name], c[score_column(name)], errors, indices, groups, epochs
            )
            if mean is not None:
                out.means[name][sample_id] = mean
                if cluster:
                    t.scorers[name].clustered.add(sample_cluster, mean)
    return out


def _add_sample(
    acc: _ScorerAcc,
    values: list[Any],
    errors: list[str | None],
    indices: list[int],
    groups: dict[str, str],
    epochs: int,
) -> float | None:
    """Add one sample's epochs; returns its mean score, or None when none was scored."""
    scored = []
    for i in indices:
        if errors[i]:
            continue  # an infrastructure error is neither a pass nor a fail
        if values[i] is None:
            acc.unscored += 1
        else:
            scored.append(float(values[i]))
    acc.rows_scored += len(scored)
    mean = None
    if scored:
        mean = math.fsum(scored) / len(scored)
        acc.overall.add(mean)
        for column_name, value in groups.items():
            acc.groups[column_name][value].add(mean)
    if epochs > 1:
        acc.epochs.add_question(scored)
        passes = sum(1 for s in scored if s >= PASS_THRESHOLD)
        for k in default_pass_ks(epochs):
            if len(scored) >= k:
                acc.pass_at[k].add(pass_at_k(len(scored), passes, k))
            else:
                acc.pass_skipped[k] += 1
    return mean


def _keep_latency(t: _TargetAcc, value: float, rng: np.random.Generator) -> None:
    t.latency_seen += 1
    if len(t.latencies) < LATENCY_SAMPLE_CAP:
        t.latencies.append(value)
        return
    slot = int(rng.integers(0, t.latency_seen))  # reservoir sampling keeps a uniform sample
    if slot < LATENCY_SAMPLE_CAP:
        t.latencies[slot] = value


def _target_dict(t: _TargetAcc, epochs: int, clustered: bool) -> dict[str, Any]:
    latencies = np.asarray(t.latencies) if t.latencies else None
    return {
        "rows": t.rows,
        "samples": t.samples,
        "epochs": t.epochs,
        "errors": sum(t.errors.values()),
        "error_kinds": dict(sorted(t.errors.items())),
        "cache_hits": t.cache_hits,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cost_usd": round(t.cost_usd, 10),
        "judge_input_tokens": t.judge_input_tokens,
        "judge_output_tokens": t.judge_output_tokens,
        "judge_cost_usd": round(t.judge_cost_usd, 10),
        "batch_rows": t.batch_rows,
        "cached_input_tokens": t.cached_input_tokens,
        "usd_saved_batch": round(t.usd_saved_batch, 10),
        "usd_saved_cache": round(t.usd_saved_cache, 10),
        "latency_ms_p50": None if latencies is None else float(np.percentile(latencies, 50)),
        "latency_ms_p95": None if latencies is None else float(np.percentile(latencies, 95)),
        "served_by": dict(t.served_by),
        "scorers": {name: _scorer_dict(acc, epochs, clustered) for name, acc in t.scorers.items()},
    }


def _scorer_dict(acc: _ScorerAcc, epochs: int, clustered: bool) -> dict[str, Any]:
    out: dict[str, Any] = acc.overall.summary(confidence=CONFIDENCE).to_dict()
    if clustered:
        out["clustered"] = acc.clustered.summary(confidence=CONFIDENCE).to_dict()
    if epochs > 1:
        out["epoch_split"] = acc.epochs.split().to_dict()
    out["rows_scored"] = acc.rows_scored
    out["unscored"] = acc.unscored
    out["groups"] = {
        column: {
            value: a.summary(confidence=CONFIDENCE).to_dict() for value, a in sorted(values.items())
        }
        for column, values in acc.groups.items()
    }
    if epochs > 1:
        out["pass_at_k"] = {
            str(k): {
                "k": k,
                "skipped": acc.pass_skipped[k],
                **acc.pass_at[k].summary(confidence=CONFIDENCE).to_dict(),
            }
            for k in default_pass_ks(epochs)
        }
    return out


def target_results(suite: LoadedSuite, summary: dict[str, Any]) -> list[Any]:
    """Per-target params and metrics for MLflow, with the names docs/mlflow.md lists."""
    from evalcluster.tracking import TargetResult

    results = []
    by_name = {t.name: t for t in suite.spec.targets}
    for name, t in summary.get("targets", {}).items():
        spec = by_name.get(name)
        if spec is None:
            continue
        metrics: dict[str, float] = {
            "tokens/input": t["input_tokens"],
            "tokens/output": t["output_tokens"],
            "cost_usd": t["cost_usd"] + t["judge_cost_usd"],
            "errors": t["errors"],
            # .get: a summary.json written before the savings were recorded
            "cost_usd/saved_batch": t.get("usd_saved_batch", 0.0),
            "cost_usd/saved_cache": t.get("usd_saved_cache", 0.0),
        }
        for key in ("p50", "p95"):
            if t[f"latency_ms_{key}"] is not None:
                metrics[f"latency_ms/{key}"] = t[f"latency_ms_{key}"]
        for scorer, s in t["scorers"].items():
            for stat in ("mean", "stderr", "ci_low", "ci_high"):
                if s.get(stat) is not None:
                    metrics[f"{scorer}/{stat}"] = s[stat]
            for stat in ("stderr", "ci_low", "ci_high", "design_effect"):
                if (s.get("clustered") or {}).get(stat) is not None:
                    metrics[f"{scorer}/{stat}_clustered"] = s["clustered"][stat]
            for stat in ("var_between", "var_within"):
                if (s.get("epoch_split") or {}).get(stat) is not None:
                    metrics[f"{scorer}/{stat}"] = s["epoch_split"][stat]
        results.append(
            TargetResult(
                name=name,
                provider=spec.provider,
                model=spec.model,
                params=spec.params.as_dict(),
                sample_count=t["samples"],
                metrics=metrics,
            )
        )
    return results
