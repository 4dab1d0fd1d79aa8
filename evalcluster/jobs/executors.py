"""Where a run's shards and provider endpoints execute: on Ray, or in this process.

The driver (`jobs/driver.py`) plans, dispatches, collects and records shards the same way on
both; only these calls differ. `RayExecutor` is what every run did before: shard tasks on the
cluster's workers and one named provider actor per endpoint, shared by every run of the
cluster. `LocalExecutor` (`jobs/local_executor.py`) runs the same shard code
(`ShardEvaluator`) in a thread pool and the same endpoint code (the provider actor's class: its
limiter, breaker, retries, fallbacks) on one asyncio loop in this process, without starting
Ray: a run on one machine is not kept waiting for a Ray of its own to start and stop.

Which one a run gets (`choose_executor`): ``ray`` whenever it joins a cluster (``--address``,
a Ray job) or this process already has Ray (the HTTP service's driver actors, tests); else
``local``, unless the options name one.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from evalcluster.errors import SpecError
from evalcluster.lazy_ray import ray, ray_loaded_and_up

if TYPE_CHECKING:
    from evalcluster.actors.run import BatchProgress

ExecutorName = Literal["auto", "ray", "local"]
EXECUTOR_NAMES: tuple[str, ...] = ("auto", "ray", "local")


def resolve(ref: Any, timeout: float | None = None) -> Any:
    """The value behind `ref`: a Ray object reference or a `concurrent.futures.Future`."""
    if isinstance(ref, concurrent.futures.Future):
        return ref.result(timeout=timeout)
    return ray.get(ref, timeout=timeout)


def done(value: Any) -> concurrent.futures.Future:
    """A future that already holds `value` (an in-process call that did not have to wait)."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future


class Executor(Protocol):
    """The calls the driver makes that depend on where shards run."""

    name: str

    def open_run(
        self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None
    ) -> tuple[Any, Any]: ...

    def start_providers(self, spec: Any, providers: dict[str, Any]) -> dict[str, Any]: ...

    def retire_providers(self, actors: dict[str, Any], providers: dict[str, Any]) -> None: ...

    def shard_slots(self) -> int: ...

    def put(self, value: Any) -> Any: ...

    def submit(self, ctx: Any, samples: Any, target: str, index: int) -> Any: ...

    def wait(
        self, refs: Iterable[Any], *, num_returns: int = 1, timeout: float | None = None
    ) -> list[Any]: ...

    def get(self, ref: Any, timeout: float | None = None) -> Any: ...

    def cancel(self, ref: Any) -> None: ...

    def widen_for_batches(self) -> None: ...

    def cancel_batches(
        self, run_id: str, providers: dict[str, Any], names: Iterable[str]
    ) -> None: ...

    def batch_status(
        self, run_id: str, providers: dict[str, Any], names: Iterable[str]
    ) -> BatchProgress: ...

    def close_batches(
        self, run_id: str, providers: dict[str, Any], names: Iterable[str]
    ) -> None: ...

    def close(self) -> None: ...


def choose_executor(requested: str, *, address: str | None) -> str:
    """``ray`` or ``local`` for a run asking for `requested` (auto, ray or local)."""
    if requested not in EXECUTOR_NAMES:
        raise SpecError(
            f"unknown executor {requested!r} (one of: {', '.join(EXECUTOR_NAMES)})",
            field="--executor",
        )
    if requested == "local" and address:
        raise SpecError(
            "--executor local runs in this process; it cannot join the cluster at --address",
            field="--executor",
        )
    if requested != "auto":
        return requested
    return "ray" if address or ray_loaded_and_up() else "local"


class RayExecutor:
    """Shard tasks on Ray workers, provider endpoints as the cluster's named actors."""

    name = "ray"

    def __init__(self, shard_cpus: float) -> None:
        self.shard_cpus = shard_cpus

    def open_run(
        self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None
    ) -> tuple[Any, Any]:
        from evalcluster.actors.run import open_run

        return open_run(run_id, suite, totals, budget_usd)

    def start_providers(self, spec: Any, providers: dict[str, Any]) -> dict[str, Any]:
        from evalcluster.actors.provider import ensure_provider_actors

        return ensure_provider_actors(spec, providers)

    def retire_providers(self, actors: dict[str, Any], providers: dict[str, Any]) -> None:
        from evalcluster.actors.provider import retire_provider_actors

        retire_provider_actors(actors, providers)

    def shard_slots(self) -> int:
        cpus = ray.cluster_resources().get("CPU", 2)
        return max(1, int(cpus / self.shard_cpus))

    def put(self, value: Any) -> Any:
        return ray.put(value)

    def submit(self, ctx: Any, samples: Any, target: str, index: int) -> Any:
        from evalcluster.jobs.shard import evaluate_shard

        return evaluate_shard.options(num_cpus=self.shard_cpus).remote(ctx, samples, target, index)

    def wait(
        self, refs: Iterable[Any], *, num_returns: int = 1, timeout: float | None = None
    ) -> list[Any]:
        refs = list(refs)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=min(num_returns, len(refs)), timeout=timeout)
        return ready

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        return resolve(ref, timeout)

    def cancel(self, ref: Any) -> None:
        ray.cancel(ref, force=True)

    def widen_for_batches(self) -> None:
        """Nothing: Ray runs more shards when the running ones block (`max_inflight_shards`
        queues more)."""

    def cancel_batches(self, run_id: str, providers: dict[str, Any], names: Iterable[str]) -> None:
        """Cancel the run's batches at the vendors of providers `names` (a cancelled run)."""
        from evalcluster.actors.provider import cancel_run_batches

        cancel_run_batches(run_id, providers, names)

    def batch_status(
        self, run_id: str, providers: dict[str, Any], names: Iterable[str]
    ) -> BatchProgress:
        """The run's batch progress at providers `names` (`BatchLane.snapshot`, summed)."""
        from evalcluster.actors.provider import run_batch_status
        from evalcluster.actors.run import BatchProgress

        return BatchProgress.from_counts(run_batch_status(run_id, providers, names))

    def close_batches(self, run_id: str, providers: dict[str, Any], names: Iterable[str]) -> None:
        """Let the shared provider actors forget the run's batch lanes (the run has ended)."""
        from evalcluster.actors.provider import close_run_lanes

        close_run_lanes(run_id, providers, names)

    def close(self) -> None:
        pass
