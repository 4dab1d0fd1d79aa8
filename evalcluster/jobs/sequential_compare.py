"""A run with a `compare:` section: both targets on the same samples, stopped once decided.

The samples are put in a seeded random order (the suite's seed) and cut into shards of
`shard_size`; shard k of `a` and of `b` hold the same samples and are dispatched together.
The driver tells `on_commit` each shard it records; the sequence (`scoring.sequential`) is
updated only on the contiguous prefix of shard indexes committed for both targets, in index
order, so its path is the same whatever order the shards commit in, and a resumed run that
replays the committed shards (read back from the lake) reaches the same state and verdict.

Pairing: a row of `a` and a row of `b` with the same sample_id and epoch, both without error
and with a score; a sample's observation is the mean of b - a over its paired epochs (epochs
of one sample are not independent, samples in random order are). Pairs with an error or no
score on either side are left out and counted.

Once decided, no new shard is dispatched; shards in flight finish and their rows still update
the interval (a confidence sequence holds at every look) but not the verdict, which is the
first look's that decided. Money not spent: cost per sample so far (both targets, judges
included) times the samples of the cap (`max_samples`, at most the dataset) never run.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from evalcluster.errors import EvalclusterError, SpecError
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.samples import Sample, SampleBatch, iter_sample_batches
from evalcluster.rows import SCORE_PREFIX
from evalcluster.runstate import RunState
from evalcluster.scoring.sequential import ConfidenceSequence, Verdict
from evalcluster.store.fs import Store
from evalcluster.store.lake import shard_key
from evalcluster.store.manifest import RunManifest
from evalcluster.suite.loader import LoadedSuite

TUNE_FRACTION = 10  # the sequence is tightest at cap / TUNE_FRACTION samples
_COLUMNS = ("sample_id", "epoch", "error_kind", "cost_usd", "judge_cost_usd")


class ComparisonError(EvalclusterError):
    """A comparison cannot go on (a score outside [0, 1], a shard that cannot be read)."""


def sample_order(count: int, seed: int) -> np.ndarray:
    """The seeded random order of `count` dataset rows: row positions, first to run first."""
    return np.random.default_rng([seed, 0x5E0_C0DE]).permutation(count)


class SequentialComparison:
    """The comparison of one run: its sample order, its sequence and its bookkeeping."""

    def __init__(
        self,
        suite: LoadedSuite,
        store: Store,
        run_id: str,
        *,
        max_samples: int | None = None,
    ) -> None:
        spec = suite.spec.compare
        if spec is None:
            raise ValueError("the suite has no compare section")
        self.store, self.run_id = store, run_id
        self.a, self.b = spec.a, spec.b
        self.scorer = spec.scorer or suite.spec.scorers[0].column_name
        self.max_samples = spec.max_samples
        self._shards = _ordered_shards(suite, min(spec.max_samples, max_samples or math.inf))
        self.cap = sum(len(shard) for shard in self._shards)
        self.sequence = ConfidenceSequence(
            alpha=spec.alpha,
            margin=spec.margin,
            tune_samples=max(1, self.cap // TUNE_FRACTION),
        )
        self._committed: dict[str, set[int]] = {self.a: set(), self.b: set()}
        self._next = 0  # the first shard index not yet in the sequence
        self.samples_used = 0  # samples in the shards looked at (pairs or not)
        self.pairs_excluded = 0  # (sample, epoch) pairs with an error or no score
        self.cost_usd = 0.0

    # -- what the driver calls --------------------------------------------------------------
    def batches(self) -> Iterator[SampleBatch]:
        """The run's shards in order: the samples in seeded random order, capped."""
        for index, samples in enumerate(self._shards):
            yield SampleBatch(index, samples)

    def restore(self, recorded: Mapping[str, Mapping[int, Any]]) -> None:
        """Replay the shards a manifest records as committed (a resumed run)."""
        for target in (self.a, self.b):
            for index in sorted(recorded.get(target, {})):
                self.on_commit(target, index)

    def on_commit(self, target: str, index: int) -> None:
        """Shard `index` of `target` is committed: look at every newly complete pair."""
        if target not in self._committed or index >= len(self._shards):
            return
        self._committed[target].add(index)
        while self._next in self._committed[self.a] and self._next in self._committed[self.b]:
            self._look(self._next)
            self._next += 1

    @property
    def decided(self) -> bool:
        return self.sequence.decided

    def should_stop(self, index: int) -> bool:
        """Whether dispatching ends before shard `index`: the comparison has decided and no
        target has this shard or a later one committed (pairs half done, or committed out of
        order before a kill, are finished, so every shard before the end is complete)."""
        if not self.decided:
            return False
        return all(index > max(done, default=-1) for done in self._committed.values())

    def verdict(self, status: str) -> Verdict:
        """The verdict of a run ending with `status`: decided, or `inconclusive` when it ran
        out of samples or budget, or `undecided` when it was stopped and may be resumed."""
        if self.decided or status in (RunState.FINISHED, RunState.BUDGET_EXHAUSTED):
            return self.sequence.final_verdict()
        return "undecided"

    def result(self, status: str) -> dict[str, Any]:
        """The comparison as JSON-ready data: manifest, summary, MLflow, the API."""
        seq = self.sequence
        decided = seq.looks[seq.decided_at] if seq.decided_at is not None else None
        per_sample = self.cost_usd / self.samples_used if self.samples_used else None
        not_run = max(0, self.cap - self.samples_used)
        return {
            "a": self.a,
            "b": self.b,
            "scorer": self.scorer,
            "margin": seq.margin,
            "alpha": seq.alpha,
            "method": "asymptotic confidence sequence (Waudby-Smith et al. 2024)",
            "tune_samples": seq.tune_samples,
            "verdict": self.verdict(status),
            "decided": seq.decided,
            "difference": seq.mean if seq.count else None,
            "lower": seq.lower if seq.count >= 2 else None,
            "upper": seq.upper if seq.count >= 2 else None,
            "pairs": seq.count,
            "pairs_excluded": self.pairs_excluded,
            "samples_used": self.samples_used,
            "samples_at_decision": decided.samples if decided else None,
            "max_samples": self.max_samples,
            "samples_cap": self.cap,
            "samples_not_run": not_run,
            "cost_usd": self.cost_usd,
            "cost_per_sample_usd": per_sample,
            "usd_not_spent": per_sample * not_run if per_sample is not None else None,
            "looks": len(seq.looks),
            "path": [look.to_dict() for look in seq.looks],
            "state": seq.to_dict() | {"looks": len(seq.looks)},
        }

    def recorded_in(self, manifest: RunManifest, status: str) -> RunManifest:
        """`manifest` with this comparison's result in its `comparison` field."""
        return manifest.model_copy(update={"comparison": self.result(status)})

    # -- one look ---------------------------------------------------------------------------
    def _look(self, index: int) -> None:
        order = {s.sample_id: i for i, s in enumerate(self._shards[index])}
        rows_a = self._read(self.a, index)
        rows_b = self._read(self.b, index)
        differences: dict[str, list[float]] = defaultdict(list)
        for key, score_a in rows_a.items():
            score_b = rows_b.get(key)
            if score_a is None or score_b is None:  # an error, no score, or no partner row
                self.pairs_excluded += 1
                continue
            differences[key[0]].append(score_b - score_a)
        self.pairs_excluded += len(rows_b.keys() - rows_a.keys())
        observations = [
            float(np.mean(differences[sample_id]))
            for sample_id in sorted(differences, key=lambda s: order.get(s, len(order)))
        ]
        self.samples_used += len(self._shards[index])
        self.sequence.update(observations)

    def _read(self, target: str, index: int) -> dict[tuple[str, int], float | None]:
        """(sample_id, epoch) -> the score, or None for an error or no score; adds the cost."""
        key = shard_key(self.run_id, target, index)
        column = SCORE_PREFIX + self.scorer
        try:
            shard = pq.ParquetFile(io.BytesIO(self.store.get(key)))
            wanted = [*_COLUMNS, column]
            table = shard.read(columns=[c for c in wanted if c in shard.schema_arrow.names])
        except Exception as exc:  # noqa: BLE001 - a store or Parquet error, named
            raise ComparisonError(f"cannot read {key} for the comparison: {exc}") from exc
        data = table.to_pydict()
        self.cost_usd += float(sum(data["cost_usd"])) + float(sum(data["judge_cost_usd"]))
        scores = data.get(column, [None] * table.num_rows)
        out: dict[tuple[str, int], float | None] = {}
        for sample_id, epoch, error, score in zip(
            data["sample_id"], data["epoch"], data["error_kind"], scores, strict=True
        ):
            if error is None and score is not None and not 0.0 <= score <= 1.0:
                raise ComparisonError(
                    f"compare.scorer: {self.scorer!r} gave {score} for sample {sample_id!r}; "
                    "a comparison needs scores in [0, 1]"
                )
            out[(sample_id, epoch)] = score if error is None else None
        return out


def _ordered_shards(suite: LoadedSuite, cap: float) -> list[list[Sample]]:
    """Every sample, in the seeded random order, cut at `cap` and into shards."""
    samples = [s for batch in iter_sample_batches(suite) for s in batch.samples]
    order = sample_order(len(samples), suite.spec.seed)
    kept = [samples[i] for i in order[: int(min(cap, len(samples)))]]
    size = suite.spec.shard_size
    return [kept[i : i + size] for i in range(0, len(kept), size)]


def start_comparison(
    suite: LoadedSuite, store: Store, manifest: RunManifest, options: RunOptions
) -> SequentialComparison | None:
    """The run's comparison, its state rebuilt from the shards `manifest` records; None when
    the suite has no `compare:` section."""
    if suite.spec.compare is None:
        return None
    targets = {t.name for t in suite.spec.targets}
    for name in (suite.spec.compare.a, suite.spec.compare.b):
        if name not in targets:
            raise SpecError(
                f"the comparison needs target {name!r}; do not leave it out", field="--target"
            )
    comparison = SequentialComparison(
        suite, store, manifest.run_id, max_samples=options.max_samples
    )
    comparison.restore(manifest.shards)
    return comparison
