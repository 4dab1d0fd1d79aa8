"""One shard's work: samples x one target x every epoch, committed once as one Parquet file.

A shard is idempotent: if its file already exists it is not evaluated again, its provider calls
are not repeated, and the commit itself is an atomic create-if-absent. Answers already in the
response cache are reused; failed calls never enter the cache. A shard stopped by the budget or a
cancel is not committed (a later resume finishes it), but the answers it did get are cached so
the resume does not pay for them twice.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pyarrow.parquet as pq

from evalcluster.actors.provider import BatchRoute, provider_actor_name
from evalcluster.actors.run import ProgressDelta, RunHandle
from evalcluster.cluster import NAMESPACE
from evalcluster.jobs.budget import projected_cost
from evalcluster.jobs.executors import resolve
from evalcluster.jobs.samples import (
    Sample,
    build_request,
    endpoint_identity,
    is_sampling,
    request_hash,
)
from evalcluster.lazy_ray import ray
from evalcluster.providers.base import CompletionRequest
from evalcluster.providers.calls import CallResult
from evalcluster.providers.pricing import BATCH_DISCOUNT, price_for
from evalcluster.rows import ResultRow, score_column
from evalcluster.scoring import JudgedScorer, Score, build_scorers, needs_judge
from evalcluster.store.cache import ResponseCache, cache_entry_from_call
from evalcluster.store.fs import Store
from evalcluster.store.lake import commit_shard, shard_key
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.models import ProviderConfig, TargetSpec

CHUNK_SIZE = 64
# Without a budget, a shard's progress goes to the registry at most this often (and when its
# calls are done): a registry call costs about a millisecond of CPU on each side.
REPORT_EVERY_S = 0.5
# Times a chunk is sent again after its provider actor died with it (Ray restarts the actor).
ACTOR_RETRIES = 5
ACTOR_RETRY_WAIT_S = 1.0  # then 2, 4, 8, 16: a restart has about half a minute


@dataclass(frozen=True)
class ShardContext:
    """Everything a shard task needs, shipped once per run to the workers."""

    run_id: str
    suite: LoadedSuite
    store: Store
    # resolved: simulated providers have their base_url (the suite's own are in suite.spec)
    providers: dict[str, ProviderConfig]
    live: RunHandle | None = None  # where progress, budget and cancel go; None: nowhere
    use_cache: bool = True
    priority: float = 1.0
    # Without a budget a shard neither reserves nor prices its chunks: that saves a blocking
    # registry call per chunk. A cancel still stops it (the driver cancels its task).
    budgeted: bool = True
    # The in-process executor's endpoints (`jobs/local_executor.LocalEndpoints`); None: the
    # cluster's provider actors, found by name.
    endpoints: Any = None
    # Providers this run sends by the vendor's batch API (`ProviderConfig.batches`, decided
    # by the driver, which knows how many requests each endpoint gets: `batching_providers`).
    batching: frozenset[str] = frozenset()

    def target(self, name: str) -> TargetSpec:
        for target in (*self.suite.spec.targets, *self.suite.spec.judges):
            if target.name == name:
                return target
        raise KeyError(name)

    def endpoint(self, provider_name: str) -> str:
        """The provider's cache identity (`endpoint_identity`), taken from its config as the
        suite gave it, not from `providers`: there a simulator the run started has its
        address filled in, a new port every run, which would make every answer a miss."""
        given = self.suite.spec.providers.get(provider_name)
        return endpoint_identity(self.providers[provider_name] if given is None else given)


@dataclass
class ShardOutcome:
    target: str
    index: int
    committed: bool  # the shard's file exists now (written by this task or found)
    rows: int = 0
    stopped: str | None = None  # "budget_exhausted" or "cancelled" when not committed
    provider_calls: int = 0
    cache_hits: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class _Call(NamedTuple):  # one per sample and epoch: a tuple is quicker to make than a dataclass
    sample: Sample
    epoch: int
    request: CompletionRequest
    hash: str


@ray.remote(max_retries=3, retry_exceptions=False)
def evaluate_shard(
    ctx: ShardContext, samples: list[Sample], target_name: str, index: int
) -> ShardOutcome:
    return ShardEvaluator(ctx, target_name, index).run(samples)


class ShardEvaluator:
    def __init__(
        self,
        ctx: ShardContext,
        target_name: str,
        index: int,
        *,
        abandoned: threading.Event | None = None,
    ):
        self.ctx = ctx
        self.abandoned = abandoned  # set by the in-process executor's cancel
        self.target = ctx.target(target_name)
        self.index = index
        self.provider = ctx.providers[self.target.provider]
        self._endpoints: dict[str, str] = {}  # provider name -> its identity, once per shard
        self.live = ctx.live
        self.cache = ResponseCache(ctx.store)
        self.scorers = build_scorers(ctx.suite.spec.scorers)
        self.scorer_names = [s.name for s in self.scorers]
        self._unreported: ProgressDelta | None = None
        self._unsettled = (0.0, 0.0)  # reserved, spent (USD)
        self._last_report = -REPORT_EVERY_S  # the first chunk's progress goes at once

    def run(self, samples: list[Sample]) -> ShardOutcome:
        store, run_id = self.ctx.store, self.ctx.run_id
        key = shard_key(run_id, self.target.name, self.index)
        if store.exists(key):  # committed by an earlier attempt or an earlier driver
            rows = pq.read_metadata(io.BytesIO(store.get(key))).num_rows
            return ShardOutcome(self.target.name, self.index, committed=True, rows=rows)
        calls = self._calls(samples)
        endpoint = self._endpoint(self.target.provider)
        cache_part = self.cache.part_key(self.ctx.suite, self.target, endpoint, self.index)
        cached = self.cache.load(cache_part) if self.ctx.use_cache else {}
        results: dict[str, CallResult] = {}
        hits = {c.hash for c in calls if c.hash in cached}
        for c in calls:
            if c.hash in cached:
                results[c.hash] = cached[c.hash].to_call_result()
        pending = [c for c in calls if c.hash not in results]
        stopped = self._dispatch(
            self.target, self.provider, pending, results, cached_count=len(hits)
        )
        judged, judge_stopped = self._judge(calls, results, cached)
        stopped = stopped or judge_stopped
        fresh = {h: r for h, r in {**results, **judged}.items() if r.ok and h not in cached}
        if fresh or (stopped and self.ctx.use_cache):
            entries = {**cached, **{h: cache_entry_from_call(r) for h, r in fresh.items()}}
            self.cache.save(cache_part, entries)
        outcome = ShardOutcome(
            self.target.name,
            self.index,
            committed=False,
            provider_calls=len(pending),
            cache_hits=len(hits),
        )
        if stopped:
            outcome.stopped = stopped
            return outcome
        finished_at = datetime.now(UTC)  # the shard's rows are committed together
        rows = [self._row(c, results[c.hash], judged, cached, finished_at) for c in calls]
        commit_shard(store, run_id, self.target.name, self.index, rows, self.scorer_names)
        outcome.committed = True
        outcome.rows = len(rows)
        for row in rows:
            if row["error_kind"]:
                outcome.errors[row["error_kind"]] = outcome.errors.get(row["error_kind"], 0) + 1
        return outcome

    def _endpoint(self, provider_name: str) -> str:
        endpoint = self._endpoints.get(provider_name)
        if endpoint is None:
            endpoint = self._endpoints[provider_name] = self.ctx.endpoint(provider_name)
        return endpoint

    def _calls(self, samples: Sequence[Sample]) -> list[_Call]:
        spec = self.ctx.suite.spec
        params = self.target.params.as_dict()
        endpoint = self._endpoint(self.target.provider)
        sampling = is_sampling(params, spec.epochs)
        calls = []
        for sample in samples:
            request = build_request(self.ctx.suite, self.target, sample, params=params)
            for epoch in range(spec.epochs):
                digest = request_hash(
                    endpoint, request, epoch=epoch, seed=spec.seed, sampling=sampling
                )
                calls.append(_Call(sample, epoch, request, digest))
        return calls

    def _dispatch(
        self,
        target: TargetSpec,
        provider: ProviderConfig,
        calls: Sequence[Any],
        results: dict[str, CallResult],
        *,
        cached_count: int = 0,
        report: bool = True,
    ) -> str | None:
        """Send `calls` (unique by hash) to the target's provider actor in budgeted chunks."""
        if report and cached_count:
            self._report(ProgressDelta(done=cached_count, cached=cached_count))
        unique: dict[str, Any] = {}
        for c in calls:
            unique.setdefault(c.hash, c)
        items = list(unique.values())
        if not items:  # every answer cached: no endpoint to look up
            self._flush_progress()
            return None
        endpoint = self._caller(target.provider, provider)
        route = None
        if target.provider in self.ctx.batching:
            route = BatchRoute(self.ctx.store, target.name, self.index)

        def send(chunk: list[Any]) -> Any:
            if route is None:
                return endpoint.send(self.ctx.run_id, [c.request for c in chunk], self.ctx.priority)
            return endpoint.send(self.ctx.run_id, [c.request for c in chunk], self.ctx.priority,
                                 hashes=[c.hash for c in chunk], batch=route)  # fmt: skip

        in_flight: dict[Any, tuple[list[Any], float]] = {}
        stopped = None
        for start in range(0, len(items), CHUNK_SIZE):
            chunk = items[start : start + CHUNK_SIZE]
            reserve = 0.0
            if self.ctx.budgeted:
                # Reserved at the rate that will be charged (a retried line is charged sync,
                # but its batch line then cost nothing).
                reserve = sum(
                    projected_cost(provider, c.request)
                    * (batch_discount(provider, c.request.model) if route else 1.0)
                    for c in chunk
                )
                if not self._reserve(reserve):
                    stopped = "cancelled" if self._cancelled() else "budget_exhausted"
                    break
            ref = send(chunk)
            in_flight[ref] = (chunk, reserve)
        lost: dict[Any, int] = {}  # how many times each chunk was lost so far
        while in_flight:
            ready = endpoint.wait_one(list(in_flight))
            chunk, reserve = in_flight.pop(ready)
            tries = lost.pop(ready, 0)
            try:
                outcomes: list[CallResult] = endpoint.result(ready)
            except endpoint.lost:
                # The actor died (or restarted) holding this chunk: its answers are lost, so
                # the chunk goes again; results are keyed by hash, so nothing is duplicated.
                # A restart after a node loss takes seconds (more on a busy machine): wait
                # before each try, or every try meets the same restarting actor.
                if tries >= ACTOR_RETRIES:
                    raise
                time.sleep(ACTOR_RETRY_WAIT_S * 2**tries)
                ref = send(chunk)
                in_flight[ref] = (chunk, reserve)
                lost[ref] = tries + 1
                continue
            for c, o in zip(chunk, outcomes, strict=True):
                results[c.hash] = o
            self._chunk_done(reserve, outcomes, report=report)
        self._flush_progress()
        return stopped

    def _caller(self, provider_name: str, provider: ProviderConfig) -> Any:
        """Where this shard's chunks for `provider_name` go: the executor's in-process endpoint,
        or the cluster's provider actor."""
        if self.ctx.endpoints is not None:
            return self.ctx.endpoints.caller(provider_name, self.abandoned)
        actor = ray.get_actor(provider_actor_name(provider_name, provider), namespace=NAMESPACE)
        return _ActorCaller(actor)

    def _judge(
        self, calls: Sequence[_Call], results: dict[str, CallResult], cached: dict[str, Any]
    ) -> tuple[dict[str, CallResult], str | None]:
        """Ask each model_graded scorer's judge about every answered call."""
        judged: dict[str, CallResult] = {}
        stopped = None
        for scorer in self.scorers:
            if not needs_judge(scorer):
                continue
            judge = self.ctx.target(scorer.judge_target)
            provider = self.ctx.providers[judge.provider]
            judge_calls = [
                self._judge_call(scorer, c, results[c.hash]) for c in calls if results[c.hash].ok
            ]
            for jc in judge_calls:
                if jc.hash in cached:
                    judged[jc.hash] = cached[jc.hash].to_call_result()
            todo = [jc for jc in judge_calls if jc.hash not in judged]
            stopped = self._dispatch(judge, provider, todo, judged, report=False) or stopped
        return judged, stopped

    def _row(
        self,
        call: _Call,
        result: CallResult,
        judged: dict[str, CallResult],
        cached: dict[str, Any],
        finished_at: datetime,
    ) -> dict[str, Any]:
        """The call's `ResultRow`, with a `score_<name>` column per scorer."""
        sample = call.sample
        row: ResultRow = {
            "run_id": self.ctx.run_id,
            "suite": self.ctx.suite.spec.name,
            "suite_version": self.ctx.suite.version,
            "target": self.target.name,
            "provider": self.target.provider,
            "served_by": result.served_by,
            "model": self.target.model,
            "sample_id": sample.sample_id,
            "epoch": call.epoch,
            "prompt": call.request.messages[-1].content,
            "reference": sample.reference,
            "output": result.text,
            "finish_reason": result.finish_reason,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "usage_estimated": result.usage_estimated,
            "cost_usd": result.cost_usd,
            "latency_ms": result.latency_ms,
            "attempts": result.attempts,
            "cache_hit": call.hash in cached,
            "error_kind": result.error_kind,
            "error": result.error,
            "request_hash": call.hash,
            "finished_at": finished_at,
            "metadata": (
                json.dumps(sample.metadata, default=str, ensure_ascii=False)
                if sample.metadata
                else "{}"
            ),
            "judge": None,
            "judge_input_tokens": 0,
            "judge_output_tokens": 0,
            "judge_cost_usd": 0.0,
            "batch": result.batch,
            "cached_input_tokens": result.cached_input_tokens,
            "usd_saved_batch": result.usd_saved_batch,
            "usd_saved_cache": result.usd_saved_cache,
        }
        scores: dict[str, float | None] = {}
        verdicts = {}
        for scorer in self.scorers:
            column = score_column(scorer.name)
            if not result.ok:
                scores[column] = None  # an infrastructure error is not a wrong answer
                continue
            if needs_judge(scorer):
                score, verdict = self._judged_score(scorer, call, result, judged, row)
                verdicts[scorer.name] = verdict
            else:
                score = scorer.score(result.text or "", sample.reference, sample.fields)
            scores[column] = score.value
        if verdicts:
            row["judge"] = json.dumps(verdicts, ensure_ascii=False)
        return {**row, **scores}

    def _judge_call(self, scorer: JudgedScorer, call: _Call, answer: CallResult) -> _Call:
        """The judge's request about one answer, with its cache identity."""
        judge = self.ctx.target(scorer.judge_target)
        messages = tuple(
            scorer.judge_messages(
                call.request.messages[-1].content, answer.text or "", call.sample.reference
            )
        )
        request = CompletionRequest(judge.model, messages, judge.params.as_dict())
        endpoint = self._endpoint(judge.provider)
        digest = request_hash(endpoint, request, epoch=0, seed=0, sampling=False)
        return _Call(call.sample, call.epoch, request, digest)

    def _judged_score(
        self,
        scorer: JudgedScorer,
        call: _Call,
        result: CallResult,
        judged: dict[str, CallResult],
        row: ResultRow,
    ) -> tuple[Score, dict[str, Any]]:
        verdict = judged[self._judge_call(scorer, call, result).hash]
        row["judge_input_tokens"] += verdict.input_tokens
        row["judge_output_tokens"] += verdict.output_tokens
        row["judge_cost_usd"] += verdict.cost_usd
        row["usd_saved_batch"] += verdict.usd_saved_batch
        row["usd_saved_cache"] += verdict.usd_saved_cache
        if not verdict.ok:
            return Score(None, "judge call failed"), {
                "error_kind": verdict.error_kind,
                "error": verdict.error,
            }
        score = scorer.parse_verdict(verdict.text or "")
        return score, {"verdict": verdict.text, "explanation": score.explanation}

    def _chunk_done(self, reserved: float, outcomes: Sequence[CallResult], *, report: bool) -> None:
        """Settle the chunk's reservation and report its progress: at once when the run has a
        budget (other shards wait on the ledger), else at most every REPORT_EVERY_S."""
        if self.live is None:
            return
        spent = sum(o.cost_usd for o in outcomes)
        self._unsettled = (self._unsettled[0] + reserved, self._unsettled[1] + spent)
        if report:
            delta = ProgressDelta(
                done=len(outcomes),
                errors=sum(1 for o in outcomes if not o.ok),
                input_tokens=sum(o.input_tokens for o in outcomes),
                output_tokens=sum(o.output_tokens for o in outcomes),
                cost_usd=spent,
            )
            self._unreported = delta if self._unreported is None else self._unreported.plus(delta)
        if self.ctx.budgeted or time.monotonic() - self._last_report >= REPORT_EVERY_S:
            self._flush_progress()

    def _flush_progress(self) -> None:
        """One registry call with everything not settled or reported yet (if anything)."""
        (reserved, spent), delta = self._unsettled, self._unreported
        if self.live is None or (delta is None and not (reserved or spent)):
            return
        self._unsettled, self._unreported = (0.0, 0.0), None
        self._last_report = time.monotonic()
        self.live.chunk_done(self.target.name, reserved, spent, delta)

    def _report(self, delta: ProgressDelta) -> None:
        if self.live is not None:
            self.live.report(self.target.name, delta)

    def _reserve(self, amount: float) -> bool:
        if self.live is None:
            return True
        return bool(resolve(self.live.reserve(amount)))

    def _cancelled(self) -> bool:
        return self.live is not None and bool(resolve(self.live.is_cancelled()))


class _ActorCaller:
    """A shard's chunks to a provider actor: `send` is ``complete_batch.remote``; a chunk whose
    actor died with it raises one of `lost` from `result` and is sent again."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.lost: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,)

    def send(
        self,
        run_id: str,
        requests: list[CompletionRequest],
        priority: float,
        *,
        hashes: list[str] | None = None,
        batch: BatchRoute | None = None,
    ) -> Any:
        if batch is None:
            return self.actor.complete_batch.remote(run_id, requests, priority)
        return self.actor.complete_batch.remote(run_id, requests, priority, (), hashes, batch)

    def wait_one(self, pending: list[Any]) -> Any:
        ready, _ = ray.wait(pending, num_returns=1)
        return ready[0]

    def result(self, ref: Any) -> list[CallResult]:
        return ray.get(ref)


def batch_discount(provider: ProviderConfig, model: str) -> float:
    """The share of the sync price a batched request of `model` is charged."""
    if provider.pricing is not None and provider.pricing.batch_discount is not None:
        return provider.pricing.batch_discount
    price = price_for(model)
    return price.batch_discount if price is not None else BATCH_DISCOUNT


def batching_providers(
    spec: Any, providers: dict[str, ProviderConfig], requests_per_target: int
) -> frozenset[str]:
    """The providers a run sends by batch: `mode: batch`, or `mode: auto` and the run sends
    the endpoint (its targets and judges together) at least `AUTO_BATCH_MIN_REQUESTS`."""
    counts: dict[str, int] = {}
    for target in (*spec.targets, *spec.judges):
        counts[target.provider] = counts.get(target.provider, 0) + requests_per_target
    return frozenset(
        name for name, n in counts.items() if name in providers and providers[name].batches(n)
    )
