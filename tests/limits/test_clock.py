import asyncio

import pytest

from evalcluster.limits.clock import ManualClock

pytestmark = pytest.mark.anyio


async def test_sleepers_wake_in_deadline_order_each_at_its_own_time():
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep(delay)
        woke.append((name, clock()))

    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in (("c", 3.0), ("a", 1.0), ("b", 2.0))]
    await clock.advance(2.5)
    assert woke == [("a", 1.0), ("b", 2.0)]
    assert clock.now == 2.5
    await clock.advance(1.0)
    assert woke[-1] == ("c", 3.0)
    await asyncio.gather(*tasks)


async def test_run_jumps_time_to_each_deadline_until_the_task_finishes():
    clock = ManualClock(start=100.0)

    async def work() -> float:
        for _ in range(5):
            await clock.sleep(60.0)
        return clock()

    assert await clock.run(work()) == 400.0


async def test_run_reports_a_task_no_sleeper_will_ever_wake():
    clock = ManualClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(RuntimeError, match="stuck"):
        await clock.run(never)


async def test_cancelled_sleepers_are_skipped():
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(5.0))
    await clock.settle()
    assert clock.pending == 1
    task.cancel()
    await clock.settle()
    assert clock.pending == 0
    await clock.advance(10.0)
    assert clock.now == 10.0
