"""One Ray actor per provider endpoint: its limits, breaker, retries, fallback and accounting.

Every shard of every run in the cluster reaches an endpoint through its one named actor, so the
endpoint's rate limits hold globally however many shards run. The adapter underneath knows none
of this: the actor wraps it (fair queue -> breaker -> token bucket -> concurrency slot -> call),
and retries wrap the whole attempt.

Failing fast instead of hanging (see `evalcluster.limits.breaker` and `.bucket` for details):

* Endpoint down. When connection failures (refused, host not found) open the breaker, a probe
  follows after `breaker.down_probe_s` (1 s); if it cannot connect either, the endpoint is down:
  every request waiting for it without a fallback ends at once with `error_kind`
  `endpoint_down` (an `EndpointDownError`, a kind of `CircuitOpenError`, not retried), and so
  does every new one while the breaker stays open. Probes go on every `reset_timeout_s`; one
  that succeeds closes the breaker and requests flow again. With a fallback, requests go there.
* Any other open breaker: a request without a fallback waits for a probe at most
  `breaker.max_wait_s` (default 4 x `reset_timeout_s`), then ends as `circuit_open`.
* Provider pauses (429 `retry-after`, or rate-limit headers with nothing remaining) follow the
  retry policy's `max_retry_after_s`, like a single request's retry: nothing is sent before the
  pause ends, but while more than `max_retry_after_s` of it is left, requests end at once as
  `rate_limited` (resumable later) instead of waiting. A pause the policy allows is waited out.
* A warning is logged (it reaches the driver) when the breaker opens, when the endpoint is
  found down, and when a pause of `LONG_PAUSE_LOG_S` or more begins: provider name, failure
  kind and message (never a key). `status()` carries the breaker's `reason` and `down`, and
  the pause's wall-clock end (`pause`), so displays can say why nothing moves.

The actor is named by provider name and a hash of its configuration, so a changed configuration
gets a new actor instead of silently reusing old limits. Ray restarts a dead actor; a restarted
one starts conservatively (half-open breaker, reduced rate) and callers retry the batch they lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evalcluster.actors import metrics
from evalcluster.actors.batch_lane import BatchLane, BatchLaneConfig
from evalcluster.actors.run import NAMESPACE
from evalcluster.errors import (
    CircuitOpenError,
    EndpointDownError,
    ProviderError,
    RateLimitedError,
)
from evalcluster.lazy_ray import ray
from evalcluster.limits.breaker import CircuitBreaker
from evalcluster.limits.bucket import DualTokenBucket, Reservation
from evalcluster.limits.fair import WeightedFairQueue
from evalcluster.limits.retry import call_with_retries
from evalcluster.providers import build_adapter
from evalcluster.providers.base import Completion, CompletionRequest
from evalcluster.providers.batch import batch_client
from evalcluster.providers.calls import CallResult
from evalcluster.providers.pricing import cost_breakdown, cost_usd, estimate_request_tokens
from evalcluster.spec.models import ProviderConfig, SuiteSpec
from evalcluster.store.batch_ledger import BatchLedger
from evalcluster.store.fs import Store

RESTART_RATE_FACTOR = 0.5
LONG_PAUSE_LOG_S = 10.0  # a provider pause at least this long is logged
BATCH_GAUGE_EVERY_S = 1.0
_DOWN_KINDS = (CircuitOpenError.kind, EndpointDownError.kind)

log = logging.getLogger(__name__)
_BREAKER_GAUGE = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class CompletionResult:
    """`complete_one`'s answer: the whole `Completion` (tool calls included) or a typed failure.

    `retry_after_s` is when waiting may help: the provider's pause for `rate_limited`, the
    breaker's probe interval for `circuit_open` and `endpoint_down`."""

    served_by: str
    attempts: int
    latency_ms: float
    completion: Completion | None = None
    cost_usd: float = 0.0
    error_kind: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    status: int | None = None  # the provider's HTTP status of the last failure, if any

    @property
    def ok(self) -> bool:
        return self.error_kind is None


@dataclass(frozen=True, slots=True)
class BatchRoute:
    """Sends a shard's requests by the vendor's batch API: where the run's batch ledger is
    (its store) and what the ledger records of them."""

    store: Store
    target: str = ""
    shard: int | None = None


class _BreakerOpen(Exception):
    """Internal: the breaker refused and a fallback should serve instead."""


class SendWindow:
    """At most `capacity` sends in any `window_s` seconds (a sliding log of send times).

    The token bucket alone lets up to twice its capacity through within one window after an
    idle spell (a full bucket, then the refill). Providers enforce per-minute limits in short
    fixed windows ("quantized": OpenAI's rate-limit guide gives 60,000 rpm enforced as 1,000
    per second), so that burst meets 429s whenever the window was already partly used. A
    window of the bucket's burst length holding the bucket's capacity closes the gap; at the
    steady rate it never waits. Callers must take turns (the actor's fair queue serialises
    them).
    """

    def __init__(self, per_minute: float | None, burst_s: float) -> None:
        self.window_s = burst_s if per_minute is None else max(burst_s, 60.0 / per_minute)
        capacity = None if per_minute is None else max(1, math.floor(per_minute * burst_s / 60))
        self._sent: deque[float] | None = None if capacity is None else deque(maxlen=capacity)

    async def wait(self) -> None:
        """Return when one more send fits, and record it."""
        if self._sent is None:
            return
        if len(self._sent) == self._sent.maxlen:
            delay = self._sent[0] + self.window_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self._sent.append(time.monotonic())


def _was_reconstructed() -> bool:
    """Whether Ray restarted this actor; False outside an actor (the in-process executor runs
    this class without Ray, and asking Ray would start one)."""
    if not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    return context.get_actor_id() is not None and context.was_current_actor_reconstructed


def provider_actor_name(name: str, config: ProviderConfig) -> str:
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:10]
    return f"provider:{name}:{digest}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)
class ProviderActor:
    def __init__(self, name: str, config: ProviderConfig, fallbacks: dict[str, ProviderConfig]):
        self.name = name
        self.config = config
        self.fallbacks = fallbacks
        self.adapter = build_adapter(name, config)
        self.bucket = DualTokenBucket(
            config.rpm,
            config.tpm,
            burst_s=config.burst_s,
            provider=name,
            max_pause_s=config.retry.max_retry_after_s,
        )
        self.window = SendWindow(config.rpm, config.burst_s)
        self.breaker = CircuitBreaker.from_config(config.breaker)
        self.fair = WeightedFairQueue()
        self.slots = asyncio.Semaphore(config.max_concurrency)
        self.in_flight = 0
        self.outcomes: Counter[str] = Counter()
        self.metrics = metrics.ProviderMetricsBuffer(name)
        self._published_breaker: str | None = None
        self._lanes: dict[str, asyncio.Task[BatchLane]] = {}  # run id -> its started lane
        self._cancelled_runs: set[str] = set()  # their batch requests never go the sync path
        self._batches_published: tuple[int, ...] | None = None
        self._batches_published_at = 0.0
        self.restarted = _was_reconstructed()
        if self.restarted:
            self.breaker.force_half_open()
            self.bucket.conservative_start(RESTART_RATE_FACTOR)
        self._publish_breaker()

    async def ready(self) -> bool:
        return True

    async def complete_batch(
        self,
        run_id: str,
        requests: list[CompletionRequest],
        priority: float = 1.0,
        visited: tuple[str, ...] = (),
        hashes: list[str] | None = None,
        batch: BatchRoute | None = None,
    ) -> list[CallResult]:
        """Answer every request; failures come back as results with an error kind.

        With `batch` (and each request's cache identity in `hashes`) the requests go through
        the run's batch lane; one the batch does not answer goes the sync path."""
        visited = (*visited, self.name)
        try:
            if batch is not None and hashes is not None:
                lane = await self._lane(run_id, batch.store)
                calls = (
                    self._complete_batched(lane, run_id, r, h, batch, priority, visited)
                    for r, h in zip(requests, hashes, strict=True)
                )
            else:
                calls = (self._complete(run_id, r, priority, visited) for r in requests)
            return list(await asyncio.gather(*calls))
        finally:
            self.metrics.flush()

    async def _lane(self, run_id: str, store: Store) -> BatchLane:
        """The run's batch lane, started (reattached to its live batches) on first use."""
        task = self._lanes.get(run_id)
        if task is None:
            task = self._lanes[run_id] = asyncio.ensure_future(self._start_lane(run_id, store))
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and (task.cancelled() or task.exception() is not None):
                self._lanes.pop(run_id, None)  # the next call tries again
            raise

    async def _start_lane(self, run_id: str, store: Store) -> BatchLane:
        settings = self.config.batch
        lane = BatchLane(
            batch_client(self.adapter),
            BatchLedger(store),
            run_id=run_id,
            endpoint=self.name,
            config=BatchLaneConfig(
                max_batch_requests=settings.max_batch_requests,
                max_wait_s=settings.max_wait_s,
                poll_initial_s=settings.poll_initial_s,
                poll_max_s=max(settings.poll_max_s, settings.poll_initial_s),
            ),
        )
        reattached = await lane.start()
        if reattached:
            log.warning("provider %s: reattached to %d live batch(es) of run %s",
                        self.name, reattached, run_id)  # fmt: skip
        return lane

    async def _complete_batched(
        self,
        lane: BatchLane,
        run_id: str,
        request: CompletionRequest,
        request_hash: str,
        route: BatchRoute,
        priority: float,
        visited: tuple[str, ...],
    ) -> CallResult:
        started = time.monotonic()
        # Shielded: a caller that gives up leaves the outcome to the lane (shared by hash).
        submitted = lane.submit(request, request_hash, target=route.target, shard=route.shard)
        self._publish_batches()
        outcome = await asyncio.shield(submitted)
        self._publish_batches()
        if outcome.retry or outcome.completion is None:
            if run_id in self._cancelled_runs:
                return CallResult(
                    served_by=self.name,
                    attempts=0,
                    latency_ms=(time.monotonic() - started) * 1000,
                    error_kind="cancelled",
                    error="the run was cancelled while its batch was at the provider",
                )
            return await self._complete(run_id, request, priority, visited)
        return self._answered(
            request, outcome.completion, 1, (time.monotonic() - started) * 1000, batch=True
        )

    def _answered(
        self,
        request: CompletionRequest,
        completion: Completion,
        attempts: int,
        latency_ms: float,
        *,
        batch: bool,
    ) -> CallResult:
        """The answer priced at the rate paid (batch or not, cache reads and writes), with
        what batching and caching saved. A cost the provider reported itself (OpenRouter)
        wins on the sync path, and then the savings are unknown (0)."""
        usage = completion.usage
        paid = cost_breakdown(request.model, usage, batch=batch,
                              pricing_override=self.config.pricing)  # fmt: skip
        if completion.provider_cost_usd is not None and (not batch or paid is None):
            cost, saved_batch, saved_cache = completion.provider_cost_usd, 0.0, 0.0
        elif paid is None:
            cost, saved_batch, saved_cache = 0.0, 0.0, 0.0
        else:
            cost, saved_batch, saved_cache = paid.paid, paid.batch_saving, paid.cache_saving
        self._account(completion, cost)
        return CallResult(
            served_by=self.name,
            attempts=attempts,
            latency_ms=latency_ms,
            text=completion.text,
            finish_reason=str(completion.finish_reason),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_estimated=usage.estimated,
            cost_usd=cost,
            batch=batch,
            cached_input_tokens=usage.cache_read_tokens,
            usd_saved_batch=saved_batch,
            usd_saved_cache=saved_cache,
        )

    async def cancel_run(self, run_id: str) -> int:
        """Cancel the run's batches at the vendor (a cancelled run); the batches cancelled."""
        self._cancelled_runs.add(run_id)
        task = self._lanes.pop(run_id, None)
        if task is None:
            return 0
        lane = await task
        live = lane.snapshot()["batches_in_progress"]
        await lane.cancel()
        return live

    async def close_run(self, run_id: str) -> None:
        """Forget the run's lane; its batches stay at the vendor for a later driver."""
        task = self._lanes.pop(run_id, None)
        if task is not None:
            with contextlib.suppress(Exception):
                await (await task).close()

    async def close_lanes(self) -> None:
        """Stop every run's lane (the endpoint closes); their batches stay at the vendor."""
        for run_id in list(self._lanes):
            await self.close_run(run_id)

    def _publish_batches(self) -> None:
        """The batch gauge: at most every BATCH_GAUGE_EVERY_S while it moves (a request
        submits or ends each time), and at once when the lanes fall idle."""
        lanes = [t.result() for t in self._lanes.values() if t.done() and not t.cancelled()
                 and t.exception() is None]  # fmt: skip
        snapshots = [lane.snapshot() for lane in lanes]
        state = tuple(sum(s.get(k, 0) for s in snapshots) for k in metrics.BATCH_STATES.values())
        now = time.monotonic()
        if state == self._batches_published:
            return
        if any(state) and now - self._batches_published_at < BATCH_GAUGE_EVERY_S:
            return
        self._batches_published, self._batches_published_at = state, now
        metrics.publish_batches(self.name, snapshots)

    async def batch_status(self, run_id: str) -> dict[str, int] | None:
        """The run's batch lane progress (`BatchLane.snapshot`), None when it has none."""
        task = self._lanes.get(run_id)
        if task is None or not task.done() or task.exception() is not None:
            return None
        return task.result().snapshot()

    async def _complete(
        self, run_id: str, request: CompletionRequest, priority: float, visited: tuple[str, ...]
    ) -> CallResult:
        started = time.monotonic()
        fallbacks = [f for f in self.config.fallback if f not in visited]
        try:
            attempted = await call_with_retries(
                lambda: self._attempt(run_id, request, priority, bool(fallbacks)),
                self.config.retry,
            )
        except _BreakerOpen:
            return await self._fallback(run_id, request, priority, visited, fallbacks)
        except ProviderError as exc:
            self._count(exc.kind)
            return CallResult(
                served_by=self.name,
                attempts=getattr(exc, "attempts", 1),
                latency_ms=(time.monotonic() - started) * 1000,
                error_kind=exc.kind,
                error=str(exc)[:500],
            )
        completion: Completion = attempted.value
        return self._answered(
            request, completion, attempted.attempts, completion.latency_ms, batch=False
        )

    async def complete_one(
        self,
        queue: str,
        request: CompletionRequest,
        priority: float = 1.0,
        visited: tuple[str, ...] = (),
    ) -> CompletionResult:
        """One request answered whole (the gateway's call): the same path as `complete_batch`
        (fair queue under `queue` with weight `priority`, breaker, bucket, slot, retries,
        fallbacks). Never raises; a cancelled call (`ray.cancel`) gives back its slot and its
        reservation at once."""
        visited = (*visited, self.name)
        started = time.monotonic()
        fallbacks = [f for f in self.config.fallback if f not in visited]
        try:
            attempted = await call_with_retries(
                lambda: self._attempt(queue, request, priority, bool(fallbacks)),
                self.config.retry,
            )
        except _BreakerOpen:
            return await self._fallback_one(queue, request, priority, visited, fallbacks)
        except ProviderError as exc:
            self._count(exc.kind)
            retry_after = exc.retry_after_s
            if isinstance(exc, CircuitOpenError) and retry_after is None:
                retry_after = self.breaker.reset_timeout_s
            return CompletionResult(
                served_by=self.name,
                attempts=getattr(exc, "attempts", 1),
                latency_ms=(time.monotonic() - started) * 1000,
                error_kind=exc.kind,
                error=str(exc)[:500],
                retry_after_s=retry_after,
                status=exc.status,
            )
        finally:
            self.metrics.flush()
        completion: Completion = attempted.value
        cost = (
            cost_usd(
                request.model, completion.usage, self.config.pricing, completion.provider_cost_usd
            )
            or 0.0
        )
        self._account(completion, cost)
        self.metrics.flush()
        return CompletionResult(
            served_by=self.name,
            attempts=attempted.attempts,
            latency_ms=completion.latency_ms,
            completion=completion,
            cost_usd=cost,
        )

    async def _fallback_one(
        self,
        queue: str,
        request: CompletionRequest,
        priority: float,
        visited: tuple[str, ...],
        fallbacks: list[str],
    ) -> CompletionResult:
        for name in fallbacks:
            handle = _get_or_create(name, self.fallbacks[name], self.fallbacks)
            result = await handle.complete_one.remote(queue, request, priority, visited)
            if result.error_kind not in _DOWN_KINDS:
                return result
        return CompletionResult(
            served_by=self.name,
            attempts=0,
            latency_ms=0.0,
            error_kind=CircuitOpenError.kind,
            error=f"{self.name}: circuit open and every fallback is down",
            retry_after_s=self.breaker.reset_timeout_s,
        )

    async def _attempt(
        self, run_id: str, request: CompletionRequest, priority: float, can_fall_back: bool
    ) -> Completion:
        tokens = estimate_request_tokens(request)
        while True:
            await self._pass_breaker(can_fall_back)
            probe = self.breaker.state == "half_open"  # allow() took a probe slot for us
            self._publish_breaker()
            try:
                reservation = await self._reserve(run_id, priority, tokens, probe)
            except BaseException:
                if probe:
                    self.breaker.release_probe()
                raise
            if reservation is not None:
                break
            # The breaker opened while this request queued for the rate: it was not sent and
            # took nothing; it asks the breaker again (fallback, or wait for the probe).
        async with self.slots:
            self.in_flight += 1
            try:
                completion = await self.adapter.complete(request)
            except ProviderError as exc:
                self.bucket.settle(reservation, 0)
                self._on_failure(exc)
                if probe and self.breaker.down:  # this probe found the endpoint down
                    raise self._down_error() from exc
                raise
            except BaseException:
                self.bucket.release(reservation)
                if probe:
                    self.breaker.release_probe()
                raise
            finally:
                self.in_flight -= 1
        self.bucket.settle(reservation, completion.usage.total_tokens)
        self.bucket.on_success()
        if completion.rate_limits is not None:
            before = self.bucket.pause()
            self.bucket.observe(completion.rate_limits)
            self._log_pause(before)
        was = self.breaker.state
        self.breaker.record_success()
        if was != "closed" and self.breaker.state == "closed":
            log.warning("provider %s: a probe succeeded; the circuit breaker closed", self.name)
        self._publish_breaker()
        return completion

    async def _pass_breaker(self, can_fall_back: bool) -> None:
        if self.breaker.allow():
            return
        if can_fall_back:
            raise _BreakerOpen()
        # No fallback: wait (bounded) for the half-open probe rather than fail the sample at
        # once, unless the endpoint is down.
        try:
            await self.breaker.wait_for_probe()
        except CircuitOpenError as exc:
            exc.provider = self.name
            raise

    def _down_error(self) -> EndpointDownError:
        error = self.breaker.down_error()
        error.provider = self.name
        return error

    async def _reserve(
        self, run_id: str, priority: float, tokens: int, probe: bool
    ) -> Reservation | None:
        """Wait for this run's fair turn, the bucket and the send window.

        None (and nothing taken) when the breaker left `closed` while the request waited and
        it is not the probe: a queue of requests admitted while the endpoint looked healthy
        must not all go out after it fell over.
        """
        # One waiter at a time reaches the bucket, chosen fairly among the runs waiting. (An
        # explicit release, not `async with fair.turn()`: the generator-based context manager
        # was a visible share of the actor's time per request.)
        turn = await self.fair.wait_turn(run_id, priority)
        try:
            reservation = await self.bucket.acquire(tokens)
            if not probe and self.breaker.state != "closed":
                self.bucket.release(reservation)
                return None
            try:
                await self.window.wait()
            except BaseException:
                self.bucket.release(reservation)
                raise
        finally:
            self.fair.release(turn)
        return reservation

    def _on_failure(self, exc: ProviderError) -> None:
        was, was_down = self.breaker.state, self.breaker.down
        self.breaker.record_failure(exc)
        self._publish_breaker()
        if was == "closed" and self.breaker.state == "open":
            log.warning(
                "provider %s: circuit breaker opened after %d consecutive failures (%s: %s)",
                self.name,
                self.breaker.consecutive_failures,
                exc.kind,
                exc.message[:200],
            )
        elif self.breaker.down and not was_down:
            log.warning(
                "provider %s: endpoint down (%s: %s); requests without a fallback end as %s "
                "until a probe succeeds (every %gs)",
                self.name,
                exc.kind,
                exc.message[:200],
                EndpointDownError.kind,
                self.breaker.reset_timeout_s,
            )
        if isinstance(exc, RateLimitedError):
            before = self.bucket.pause()
            self.bucket.on_rate_limited(exc.retry_after_s)
            self._log_pause(before)
        self.metrics.request(exc.kind)

    def _log_pause(self, before: dict[str, Any] | None) -> None:
        """Warn once when a long pause begins, or when a pause grows past the ceiling."""
        after = self.bucket.pause()
        if after is None or after["for_s"] < LONG_PAUSE_LOG_S:
            return
        if (
            before is not None
            and before["for_s"] >= LONG_PAUSE_LOG_S
            and before["waits"] == after["waits"]
        ):
            return  # this pause was already reported
        until = time.strftime("%H:%M:%S", time.localtime(after["until"]))
        if after["waits"]:
            log.warning(
                "provider %s: paused until %s (%.0fs; %s)",
                self.name,
                until,
                after["for_s"],
                after["reason"],
            )
        else:
            log.warning(
                "provider %s: paused until %s (%.0fs; %s), longer than max_retry_after_s "
                "(%gs): requests end as rate_limited until then (resumable later)",
                self.name,
                until,
                after["for_s"],
                after["reason"],
                self.config.retry.max_retry_after_s,
            )

    async def _fallback(
        self,
        run_id: str,
        request: CompletionRequest,
        priority: float,
        visited: tuple[str, ...],
        fallbacks: list[str],
    ) -> CallResult:
        for name in fallbacks:
            results = await self._fallback_batch(name, run_id, [request], priority, visited)
            result = results[0]
            if result.error_kind not in _DOWN_KINDS:
                return result
        return CallResult(
            served_by=self.name,
            attempts=0,
            latency_ms=0.0,
            error_kind=CircuitOpenError.kind,
            error=f"{self.name}: circuit open and every fallback is down",
        )

    async def _fallback_batch(
        self,
        name: str,
        run_id: str,
        requests: list[CompletionRequest],
        priority: float,
        visited: tuple[str, ...],
    ) -> list[CallResult]:
        """`complete_batch` on fallback `name`'s actor (the in-process executor serves it from
        its own endpoints: `jobs/local_executor.py`)."""
        handle = _get_or_create(name, self.fallbacks[name], self.fallbacks)
        return await handle.complete_batch.remote(run_id, requests, priority, visited)

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def _account(self, completion: Completion, cost: float) -> None:
        self._count("ok")
        usage = completion.usage
        self.metrics.success(
            usage.input_tokens, usage.output_tokens, cost, completion.latency_ms / 1000
        )

    def _publish_breaker(self) -> None:
        state = self.breaker.state
        if state == self._published_breaker:  # a gauge set costs as much as a request's parse
            return
        self._published_breaker = state
        metrics.breaker_state().set(_BREAKER_GAUGE.get(state, 0), tags={"provider": self.name})

    async def status(self) -> dict[str, Any]:
        total = sum(self.outcomes.values())
        errors = total - self.outcomes.get("ok", 0)
        return {
            "provider": self.name,
            "kind": self.config.kind,
            "from_client": self.config.from_client,
            "breaker": self.breaker.state,
            "breaker_detail": self.breaker.status(),
            # Why nothing moves, if it does not: the breaker's reason ({kind, error, at}) and
            # whether the endpoint is down; the provider's pause ({until, for_s, reason,
            # waits}: until is wall time; waits False means requests end as rate_limited).
            "down": self.breaker.down,
            "breaker_reason": self.breaker.reason,
            "pause": self.bucket.pause(),
            "restarted": self.restarted,
            "in_flight": self.in_flight,
            "limiter": self.bucket.headroom(),
            "queue": self.fair.stats(),  # turns granted to each run so far (fair sharing)
            "requests": total,
            "outcomes": dict(self.outcomes),
            "error_rate": (errors / total) if total else 0.0,
        }


def _get_or_create(name: str, config: ProviderConfig, fallbacks: dict[str, ProviderConfig]):
    return ProviderActor.options(
        name=provider_actor_name(name, config),
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
    ).remote(name, config, fallbacks)


def provider_actor(name: str, providers: Mapping[str, ProviderConfig]) -> Any:
    """The actor of provider `name` of `providers` (created if none is alive), whose fallbacks
    are found in `providers` too."""
    return _get_or_create(name, providers[name], dict(providers))


def ensure_provider_actors(spec: SuiteSpec, providers: dict[str, ProviderConfig]) -> dict[str, Any]:
    """Find or create the actor of every provider the suite may call, fallbacks included."""
    wanted: list[str] = []
    for target in (*spec.targets, *spec.judges):
        queue = [target.provider]
        while queue:
            name = queue.pop()
            if name not in wanted:
                wanted.append(name)
                queue.extend(providers[name].fallback)
    actors = {name: _get_or_create(name, providers[name], providers) for name in wanted}
    ray.get([a.ready.remote() for a in actors.values()])
    return actors


def retire_provider_actors(actors: dict[str, Any], providers: dict[str, ProviderConfig]) -> None:
    """Kill the actors of simulated providers: their simulator ends with the run."""
    for name, actor in actors.items():
        if providers[name].kind == "simulated":
            with contextlib.suppress(Exception):
                ray.kill(actor)


def describe_breaker(status: dict[str, Any]) -> str:
    """The breaker's state with why it is open and any provider pause, in a few words:
    ``open (down: connection)``, ``closed; paused until 14:03:10 (retry-after)``."""
    text = str(status.get("breaker"))
    reason = status.get("breaker_reason") or {}
    if status.get("down"):
        text += f" (down: {reason.get('kind', 'connection')})"
    elif text != "closed" and reason.get("kind"):
        text += f" ({reason['kind']})"
    pause = status.get("pause")
    if pause:
        until = time.strftime("%H:%M:%S", time.localtime(pause["until"]))
        why = f" ({pause['reason']})" if pause.get("reason") else ""
        text += f"; paused until {until}{why}"
    return text


def provider_status_rows() -> list[dict[str, Any]]:
    """Status of every live provider actor in the cluster, for `evalcluster providers`.

    Found through Ray's named-actor registry, which (unlike the state API) needs no dashboard.
    """
    rows = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry.get("namespace") != NAMESPACE or not entry["name"].startswith("provider:"):
            continue
        try:
            handle = ray.get_actor(entry["name"], namespace=NAMESPACE)
            status = ray.get(handle.status.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - an actor that died since listing is skipped
            continue
        limiter = status["limiter"]
        rows.append(
            {
                "provider": status["provider"],
                "kind": status["kind"],
                "breaker": describe_breaker(status),
                "in_flight": status["in_flight"],
                "requests": status["requests"],
                "error_rate": round(status["error_rate"], 4),
                "headroom": ", ".join(f"{k}={v}" for k, v in limiter.items() if v is not None),
            }
        )
    return sorted(rows, key=lambda r: r["provider"])


def sum_batch_status(statuses: Iterable[dict[str, int] | None]) -> dict[str, int]:
    """The endpoints' `batch_status` of one run added up (those with no lane skipped)."""
    total: Counter[str] = Counter()
    for status in statuses:
        total.update(status or {})
    return dict(total)


def run_batch_status(
    run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> dict[str, int]:
    """Run `run_id`'s batch progress summed over the provider actors of `names`."""
    calls = []
    for name in names:
        try:
            actor = ray.get_actor(provider_actor_name(name, providers[name]), namespace=NAMESPACE)
        except ValueError:  # no actor yet: no batch either
            continue
        calls.append(actor.batch_status.remote(run_id))
    return sum_batch_status(ray.get(calls, timeout=5))


def cancel_run_batches(
    run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> None:
    """Cancel run `run_id`'s batches at the provider actors of `names`."""
    calls = []
    for name in names:
        try:
            actor = ray.get_actor(provider_actor_name(name, providers[name]), namespace=NAMESPACE)
        except ValueError:  # no actor: it holds no batch
            continue
        calls.append(actor.cancel_run.remote(run_id))
    ray.get(calls, timeout=30)
