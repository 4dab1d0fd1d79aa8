"""Live runs: the progress, budget ledger and cancel flag of every run going on in the cluster.

Shards report to it as they finish work; the CLI's progress bar, the HTTP service and its
WebSocket read it. The budget is reserved before requests are sent (projected cost) and
settled on the cost the providers reported, so a run stops dispatching once its budget is
spoken for and overspend is bounded by the requests already in flight.

One detached actor (`RunRegistry`, named ``runs``) holds every live run, not an actor per run:
a new actor is a new Python process (about a second of CPU, plus the idle worker Ray starts to
replace it), and a run paid that at its start, when its shards needed the CPU. A run is
`open_run`'d by its driver, reached through a `RunHandle`, and closed when the driver ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from evalcluster.actors import metrics
from evalcluster.cluster import NAMESPACE
from evalcluster.errors import UnknownRunError
from evalcluster.lazy_ray import ray
from evalcluster.runstate import ACTIVE_STATES, RunState

__all__ = [
    "NAMESPACE",  # re-exported: its home is evalcluster/cluster.py
    "REGISTRY_NAME",
    "BatchProgress",
    "BudgetSnapshot",
    "LiveRun",
    "ProgressDelta",
    "RunHandle",
    "RunRegistry",
    "RunSnapshot",
    "TargetProgress",
    "get_live_run",
    "open_run",
]


@dataclass
class TargetProgress:
    total: int = 0
    done: int = 0
    errors: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class ProgressDelta:
    """What a shard (or part of one) adds to its target's progress."""

    done: int = 0
    errors: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: ProgressDelta) -> ProgressDelta:
        return ProgressDelta(
            self.done + other.done,
            self.errors + other.errors,
            self.cached + other.cached,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
        )


@dataclass
class BudgetLedger:
    limit_usd: float | None
    reserved_usd: float = 0.0
    spent_usd: float = 0.0
    exhausted: bool = False

    def reserve(self, amount: float) -> bool:
        if self.limit_usd is None:
            return True
        if self.spent_usd + self.reserved_usd + amount > self.limit_usd:
            self.exhausted = True
            return False
        self.reserved_usd += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved_usd = max(0.0, self.reserved_usd - reserved)
        self.spent_usd += actual

    @property
    def used_ratio(self) -> float | None:
        if not self.limit_usd:
            return None
        return min(1.0, (self.spent_usd + self.reserved_usd) / self.limit_usd)


@dataclass(frozen=True)
class BudgetSnapshot:
    """A run's budget ledger as it stood."""

    limit_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    exhausted: bool = False


@dataclass(frozen=True)
class BatchProgress:
    """What a run's provider batches are doing, summed over its batching endpoints
    (`BatchLane.snapshot`): requests waiting to be sent in a batch, batches at the provider and
    the requests in them, answers routed back, requests sent again, anomalies seen."""

    queued: int = 0
    batches_in_progress: int = 0
    requests_in_progress: int = 0
    answered: int = 0
    retried: int = 0
    anomalies: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> BatchProgress:
        """From `BatchLane.snapshot`'s counts (summed); counts it does not name are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in counts.items() if k in names})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class RunSnapshot:
    """One live run as it stood at `version`: what the registry hands its readers (the
    driver's display, the HTTP service's status and events). Crosses Ray as itself; `to_dict`
    is its JSON form. `snapshot["done"]` and `snapshot.get("batches")` read that form too, for
    callers of `run_suite(on_progress=...)` written when a snapshot was a dict."""

    run_id: str
    suite: str
    status: str
    message: str | None
    cancel_requested: bool
    started_at: float
    finished_at: float | None
    done: int
    total: int
    errors: int
    cost_usd: float
    budget: BudgetSnapshot
    targets: Mapping[str, TargetProgress]  # copies: the snapshot does not move
    version: int
    batches: BatchProgress | None = None  # None: the run batches nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "status": str(self.status),
            "message": self.message,
            "cancel_requested": self.cancel_requested,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "done": self.done,
            "total": self.total,
            "errors": self.errors,
            "cost_usd": self.cost_usd,
            "budget": asdict(self.budget),
            "targets": {name: asdict(p) for name, p in self.targets.items()},
            "version": self.version,
            "batches": None if self.batches is None else self.batches.to_dict(),
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def with_done(self, done: int) -> RunSnapshot:
        return dataclasses.replace(self, done=done)


@dataclass
class _LiveState:
    run_id: str
    suite: str
    status: str = RunState.RUNNING
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    message: str | None = None
    targets: dict[str, TargetProgress] = field(default_factory=dict)
    batches: BatchProgress | None = None


class LiveRun:
    """One run's live state. Plain Python: the registry actor holds one per open run."""

    def __init__(self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None):
        self.state = _LiveState(run_id, suite)
        self.state.targets = {name: TargetProgress(total=n) for name, n in totals.items()}
        self.budget = BudgetLedger(budget_usd)
        self.cancelled = False
        self.version = 0
        self.changed = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def report(self, target: str, delta: ProgressDelta) -> None:
        progress = self.state.targets.setdefault(target, TargetProgress())
        for name, value in asdict(delta).items():
            setattr(progress, name, getattr(progress, name) + value)
        ok = delta.done - delta.errors - delta.cached
        counter = metrics.samples_total()
        for status, count in (("ok", ok), ("error", delta.errors), ("cached", delta.cached)):
            if count > 0:
                counter.inc(count, tags={"run_id": self.state.run_id, "status": status})
        self.bump()

    def reserve(self, amount_usd: float) -> bool:
        granted = not self.cancelled and self.budget.reserve(amount_usd)
        self.publish_budget()
        return granted

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        self.budget.settle(reserved_usd, actual_usd)
        self.publish_budget()

    def publish_budget(self) -> None:
        ratio = self.budget.used_ratio
        if ratio is not None:
            metrics.run_budget_used_ratio().set(ratio, tags={"run_id": self.state.run_id})

    def set_status(self, status: str, message: str | None) -> None:
        self.state.status = status
        self.state.message = message
        if status not in ACTIVE_STATES:
            self.state.finished_at = time.time()
        self.bump()

    def set_batches(self, batches: BatchProgress) -> None:
        """Record the run's batch progress; readers are woken only when it changed."""
        if batches != self.state.batches:
            self.state.batches = batches
            self.bump()

    def cancel(self) -> None:
        self.cancelled = True
        self.bump()

    def snapshot(self) -> RunSnapshot:
        state = self.state
        progress = state.targets.values()
        return RunSnapshot(
            run_id=state.run_id,
            suite=state.suite,
            status=state.status,
            message=state.message,
            cancel_requested=self.cancelled,
            started_at=state.started_at,
            finished_at=state.finished_at,
            done=sum(p.done for p in progress),
            total=sum(p.total for p in progress),
            errors=sum(p.errors for p in progress),
            cost_usd=round(sum(p.cost_usd for p in progress), 10),
            budget=BudgetSnapshot(
                self.budget.limit_usd,
                self.budget.spent_usd,
                self.budget.reserved_usd,
                self.budget.exhausted,
            ),
            targets={name: dataclasses.replace(p) for name, p in state.targets.items()},
            version=self.version,
            batches=state.batches,
        )


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RunRegistry:
    """Every live run of the cluster, by run id. Calls about a run that is not open raise
    `UnknownRunError`."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}

    def _run(self, run_id: str) -> LiveRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise UnknownRunError(f"run {run_id!r} is not live") from None

    async def open(
        self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None
    ) -> None:
        """Start `run_id`'s live state afresh (a resumed run's driver opens it again)."""
        old = self._runs.get(run_id)
        self._runs[run_id] = LiveRun(run_id, suite, totals, budget_usd)
        if old is not None:
            old.bump()

    async def close(self, run_id: str) -> None:
        """Forget `run_id`; anyone waiting for a change gets its last snapshot."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.bump()

    async def is_open(self, run_id: str) -> bool:
        return run_id in self._runs

    async def report(self, run_id: str, target: str, delta: ProgressDelta) -> None:
        self._run(run_id).report(target, delta)

    async def reserve(self, run_id: str, amount_usd: float) -> bool:
        return self._run(run_id).reserve(amount_usd)

    async def chunk_done(
        self,
        run_id: str,
        target: str,
        reserved_usd: float,
        actual_usd: float,
        delta: ProgressDelta | None,
    ) -> None:
        """`settle` and `report` in one call: a Ray actor call costs about a millisecond of
        CPU on each side, and a shard makes one of these per chunk of requests."""
        run = self._run(run_id)
        if reserved_usd or actual_usd:
            run.settle(reserved_usd, actual_usd)
        if delta is not None:
            run.report(target, delta)

    async def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        self._run(run_id).set_status(status, message)

    async def set_batches(self, run_id: str, batches: BatchProgress) -> None:
        self._run(run_id).set_batches(batches)

    async def cancel(self, run_id: str) -> None:
        self._run(run_id).cancel()

    async def is_cancelled(self, run_id: str) -> bool:
        return self._run(run_id).cancelled

    async def snapshot(self, run_id: str) -> RunSnapshot:
        return self._run(run_id).snapshot()

    async def wait_for_change(
        self, run_id: str, since_version: int, timeout_s: float
    ) -> RunSnapshot:
        """The next snapshot after `since_version`, or the current one after `timeout_s`."""
        run = self._run(run_id)
        if run.version <= since_version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), timeout_s)
        return run.snapshot()


REGISTRY_NAME = "runs"


@dataclass(frozen=True)
class RunHandle:
    """One live run in the registry. Each method sends one call and returns its ObjectRef
    (``ray.get`` it, await it, or drop it for fire-and-forget)."""

    registry: Any  # the RunRegistry actor handle
    run_id: str

    def report(self, target: str, delta: ProgressDelta) -> ray.ObjectRef:
        return self.registry.report.remote(self.run_id, target, delta)

    def reserve(self, amount_usd: float) -> ray.ObjectRef:
        return self.registry.reserve.remote(self.run_id, amount_usd)

    def chunk_done(
        self, target: str, reserved_usd: float, actual_usd: float, delta: ProgressDelta | None
    ) -> ray.ObjectRef:
        return self.registry.chunk_done.remote(self.run_id, target, reserved_usd, actual_usd, delta)

    def set_status(self, status: str, message: str | None = None) -> ray.ObjectRef:
        return self.registry.set_status.remote(self.run_id, status, message)

    def set_batches(self, batches: BatchProgress) -> ray.ObjectRef:
        return self.registry.set_batches.remote(self.run_id, batches)

    def cancel(self) -> ray.ObjectRef:
        return self.registry.cancel.remote(self.run_id)

    def is_cancelled(self) -> ray.ObjectRef:
        return self.registry.is_cancelled.remote(self.run_id)

    def snapshot(self) -> ray.ObjectRef:
        return self.registry.snapshot.remote(self.run_id)

    def wait_for_change(self, since_version: int, timeout_s: float) -> ray.ObjectRef:
        return self.registry.wait_for_change.remote(self.run_id, since_version, timeout_s)

    def close(self) -> ray.ObjectRef:
        return self.registry.close.remote(self.run_id)


def open_run(
    run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None
) -> tuple[RunHandle, ray.ObjectRef]:
    """Open `run_id` in the cluster's registry (created on first use). Returns its handle and
    the pending `open` call: wait for that before anyone else uses the run."""
    registry = RunRegistry.options(
        name=REGISTRY_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached"
    ).remote()
    opened = registry.open.remote(run_id, suite, totals, budget_usd)
    return RunHandle(registry, run_id), opened


def get_live_run(run_id: str) -> RunHandle | None:
    """`run_id`'s handle while it is live, else None (blocking: call it in a thread from async
    code)."""
    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        if not ray.get(registry.is_open.remote(run_id), timeout=10):
            return None
    except (ValueError, ray.exceptions.RayError):
        return None
    return RunHandle(registry, run_id)
