"""One Ray actor per provider endpoint: its limits, breaker, retries, fallback and accounting.

Every shard of every run in the cluster reaches an endpoint through its one named actor, so the
endpoint's rate limits hold globally however many shards run. The adapter underneath knows none
of this: the actor wraps it (fair queue -> breaker -> token bucket -> concurrency slot -> call),
and retries wrap the whole attempt.

The actor is named by provider name and a hash of its configuration, so a changed configuration
gets a new actor instead of silently reusing old limits. Ray restarts a dead actor; a restarted
one starts conservatively (half-open breaker, reduced rate) and callers retry the batch they lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections import Counter, deque
from typing import Any

import ray

from evalcluster.actors import metrics
from evalcluster.actors.calls import CallResult
from evalcluster.actors.run import NAMESPACE
from evalcluster.errors import CircuitOpenError, ProviderError, RateLimitedError
from evalcluster.limits.breaker import CircuitBreaker
from evalcluster.limits.bucket import DualTokenBucket, Reservation
from evalcluster.limits.fair import WeightedFairQueue
from evalcluster.limits.retry import call_with_retries
from evalcluster.providers import build_adapter
from evalcluster.providers.base import Completion, CompletionRequest
from evalcluster.providers.pricing import cost_usd, estimate_request_tokens
from evalcluster.spec.models import ProviderConfig, SuiteSpec

RESTART_RATE_FACTOR = 0.5
_BREAKER_GAUGE = {"closed": 0, "half_open": 1, "open": 2}


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
        self.bucket = DualTokenBucket(config.rpm, config.tpm, burst_s=config.burst_s)
        self.window = SendWindow(config.rpm, config.burst_s)
        self.breaker = CircuitBreaker.from_config(config.breaker)
        self.fair = WeightedFairQueue()
        self.slots = asyncio.Semaphore(config.max_concurrency)
        self.in_flight = 0
        self.outcomes: Counter[str] = Counter()
        self.metrics = metrics.ProviderMetricsBuffer(name)
        self._published_breaker: str | None = None
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
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
    ) -> list[CallResult]:
        """Answer every request; failures come back as results with an error kind."""
        visited = (*visited, self.name)
        try:
            return list(
                await asyncio.gather(
                    *(self._complete(run_id, r, priority, visited) for r in requests)
                )
            )
        finally:
            self.metrics.flush()

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
        cost = (
            cost_usd(
                request.model, completion.usage, self.config.pricing, completion.provider_cost_usd
            )
            or 0.0
        )
        self._account(completion, cost)
        return CallResult(
            served_by=self.name,
            attempts=attempted.attempts,
            latency_ms=completion.latency_ms,
            text=completion.text,
            finish_reason=str(completion.finish_reason),
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            usage_estimated=completion.usage.estimated,
            cost_usd=cost,
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
            self.bucket.observe(completion.rate_limits)
        self.breaker.record_success()
        self._publish_breaker()
        return completion

    async def _pass_breaker(self, can_fall_back: bool) -> None:
        if self.breaker.allow():
            return
        if can_fall_back:
            raise _BreakerOpen()
        # No fallback: wait for the half-open probe rather than fail the sample.
        await self.breaker.wait_for_probe()

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
        self.breaker.record_failure(exc)
        self._publish_breaker()
        if isinstance(exc, RateLimitedError):
            self.bucket.on_rate_limited(exc.retry_after_s)
        self.metrics.request(exc.kind)

    async def _fallback(
        self,
        run_id: str,
        request: CompletionRequest,
        priority: float,
        visited: tuple[str, ...],
        fallbacks: list[str],
    ) -> CallResult:
        for name in fallbacks:
            handle = _get_or_create(name, self.fallbacks[name], self.fallbacks)
            results = await handle.complete_batch.remote(run_id, [request], priority, visited)
            result = results[0]
            if result.error_kind != CircuitOpenError.kind:
                return result
        return CallResult(
            served_by=self.name,
            attempts=0,
            latency_ms=0.0,
            error_kind=CircuitOpenError.kind,
            error=f"{self.name}: circuit open and every fallback is down",
        )

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
                "breaker": status["breaker"],
                "in_flight": status["in_flight"],
                "requests": status["requests"],
                "error_rate": round(status["error_rate"], 4),
                "headroom": ", ".join(f"{k}={v}" for k, v in limiter.items() if v is not None),
            }
        )
    return sorted(rows, key=lambda r: r["provider"])
