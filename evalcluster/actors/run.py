"""The run actor: live progress, the budget ledger and the cancel flag of one evaluation run.

Shards report to it as they finish work; the CLI's progress bar, the HTTP service and its
WebSocket read it. The budget is reserved before requests are sent (projected cost) and
settled on the cost the providers reported, so a run stops dispatching once its budget is
spoken for and overspend is bounded by the requests already in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import ray

from evalcluster.actors import metrics

NAMESPACE = "evalcluster"


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


@dataclass
class RunState:
    run_id: str
    suite: str
    status: str = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    message: str | None = None
    targets: dict[str, TargetProgress] = field(default_factory=dict)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RunActor:
    def __init__(self, run_id: str, suite: str, totals: dict[str, int], budget_usd: float | None):
        self._state = RunState(run_id, suite)
        self._state.targets = {name: TargetProgress(total=n) for name, n in totals.items()}
        self._budget = BudgetLedger(budget_usd)
        self._cancelled = False
        self._version = 0
        self._changed = asyncio.Event()

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def report(self, target: str, delta: ProgressDelta) -> None:
        progress = self._state.targets.setdefault(target, TargetProgress())
        for name, value in asdict(delta).items():
            setattr(progress, name, getattr(progress, name) + value)
        ok = delta.done - delta.errors - delta.cached
        counter = metrics.samples_total()
        for status, count in (("ok", ok), ("error", delta.errors), ("cached", delta.cached)):
            if count > 0:
                counter.inc(count, tags={"run_id": self._state.run_id, "status": status})
        self._bump()

    async def reserve(self, amount_usd: float) -> bool:
        granted = not self._cancelled and self._budget.reserve(amount_usd)
        self._publish_budget()
        return granted

    async def settle(self, reserved_usd: float, actual_usd: float) -> None:
        self._budget.settle(reserved_usd, actual_usd)
        self._publish_budget()

    async def chunk_done(
        self, target: str, reserved_usd: float, actual_usd: float, delta: ProgressDelta | None
    ) -> None:
        """`settle` and `report` in one call: a Ray actor call costs about a millisecond of
        CPU on each side, and a shard makes one of these per chunk of requests."""
        if reserved_usd or actual_usd:
            await self.settle(reserved_usd, actual_usd)
        if delta is not None:
            await self.report(target, delta)

    def _publish_budget(self) -> None:
        ratio = self._budget.used_ratio
        if ratio is not None:
            metrics.run_budget_used_ratio().set(ratio, tags={"run_id": self._state.run_id})

    async def set_status(self, status: str, message: str | None = None) -> None:
        self._state.status = status
        self._state.message = message
        if status not in ("running", "pending"):
            self._state.finished_at = time.time()
        self._bump()

    async def cancel(self) -> None:
        self._cancelled = True
        self._bump()

    async def is_cancelled(self) -> bool:
        return self._cancelled

    async def snapshot(self) -> dict[str, Any]:
        state = self._state
        targets = {name: asdict(p) for name, p in state.targets.items()}
        return {
            "run_id": state.run_id,
            "suite": state.suite,
            "status": state.status,
            "message": state.message,
            "cancel_requested": self._cancelled,
            "started_at": state.started_at,
            "finished_at": state.finished_at,
            "done": sum(p.done for p in state.targets.values()),
            "total": sum(p.total for p in state.targets.values()),
            "errors": sum(p.errors for p in state.targets.values()),
            "cost_usd": round(sum(p.cost_usd for p in state.targets.values()), 10),
            "budget": {
                "limit_usd": self._budget.limit_usd,
                "spent_usd": self._budget.spent_usd,
                "reserved_usd": self._budget.reserved_usd,
                "exhausted": self._budget.exhausted,
            },
            "targets": targets,
            "version": self._version,
        }

    async def wait_for_change(self, since_version: int, timeout_s: float) -> dict[str, Any]:
        """The next snapshot after `since_version`, or the current one after `timeout_s`."""
        if self._version <= since_version:
            waiter = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout_s)
        return await self.snapshot()


def run_actor_name(run_id: str) -> str:
    return f"run:{run_id}"


def get_run_actor(run_id: str) -> ray.actor.ActorHandle | None:
    try:
        return ray.get_actor(run_actor_name(run_id), namespace=NAMESPACE)
    except ValueError:
        return None
