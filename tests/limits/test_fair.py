import asyncio
from collections import Counter

import pytest

from evalcluster.limits.bucket import DualTokenBucket
from evalcluster.limits.clock import ManualClock
from evalcluster.limits.fair import WeightedFairQueue

pytestmark = pytest.mark.anyio


async def serve(queue: WeightedFairQueue, demand: dict[str, tuple[float, int]]) -> list[str]:
    """Every run queues all its requests at once; returns the order turns were granted in."""
    order: list[str] = []

    async def one(run_id: str, weight: float) -> None:
        async with queue.turn(run_id, weight):
            order.append(run_id)
            await asyncio.sleep(0)  # hold the slot across a loop iteration

    await asyncio.gather(
        *(one(run, weight) for run, (weight, count) in demand.items() for _ in range(count))
    )
    return order


async def test_equal_weights_share_equally():
    order = await serve(WeightedFairQueue(), {"a": (1.0, 300), "b": (1.0, 300)})
    shares = Counter(order[:200])
    assert 90 <= shares["a"] <= 110 and 90 <= shares["b"] <= 110


async def test_weights_two_to_one_share_two_thirds_to_one_third():
    order = await serve(WeightedFairQueue(), {"hi": (2.0, 400), "lo": (1.0, 400)})
    shares = Counter(order[:300])
    assert 180 <= shares["hi"] <= 220 and 80 <= shares["lo"] <= 120


async def test_three_runs_share_by_weight():
    demand = {"a": (3.0, 300), "b": (2.0, 300), "c": (1.0, 300)}
    shares = Counter((await serve(WeightedFairQueue(), demand))[:300])
    assert shares["a"] == pytest.approx(150, abs=15)
    assert shares["b"] == pytest.approx(100, abs=10)
    assert shares["c"] == pytest.approx(50, abs=5)


async def test_a_run_alone_gets_every_turn():
    queue = WeightedFairQueue(slots=4)
    order = await serve(queue, {"solo": (0.5, 100)})
    assert order == ["solo"] * 100
    assert queue.stats()["held"] == 0


async def test_slots_bound_concurrent_holders():
    queue = WeightedFairQueue(slots=3)
    holding = peak = 0

    async def one(run_id: str) -> None:
        nonlocal holding, peak
        async with queue.turn(run_id):
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0)
            holding -= 1

    await asyncio.gather(*(one(r) for r in ("a", "b") for _ in range(20)))
    assert peak == 3


async def test_a_run_gets_no_credit_for_time_it_was_absent():
    queue = WeightedFairQueue()
    order: list[str] = []

    async def one(run_id: str) -> None:
        async with queue.turn(run_id):
            order.append(run_id)
            await asyncio.sleep(0)

    early = [asyncio.create_task(one("early")) for _ in range(300)]
    while len(order) < 100:
        await asyncio.sleep(0)
    late = [asyncio.create_task(one("late")) for _ in range(300)]
    await asyncio.gather(*early, *late)
    after_arrival = Counter(order[101:301])
    assert 90 <= after_arrival["late"] <= 110  # not all 200: no catching up


async def test_cancelled_waiter_takes_no_slot():
    queue = WeightedFairQueue()
    first = await queue.wait_turn("a")
    cancelled = asyncio.create_task(queue.wait_turn("a"))
    waiting = asyncio.create_task(queue.wait_turn("b"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert queue.waiting == 1
    queue.release(first)
    turn = await asyncio.wait_for(waiting, timeout=1)
    assert turn.run_id == "b"
    queue.release(turn)
    assert queue.stats()["held"] == 0


async def test_release_is_idempotent():
    queue = WeightedFairQueue(slots=1)
    turn = await queue.wait_turn("a")
    queue.release(turn)
    queue.release(turn)
    assert queue.stats()["held"] == 0
    other = await asyncio.wait_for(queue.wait_turn("b"), timeout=1)
    assert other.run_id == "b"


async def test_fair_queue_in_front_of_the_bucket_splits_the_provider_rate():
    clock = ManualClock()
    bucket = DualTokenBucket(600, None, clock=clock, sleep=clock.sleep)  # 10 per second
    queue = WeightedFairQueue(slots=1)
    granted: list[tuple[str, float]] = []

    async def request(run_id: str, weight: float) -> None:
        async with queue.turn(run_id, weight):
            await bucket.acquire(0)
        granted.append((run_id, clock()))

    async def scenario() -> None:
        await asyncio.gather(
            *(request("big", 3.0) for _ in range(300)),
            *(request("small", 1.0) for _ in range(300)),
        )

    await clock.run(scenario())
    first_20s = Counter(run for run, t in granted if t < 20.0)
    total = sum(first_20s.values())
    assert total == pytest.approx(10 + 10 * 20, abs=2)  # the bucket's rate, fully used
    assert first_20s["big"] / total == pytest.approx(0.75, abs=0.075)
    # work-conserving: once "big" is done, "small" gets the whole rate
    assert granted[-1][1] == pytest.approx((600 - 10) / 10)


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="slots"):
        WeightedFairQueue(slots=0)


async def test_invalid_weight_is_rejected():
    with pytest.raises(ValueError, match="weight"):
        await WeightedFairQueue().wait_turn("a", 0.0)
