"""One Ray actor per provider endpoint: its limits, breaker, retries, fallback and accounting.

Every shard of every run in the cluster reaches an endpoint through its one named actor, so the
endpoint's rate limits hold globally however many shards run. The actor is a shell around
`evalcluster.limits.pipeline.EndpointPipeline`, which owns the request path (fair queue ->
breaker -> token bucket -> send window -> concurrency slot -> the adapter's call, with retries
around the attempt) and its fail-fast rules (an endpoint that cannot be reached ends requests as
`endpoint_down`; a provider pause past `max_retry_after_s` ends them as `rate_limited`). The
adapter underneath knows none of this. The actor adds what needs Ray, money or metrics: the
provider's fallbacks when its breaker is open, the runs' batch lanes, pricing, the Prometheus
metrics and `status()` (which carries the breaker's `reason` and `down`, and the pause's
wall-clock end, so displays can say why nothing moves).

The actor is named by provider name and a hash of its configuration, so a changed configuration
gets a new actor instead of silently reusing old limits. Ray restarts a dead actor; a restarted
one starts conservatively (half-open breaker, reduced rate) and callers retry the batch they lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evalcluster.actors import metrics
from evalcluster.actors.batch_lane import BatchLane, BatchLaneConfig
from evalcluster.cluster import NAMESPACE
from evalcluster.errors import CircuitOpenError, EndpointDownError, ProviderError
from evalcluster.lazy_ray import ray
from evalcluster.limits.breaker import BreakerState
from evalcluster.limits.pipeline import BreakerOpen, EndpointPipeline
from evalcluster.limits.retry import Attempted
from evalcluster.providers import build_adapter
from evalcluster.providers.base import Completion, CompletionRequest
from evalcluster.providers.batch import batch_client
from evalcluster.providers.calls import CallResult
from evalcluster.providers.pricing import cost_breakdown, cost_usd, estimate_request_tokens
from evalcluster.store.batch_ledger import BatchLedger
from evalcluster.store.fs import Store
from evalcluster.suite.models import ProviderConfig, SuiteSpec

RESTART_RATE_FACTOR = 0.5
BATCH_GAUGE_EVERY_S = 1.0
_DOWN_KINDS = (CircuitOpenError.kind, EndpointDownError.kind)

log = logging.getLogger(__name__)


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
        self.outcomes: Counter[str] = Counter()
        self.metrics = metrics.ProviderMetricsBuffer(name)
        self.pipeline = EndpointPipeline(
            name,
            config,
            on_breaker_state=self._publish_breaker,
            on_failure=self._on_failure,
            logger=log,
        )
        self._lanes: dict[str, asyncio.Task[BatchLane]] = {}  # run id -> its started lane
        self._cancelled_runs: set[str] = set()  # their batch requests never go the sync path
        self._batches_published: tuple[int, ...] | None = None
        self._batches_published_at = 0.0
        self.restarted = _was_reconstructed()
        if self.restarted:
            self.pipeline.conservative_start(RESTART_RATE_FACTOR)
        self.pipeline.report_breaker()

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
            attempted = await self._call(run_id, request, priority, bool(fallbacks))
        except BreakerOpen:
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
            attempted = await self._call(queue, request, priority, bool(fallbacks))
        except BreakerOpen:
            return await self._fallback_one(queue, request, priority, visited, fallbacks)
        except ProviderError as exc:
            self._count(exc.kind)
            retry_after = exc.retry_after_s
            if isinstance(exc, CircuitOpenError) and retry_after is None:
                retry_after = self.pipeline.probe_interval_s
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
            retry_after_s=self.pipeline.probe_interval_s,
        )

    def _call(
        self, queue: str, request: CompletionRequest, priority: float, can_fall_back: bool
    ) -> Awaitable[Attempted[Completion]]:
        """`request` through the endpoint's pipeline (fair queue `queue`, breaker, bucket,
        window, slot, retries); `BreakerOpen` when it may fall back and the breaker refuses."""
        return self.pipeline.call(
            queue,
            lambda: self.adapter.complete(request),
            tokens=estimate_request_tokens(request),
            priority=priority,
            can_fall_back=can_fall_back,
        )

    def _on_failure(self, exc: ProviderError) -> None:
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

    def _publish_breaker(self, state: BreakerState) -> None:
        # Called on changes only: a gauge set costs as much as a request's parse.
        metrics.publish_breaker_state(self.name, state)

    async def status(self) -> dict[str, Any]:
        total = sum(self.outcomes.values())
        errors = total - self.outcomes.get("ok", 0)
        # Why nothing moves, if it does not: the breaker's reason ({kind, error, at}) and
        # whether the endpoint is down; the provider's pause (`EndpointPipeline.status`).
        pipeline = self.pipeline.status()
        return {
            "provider": self.name,
            "kind": self.config.kind,
            "from_client": self.config.from_client,
            "breaker": pipeline["breaker"],
            "breaker_detail": pipeline["breaker_detail"],
            "down": pipeline["down"],
            "breaker_reason": pipeline["breaker_reason"],
            "pause": pipeline["pause"],
            "restarted": self.restarted,
            "in_flight": pipeline["in_flight"],
            "limiter": pipeline["limiter"],
            "queue": pipeline["queue"],  # turns granted to each run so far (fair sharing)
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


def _lane_calls(
    method: str, run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> list[ray.ObjectRef]:
    """`method(run_id)` on the provider actors of `names` that exist (one that does not holds
    no batch of the run)."""
    calls = []
    for name in names:
        try:
            actor = ray.get_actor(provider_actor_name(name, providers[name]), namespace=NAMESPACE)
        except ValueError:
            continue
        calls.append(getattr(actor, method).remote(run_id))
    return calls


def run_batch_status(
    run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> dict[str, int]:
    """Run `run_id`'s batch progress summed over the provider actors of `names`."""
    return sum_batch_status(
        ray.get(_lane_calls("batch_status", run_id, providers, names), timeout=5)
    )


def cancel_run_batches(
    run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> None:
    """Cancel run `run_id`'s batches at the provider actors of `names`."""
    ray.get(_lane_calls("cancel_run", run_id, providers, names), timeout=30)


def close_run_lanes(
    run_id: str, providers: Mapping[str, ProviderConfig], names: Iterable[str]
) -> None:
    """Let the provider actors of `names` forget run `run_id`'s batch lanes (the actors outlive
    the run); a batch still live stays in the ledger for a resume."""
    ray.get(_lane_calls("close_run", run_id, providers, names), timeout=30)
