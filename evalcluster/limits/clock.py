"""Time sources for the limiters: the real one, and a manual one for tests.

Every limiter takes a `clock` (a callable returning monotonic seconds) and a `sleep` (an async
callable) so that tests can run minutes of simulated traffic in milliseconds. `ManualClock`
provides both: time moves only when `advance` or `run` moves it, and sleepers wake in deadline
order, each seeing the clock at exactly its own deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Loop iterations that let a chain of woken futures and tasks run to quiescence. Each hop of a
# chain (future resolved -> task resumes -> resolves another future ...) costs one iteration;
# the limiters' chains are a handful deep, so this is ample and still costs microseconds.
_SETTLE_ROUNDS = 50


class ManualClock:
    """A controllable monotonic clock with a matching async `sleep`.

    Use `clock` as the limiter's clock (it is callable) and `clock.sleep` as its sleep. Only one
    event loop may use an instance.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current simulated time in seconds."""
        return self._now

    @property
    def pending(self) -> int:
        """How many sleepers are still waiting."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, delay: float) -> None:
        """Wait until the clock reaches now + delay (a delay <= 0 only yields once)."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay, next(self._seq), fut))
        await fut

    async def settle(self) -> None:
        """Let everything that can run without time passing run."""
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers in deadline order on the way."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        await self.settle()
        while self._wake_next(limit=target):
            await self.settle()
        self._now = target

    async def run(self, awaitable: Awaitable[T], *, max_time: float = 1e7) -> T:
        """Run `awaitable` to completion, jumping time to each next deadline when all is idle.

        Raises RuntimeError if the awaitable waits on something no sleeper will ever wake
        (a deadlock), or if simulated time would pass `max_time`.
        """
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                await self.settle()
                if task.done():
                    return task.result()
                if not self._wake_next(limit=max_time):
                    raise RuntimeError(
                        f"ManualClock.run: task is stuck at t={self._now:.3f}s with no sleeper "
                        f"due before t={max_time}"
                    )
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _wake_next(self, *, limit: float) -> bool:
        """Jump to the earliest live deadline <= limit and wake every sleeper due then."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        if not self._sleepers or self._sleepers[0][0] > limit:
            return False
        deadline = self._sleepers[0][0]
        self._now = max(self._now, deadline)
        while self._sleepers and self._sleepers[0][0] <= deadline:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        return True
