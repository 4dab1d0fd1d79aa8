"""The in-process executor: a run's shards and provider endpoints in this process, no Ray.

* Shards: `ShardEvaluator` (the code a Ray shard task runs) in a small thread pool. A shard
  mostly waits for its endpoint's answers; its own work (requests, hashes, scores, Parquet) is
  short, so a few threads keep the endpoint busy while finished shards are scored and committed.
* Endpoints: one instance of the provider actor's class per provider (fair queue, token bucket,
  send window, breaker, retries, fallbacks: the same code), all on one asyncio loop in a thread
  of their own, created when a shard first needs one: a run whose every answer is in the
  response cache starts none.
* Live run: the registry's `LiveRun` held here, behind a lock (shard threads report to it).

Exactly-once is the shards' own (`store.lake.commit_shard` writes a shard's file once,
create-if-absent), so a run killed mid-way is resumed as on Ray. A cancel cannot kill a
thread: the shards to abandon stop waiting at their next answer (at most `WAIT_SLICE_S`
later), their requests in flight are cancelled, and nothing of theirs is committed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from evalcluster.actors.run import BatchProgress, LiveRun, ProgressDelta
from evalcluster.jobs.executors import done, resolve
from evalcluster.providers.calls import CallResult
from evalcluster.suite.models import ProviderConfig, SuiteSpec

# Shards evaluated at once. Each keeps its whole shard of requests queued at its endpoint, so
# two keep an endpoint's concurrency full across a shard's end. More only interleave at the
# endpoint (the first commit comes later) and contend for the GIL: 2,000 samples at 50 ms had
# their first commit at 0.29-0.33 s with two, 0.43-0.74 s with four; 5,000 at zero latency
# took 1.31-1.52 s with two, 1.71-1.99 s with four (benchmarks/README.md, "Overhead timeline").
LOCAL_SHARD_THREADS = 2
# Shards at once when a provider batches: each mostly waits for its batches at the vendor.
BATCH_SHARD_THREADS = 32
WAIT_SLICE_S = 0.25  # how often a waiting shard looks whether it was abandoned


class ShardAbandoned(Exception):
    """Internal: the driver abandoned this shard (a cancel); it commits nothing."""


def _provider_class() -> type:
    """The provider actor's own class, without Ray's actor wrapper."""
    from evalcluster.actors.provider import ProviderActor

    plain = getattr(ProviderActor, "__wrapped__", None)  # lazy_ray's deferred actor
    if plain is not None:
        return plain
    modified = ProviderActor.__ray_metadata__.modified_class
    return getattr(modified, "__ray_actor_class__", modified.__mro__[1])


class LocalRunHandle:
    """A `RunHandle` for a run held in this process: the same methods, each returning a
    future that is already done (`executors.resolve` reads it as it reads a Ray reference)."""

    def __init__(self, run_id: str, suite: str, totals: dict[str, int], budget: float | None):
        self.run_id = run_id
        self._run = LiveRun(run_id, suite, totals, budget)
        self._lock = threading.Lock()

    def report(self, target: str, delta: ProgressDelta) -> concurrent.futures.Future:
        with self._lock:
            self._run.report(target, delta)
        return done(None)

    def reserve(self, amount_usd: float) -> concurrent.futures.Future:
        with self._lock:
            return done(self._run.reserve(amount_usd))

    def chunk_done(
        self, target: str, reserved_usd: float, actual_usd: float, delta: ProgressDelta | None
    ) -> concurrent.futures.Future:
        with self._lock:
            if reserved_usd or actual_usd:
                self._run.settle(reserved_usd, actual_usd)
            if delta is not None:
                self._run.report(target, delta)
        return done(None)

    def set_status(self, status: str, message: str | None = None) -> concurrent.futures.Future:
        with self._lock:
            self._run.set_status(status, message)
        return done(None)

    def set_batches(self, batches: BatchProgress) -> concurrent.futures.Future:
        with self._lock:
            self._run.set_batches(batches)
        return done(None)

    def cancel(self) -> concurrent.futures.Future:
        with self._lock:
            self._run.cancel()
        return done(None)

    def is_cancelled(self) -> concurrent.futures.Future:
        return done(self._run.cancelled)

    def snapshot(self) -> concurrent.futures.Future:
        with self._lock:
            return done(self._run.snapshot())

    def close(self) -> concurrent.futures.Future:
        return done(None)


class LocalEndpoints:
    """The run's provider endpoints on one asyncio loop (a daemon thread), made on first use."""

    def __init__(self, providers: dict[str, ProviderConfig]) -> None:
        self.providers = providers
        self._endpoints: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="evalcluster-endpoints", daemon=True
        )
        self._thread.start()

    def endpoint(self, name: str) -> Any:
        """The endpoint of provider `name`, made (on the loop) if this is its first use."""
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                endpoint = asyncio.run_coroutine_threadsafe(self._make(name), self._loop).result()
                self._endpoints[name] = endpoint
            return endpoint

    async def _make(self, name: str) -> Any:
        return _in_process_class()(name, self.providers[name], self.providers, self)

    async def _endpoint_async(self, name: str) -> Any:
        endpoint = self._endpoints.get(name)
        if endpoint is None:  # a fallback's first use, from inside the loop
            endpoint = await self._make(name)
            self._endpoints.setdefault(name, endpoint)
            endpoint = self._endpoints[name]
        return endpoint

    def caller(self, name: str, abandoned: threading.Event | None = None) -> LocalCaller:
        return LocalCaller(self, self.endpoint(name), abandoned)

    def batch_status(self, run_id: str, names: Iterable[str]) -> dict[str, int]:
        from evalcluster.actors.provider import sum_batch_status

        statuses = []
        for name in names:
            endpoint = self._endpoints.get(name)
            if endpoint is not None:
                coro = endpoint.batch_status(run_id)
                statuses.append(asyncio.run_coroutine_threadsafe(coro, self._loop).result(5))
        return sum_batch_status(statuses)

    def cancel_batches(self, run_id: str, names: Iterable[str]) -> None:
        for name in names:
            endpoint = self._endpoints.get(name)
            if endpoint is not None:
                coro = endpoint.cancel_run(run_id)
                asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def started(self) -> list[str]:
        return sorted(self._endpoints)

    def close(self) -> None:
        async def close_all() -> None:
            for endpoint in list(self._endpoints.values()):
                with contextlib.suppress(Exception):
                    await endpoint.close_lanes()
                with contextlib.suppress(Exception):
                    await endpoint.adapter.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()


_CLASS: type | None = None


def _in_process_class() -> type:
    """The provider actor's class with fallbacks served by the run's other local endpoints."""
    global _CLASS
    if _CLASS is None:
        base = _provider_class()

        class InProcessEndpoint(base):  # type: ignore[misc, valid-type]
            def __init__(
                self,
                name: str,
                config: ProviderConfig,
                fallbacks: dict[str, ProviderConfig],
                endpoints: LocalEndpoints,
            ) -> None:
                self._local_endpoints = endpoints
                super().__init__(name, config, fallbacks)

            async def _fallback_batch(
                self,
                name: str,
                run_id: str,
                requests: list[Any],
                priority: float,
                visited: tuple[str, ...],
            ) -> list[CallResult]:
                other = await self._local_endpoints._endpoint_async(name)
                return await other.complete_batch(run_id, requests, priority, visited)

        _CLASS = InProcessEndpoint
    return _CLASS


class LocalCaller:
    """What a shard sends its chunks through: the in-process twin of calling a provider
    actor (`send` ~ ``complete_batch.remote``, `wait_one` ~ ``ray.wait``)."""

    lost: tuple[type[BaseException], ...] = ()  # an endpoint in this process is never lost

    def __init__(
        self, endpoints: LocalEndpoints, endpoint: Any, abandoned: threading.Event | None
    ) -> None:
        self._loop = endpoints._loop
        self._endpoint = endpoint
        self._abandoned = abandoned

    def send(
        self, run_id: str, requests: list[Any], priority: float, **batch: Any
    ) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(
            self._endpoint.complete_batch(run_id, requests, priority, **batch), self._loop
        )

    def wait_one(self, pending: Sequence[concurrent.futures.Future]) -> Any:
        while True:
            ready, _ = concurrent.futures.wait(
                pending, timeout=WAIT_SLICE_S, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if self._abandoned is not None and self._abandoned.is_set():
                for future in pending:
                    future.cancel()
                raise ShardAbandoned()
            if ready:
                return next(iter(ready))

    def result(self, handle: concurrent.futures.Future) -> list[CallResult]:
        return handle.result()


class LocalExecutor:
    """Shards in a thread pool, endpoints on one loop, the live run in memory; see the module
    docstring."""

    name = "local"

    def __init__(self, threads: int = LOCAL_SHARD_THREADS) -> None:
        self.threads = threads
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="evalcluster-shard"
        )
        self._abandon: dict[concurrent.futures.Future, threading.Event] = {}
        self.endpoints: LocalEndpoints | None = None

    def open_run(
        self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None
    ) -> tuple[LocalRunHandle, concurrent.futures.Future]:
        return LocalRunHandle(run_id, suite, totals, budget_usd), done(None)

    def start_providers(self, spec: SuiteSpec, providers: dict[str, Any]) -> dict[str, Any]:
        """Nothing starts here: each endpoint starts when a shard first sends to it."""
        self.endpoints = LocalEndpoints(providers)
        return {}

    def retire_providers(self, actors: dict[str, Any], providers: dict[str, Any]) -> None:
        pass  # closed with the executor

    def shard_slots(self) -> int:
        return self.threads

    def widen_for_batches(self) -> None:
        """Run `BATCH_SHARD_THREADS` shards at once (called before the first shard): a shard
        whose provider batches waits out the vendor's turnaround, and with two at a time the
        run would wait one turnaround per two shards."""
        if self.threads < BATCH_SHARD_THREADS and not self._abandon:
            self._pool.shutdown(wait=False)
            self.threads = BATCH_SHARD_THREADS
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix="evalcluster-shard"
            )

    def put(self, value: Any) -> Any:
        return value

    def submit(self, ctx: Any, samples: Any, target: str, index: int) -> Any:
        from evalcluster.jobs.shard import ShardEvaluator

        if ctx.endpoints is None:
            ctx = dataclasses.replace(ctx, endpoints=self.endpoints)
        abandoned = threading.Event()

        def run() -> Any:
            return ShardEvaluator(ctx, target, index, abandoned=abandoned).run(samples)

        future = self._pool.submit(run)
        self._abandon[future] = abandoned
        future.add_done_callback(lambda f: self._abandon.pop(f, None))
        return future

    def wait(
        self, refs: Iterable[Any], *, num_returns: int = 1, timeout: float | None = None
    ) -> list[Any]:
        refs = list(refs)
        if not refs:
            return []
        when = (
            concurrent.futures.ALL_COMPLETED
            if num_returns >= len(refs)
            else concurrent.futures.FIRST_COMPLETED
        )
        ready, _ = concurrent.futures.wait(refs, timeout=timeout, return_when=when)
        return [r for r in refs if r in ready]

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        return resolve(ref, timeout)

    def cancel(self, ref: Any) -> None:
        event = self._abandon.get(ref)
        if event is not None:
            event.set()
        ref.cancel()  # one not started yet never starts

    def cancel_batches(self, run_id: str, providers: dict[str, Any], names: Iterable[str]) -> None:
        """Cancel the run's batches at the vendors of the started endpoints among `names`."""
        if self.endpoints is not None:
            self.endpoints.cancel_batches(run_id, names)

    def batch_status(
        self, run_id: str, providers: dict[str, Any], names: Iterable[str]
    ) -> BatchProgress:
        """The run's batch progress at the started endpoints among `names`."""
        if self.endpoints is None:
            return BatchProgress()
        return BatchProgress.from_counts(self.endpoints.batch_status(run_id, names))

    def close_batches(self, run_id: str, providers: dict[str, Any], names: Iterable[str]) -> None:
        """Nothing to do: this executor's endpoints, and their lanes, end with the run."""

    def close(self) -> None:
        for event in list(self._abandon.values()):
            event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.endpoints is not None:
            self.endpoints.close()
