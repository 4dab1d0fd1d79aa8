"""Weighted fair sharing of one provider endpoint among the runs that use it.

`WeightedFairQueue` is a semaphore with `slots` places whose waiters are served by start-time
fair queuing (Goyal, Vin & Cheng, SIGCOMM 1996): each request gets a virtual start tag
``max(V, F_run)`` and its run's finish tag advances by ``cost / weight``; the waiter with the
smallest start tag goes next, and V is the start tag last served.

Guarantees:

* Proportional shares: runs that keep requests waiting get turns in proportion to their
  weights (equal weights: equal turns; 2:1 gives 2/3 and 1/3).
* Work-conserving: a free slot is never left idle while anyone waits; a run alone gets every
  turn.
* No credit for absence: a run that was idle re-enters at the current virtual time, so it cannot
  monopolise the endpoint to "catch up".
* FIFO within a run, and cancellation-safe: a cancelled waiter takes no slot.

In front of a `DualTokenBucket` use ``slots=1`` and hold the turn until the bucket grants: the
bucket then sees one waiter at a time, in fair order. With ``slots=max_concurrency`` it shares
in-flight requests instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Turn:
    """A held place in the queue; give it back with `WeightedFairQueue.release`."""

    run_id: str
    start_tag: float
    released: bool = field(default=False, compare=False)


@dataclass(slots=True)
class _RunState:
    finish_tag: float = 0.0
    waiting: int = 0
    granted: int = 0


@dataclass(order=True, slots=True)
class _Waiter:
    start_tag: float
    seq: int
    run_id: str = field(compare=False)
    finish_tag: float = field(compare=False)
    future: asyncio.Future[Turn] = field(compare=False)


class WeightedFairQueue:
    """Admits at most `slots` holders at a time, choosing among waiting runs by weight."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self._slots = slots
        self._held = 0
        self._virtual_time = 0.0
        self._heap: list[_Waiter] = []
        self._runs: dict[str, _RunState] = {}
        self._seq = itertools.count()

    async def wait_turn(self, run_id: str, weight: float = 1.0, *, cost: float = 1.0) -> Turn:
        """Wait for a slot. `weight` is the run's priority (share); `cost` the size of this
        request in whatever unit is shared (1 per request by default)."""
        if not weight > 0:
            raise ValueError(f"weight must be positive, got {weight}")
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        run = self._runs.setdefault(run_id, _RunState())
        start = max(self._virtual_time, run.finish_tag)
        finish = start + cost / weight
        run.finish_tag = finish
        future: asyncio.Future[Turn] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(start, next(self._seq), run_id, finish, future)
        heapq.heappush(self._heap, waiter)
        run.waiting += 1
        self._admit_waiters()  # a free slot admits at once: awaiting a done future never yields
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # admitted in the same instant: hand it back
            else:
                self._forget(waiter)
            raise

    @asynccontextmanager
    async def turn(
        self, run_id: str, weight: float = 1.0, *, cost: float = 1.0
    ) -> AsyncIterator[Turn]:
        """``async with queue.turn(run_id, weight):`` holds a slot for the block."""
        held = await self.wait_turn(run_id, weight, cost=cost)
        try:
            yield held
        finally:
            self.release(held)

    def release(self, turn: Turn) -> None:
        """Give a slot back and admit the next waiter in fair order."""
        if turn.released:
            return
        turn.released = True
        self._held -= 1
        self._admit_waiters()

    @property
    def waiting(self) -> int:
        return sum(run.waiting for run in self._runs.values())

    def stats(self) -> dict[str, Any]:
        """Slots held, and per run: waiters and turns granted so far."""
        return {
            "slots": self._slots,
            "held": self._held,
            "runs": {
                run_id: {"waiting": run.waiting, "granted": run.granted}
                for run_id, run in self._runs.items()
            },
        }

    # -- internals --------------------------------------------------------------------------

    def _admit(self, run_id: str, start_tag: float) -> Turn:
        self._held += 1
        self._virtual_time = max(self._virtual_time, start_tag)
        run = self._runs[run_id]
        run.granted += 1
        return Turn(run_id, start_tag)

    def _admit_waiters(self) -> None:
        while self._held < self._slots and self._heap:
            waiter = heapq.heappop(self._heap)
            if waiter.future.done():  # cancelled; _forget already fixed the counts
                continue
            self._runs[waiter.run_id].waiting -= 1
            waiter.future.set_result(self._admit(waiter.run_id, waiter.start_tag))
        self._drop_idle_runs()

    def _forget(self, waiter: _Waiter) -> None:
        run = self._runs.get(waiter.run_id)
        if run is None:
            return
        run.waiting -= 1
        # Undo the cancelled request's share if nothing was tagged after it.
        if run.finish_tag == waiter.finish_tag:
            run.finish_tag = waiter.start_tag
        self._admit_waiters()

    def _drop_idle_runs(self) -> None:
        # A run with no waiters whose finish tag is not ahead of V would re-enter at V anyway;
        # keeping it would only grow the table with every run ever seen.
        if len(self._runs) <= 64:
            return
        now = self._virtual_time
        idle = [r for r, s in self._runs.items() if s.waiting == 0 and s.finish_tag <= now]
        for run_id in idle:
            del self._runs[run_id]
