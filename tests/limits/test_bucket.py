import asyncio
import time

import pytest

from evalcluster.errors import RateLimitedError, RequestTooLargeError
from evalcluster.limits.bucket import DualTokenBucket
from evalcluster.limits.clock import ManualClock
from evalcluster.providers.base import RateLimitSnapshot

pytestmark = pytest.mark.anyio


def make(clock: ManualClock, rpm=None, tpm=None, **kwargs) -> DualTokenBucket:
    return DualTokenBucket(rpm, tpm, clock=clock, sleep=clock.sleep, **kwargs)


async def grant_times(clock: ManualClock, bucket: DualTokenBucket, sizes: list[int]) -> list[float]:
    """Acquire all `sizes` concurrently (in order) and return each grant's time."""

    async def one(tokens: int) -> float:
        await bucket.acquire(tokens)
        return clock()

    async def all_of() -> list[float]:
        return list(await asyncio.gather(*(one(t) for t in sizes)))

    return await clock.run(all_of())


async def test_requests_spread_evenly_after_the_burst():
    clock = ManualClock()
    bucket = make(clock, rpm=600)  # 10 per second, burst of 1 second = 10
    times = await grant_times(clock, bucket, [0] * 110)
    assert times[:10] == [0.0] * 10
    # the other 100 go one every 0.1 s: 100 requests at 600 rpm take 1/6 of a minute
    assert times[10] == pytest.approx(0.1)
    assert times[-1] == pytest.approx(10.0)
    gaps = [b - a for a, b in zip(times[10:], times[11:], strict=False)]
    assert max(gaps) == pytest.approx(0.1) and min(gaps) == pytest.approx(0.1)


async def test_never_more_than_the_burst_in_any_instant_or_window():
    clock = ManualClock()
    bucket = make(clock, rpm=1200, burst_s=0.5)  # 20/s, capacity 10
    times = await grant_times(clock, bucket, [0] * 200)
    for window in (0.0, 0.25, 1.0, 3.0):
        worst = max(sum(1 for t in times if start <= t <= start + window) for start in times)
        assert worst <= 10 + 20 * window + 1e-6, (window, worst)
    assert times.count(0.0) == 10


async def test_slow_limit_still_grants_one_request_at_a_time():
    clock = ManualClock()
    bucket = make(clock, rpm=10)  # a second's worth is 1/6 request: capacity is one request
    assert await grant_times(clock, bucket, [0, 0, 0]) == pytest.approx([0.0, 6.0, 12.0])


async def test_token_limit_spreads_requests_by_their_size():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)  # 100 tokens per second, capacity 100
    times = await grant_times(clock, bucket, [50, 50, 50, 50, 100])
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0, 2.0])


async def test_both_limits_must_allow():
    clock = ManualClock()
    bucket = make(clock, rpm=60, tpm=60_000)  # 1 request/s, 1000 tokens/s
    times = await grant_times(clock, bucket, [10, 10, 10])
    assert times == pytest.approx([0.0, 1.0, 2.0])  # requests bind, not tokens


async def test_request_larger_than_capacity_goes_on_a_full_bucket_and_leaves_debt():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)  # capacity 100 tokens
    times = await grant_times(clock, bucket, [300, 10])
    # the 300-token request leaves the bucket at -200; 10 more tokens need 2.1 s of refill
    assert times == pytest.approx([0.0, 2.1])


async def test_estimate_over_the_whole_tpm_is_rejected_at_once_without_charge():
    clock = ManualClock()
    bucket = make(clock, tpm=1000, provider="sim-openai")
    with pytest.raises(RequestTooLargeError) as info:
        await bucket.acquire(1001)
    assert "1001" in str(info.value) and "1000 tokens per minute" in str(info.value)
    assert info.value.provider == "sim-openai"
    assert bucket.headroom()["available_tokens"] == pytest.approx(1000 / 60)
    await bucket.acquire(1000)  # exactly the limit can be sent


async def test_settle_refunds_unused_tokens_to_waiters():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)
    first = await bucket.acquire(100)
    waiting = asyncio.create_task(bucket.acquire(80))
    await clock.settle()
    assert not waiting.done()
    bucket.settle(first, 20)  # the provider reported 20: 80 come back
    await clock.settle()
    assert waiting.done() and clock() == 0.0
    assert bucket.headroom()["available_tokens"] == pytest.approx(0.0)


async def test_settle_debits_tokens_beyond_the_estimate():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)
    first = await bucket.acquire(100)
    bucket.settle(first, 300)
    assert await grant_times(clock, bucket, [10]) == pytest.approx([2.1])


async def test_a_reservation_settles_once():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)
    reservation = await bucket.acquire(10)
    bucket.settle(reservation, 10)
    with pytest.raises(ValueError, match="already settled"):
        bucket.settle(reservation, 10)


async def test_release_returns_the_request_and_its_tokens():
    clock = ManualClock()
    bucket = make(clock, rpm=60, tpm=6000)
    reservation = await bucket.acquire(100)
    assert bucket.headroom()["available_requests"] == 0.0
    bucket.release(reservation)
    room = bucket.headroom()
    assert room["available_requests"] == 1.0 and room["available_tokens"] == 100.0


async def test_waiters_are_served_first_come_first_served():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)
    order: list[str] = []

    async def one(name: str, tokens: int) -> None:
        await bucket.acquire(tokens)
        order.append(name)

    async def scenario() -> None:
        await bucket.acquire(100)  # drain
        await asyncio.gather(one("big", 100), one("small", 1), one("small2", 1))

    await clock.run(scenario())
    assert order == ["big", "small", "small2"]  # the small ones do not overtake the big one
    assert clock() == pytest.approx(1.02)


async def test_cancelled_waiter_takes_nothing_and_leaves_no_timer():
    clock = ManualClock()
    bucket = make(clock, rpm=60)
    await bucket.acquire(0)
    waiter = asyncio.create_task(bucket.acquire(0))
    await clock.settle()
    assert bucket.waiters == 1 and clock.pending == 1
    waiter.cancel()
    await clock.settle()
    assert waiter.cancelled()
    assert bucket.waiters == 0 and clock.pending == 0
    await clock.advance(1.0)
    assert bucket.headroom()["available_requests"] == pytest.approx(1.0)
    await asyncio.wait_for(bucket.acquire(0), timeout=1)  # granted without waiting


async def test_waiter_cancelled_in_the_instant_of_its_grant_gives_it_back():
    clock = ManualClock()
    bucket = make(clock, tpm=6000)
    first = await bucket.acquire(100)
    waiter = asyncio.create_task(bucket.acquire(60))
    await clock.settle()
    bucket.settle(first, 0)  # grants the waiter synchronously...
    waiter.cancel()  # ...which is cancelled before it runs
    await clock.settle()
    assert waiter.cancelled()
    assert bucket.headroom()["available_tokens"] == pytest.approx(100.0)


async def test_rate_limited_pauses_every_grant_until_retry_after():
    clock = ManualClock()
    bucket = make(clock, rpm=600)
    bucket.on_rate_limited(retry_after_s=5.0)
    room = bucket.headroom()
    assert room["paused_until"] == 5.0 and room["paused_for_s"] == 5.0
    times = await grant_times(clock, bucket, [0, 0, 0])
    assert min(times) == pytest.approx(5.0)


async def test_longer_pause_extends_a_shorter_one():
    clock = ManualClock()
    bucket = make(clock, rpm=600)
    bucket.pause_until(2.0)
    waiter = asyncio.create_task(bucket.acquire(0))
    await clock.advance(1.0)
    bucket.pause_until(4.0)
    bucket.pause_until(3.0)  # an earlier deadline does not shorten it
    await clock.advance(2.5)
    assert not waiter.done()
    await clock.advance(0.5)
    assert waiter.done() and clock() == 4.0


async def test_429s_lower_the_rate_multiplicatively_once_per_interval_down_to_a_floor():
    clock = ManualClock()
    bucket = make(clock, rpm=600, tpm=60_000, decrease_interval_s=5.0)
    assert bucket.on_rate_limited() is True
    assert bucket.rate_fraction == pytest.approx(0.7)
    assert bucket.on_rate_limited() is False  # same window's burst of 429s: one signal
    assert bucket.rate_fraction == pytest.approx(0.7)
    await clock.advance(5.0)
    bucket.on_rate_limited()
    assert bucket.rate_fraction == pytest.approx(0.49)
    room = bucket.headroom()
    assert room["rpm"] == pytest.approx(294) and room["tpm"] == pytest.approx(29_400)
    for _ in range(20):
        await clock.advance(5.0)
        bucket.on_rate_limited()
    assert bucket.rate_fraction == pytest.approx(0.1)


async def test_successes_recover_the_rate_additively_after_the_interval():
    clock = ManualClock()
    bucket = make(clock, rpm=600, decrease_interval_s=5.0, recovery_step=0.1)
    bucket.on_rate_limited()
    bucket.on_success()  # answers to requests sent before the 429 prove nothing
    assert bucket.rate_fraction == pytest.approx(0.7)
    await clock.advance(5.0)
    bucket.on_success()
    assert bucket.rate_fraction == pytest.approx(0.8)
    for _ in range(10):
        bucket.on_success()
    assert bucket.rate_fraction == 1.0
    assert bucket.headroom()["rpm"] == 600


async def test_lowered_rate_spreads_grants_further():
    clock = ManualClock()
    bucket = make(clock, rpm=600, decrease_factor=0.5)
    bucket.on_rate_limited()  # 300 rpm: 5 per second, capacity 5
    times = await grant_times(clock, bucket, [0] * 25)
    assert times.count(0.0) == 5
    assert times[-1] == pytest.approx(4.0)


async def test_observed_zero_remaining_pauses_until_the_reset():
    clock = ManualClock()
    bucket = make(clock, rpm=600, tpm=100_000)
    bucket.observe(RateLimitSnapshot(remaining_requests=12, reset_requests_s=30.0))
    assert bucket.headroom()["paused_until"] is None
    bucket.observe(RateLimitSnapshot(remaining_tokens=0, reset_tokens_s=3.0))
    assert bucket.headroom()["paused_for_s"] == 3.0
    assert await grant_times(clock, bucket, [10]) == [3.0]
    assert bucket.rate_fraction == 1.0  # headers are information, not a 429


async def test_unlimited_bucket_never_waits():
    clock = ManualClock()
    bucket = make(clock)
    times = await grant_times(clock, bucket, [10**9] * 500)
    assert set(times) == {0.0}
    room = bucket.headroom()
    assert room["available_requests"] is None and room["rpm"] is None


async def test_conservative_start_begins_slow_and_without_a_burst():
    clock = ManualClock()
    bucket = make(clock, rpm=600)
    bucket.conservative_start(0.5)
    times = await grant_times(clock, bucket, [0] * 5)
    assert times == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert bucket.headroom()["rpm"] == 300


async def test_headroom_counts_waiters():
    clock = ManualClock()
    bucket = make(clock, rpm=60)
    await bucket.acquire(0)
    tasks = [asyncio.create_task(bucket.acquire(0)) for _ in range(3)]
    await clock.settle()
    assert bucket.headroom()["waiters"] == 3
    await clock.advance(3.0)
    assert all(t.done() for t in tasks)
    assert bucket.headroom()["waiters"] == 0


def test_invalid_limits_are_rejected():
    with pytest.raises(ValueError, match="rpm"):
        DualTokenBucket(0, None)
    with pytest.raises(ValueError, match="burst_s"):
        DualTokenBucket(60, None, burst_s=0)


async def test_real_clock_spreads_requests_in_real_time_without_busy_waiting():
    sleeps = 0

    async def counting_sleep(delay: float) -> None:
        nonlocal sleeps
        sleeps += 1
        await asyncio.sleep(delay)

    bucket = DualTokenBucket(6000, None, burst_s=0.05, sleep=counting_sleep)  # 100/s, cap 5
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire(0) for _ in range(25)))
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 1.5  # 20 after the burst at 100/s: 0.2 s (loose: shared CPU)
    assert sleeps <= 45  # about one timer per grant, however many waiters


# --- pauses follow the retry policy's ceiling (max_pause_s) -----------------------------------


async def test_a_pause_longer_than_the_ceiling_ends_queued_and_new_callers_at_once():
    clock = ManualClock()
    bucket = make(clock, rpm=60, max_pause_s=120.0, wall_clock=lambda: 1000.0 + clock())
    first = await bucket.acquire(0)  # the bucket holds one request: the next ones queue
    queued = [asyncio.create_task(bucket.acquire(0)) for _ in range(3)]
    await clock.settle()
    assert bucket.waiters == 3
    bucket.on_rate_limited(retry_after_s=600.0)
    await clock.settle()
    for task in queued:
        error = task.exception()
        assert isinstance(error, RateLimitedError) and error.kind == "rate_limited"
        assert error.retry_after_s == pytest.approx(600.0) and error.retryable is False
        assert "max_retry_after_s" in str(error)
    with pytest.raises(RateLimitedError):
        await bucket.acquire(0)
    pause = bucket.pause()
    assert pause["until"] == pytest.approx(1600.0) and pause["for_s"] == pytest.approx(600.0)
    assert pause["waits"] is False and "retry after 600s" in pause["reason"]
    # Once what is left fits the ceiling, callers wait out the rest (nothing goes before it).
    await clock.advance(480.0)
    assert bucket.pause()["waits"] is True
    times = await grant_times(clock, bucket, [0])
    assert times == [pytest.approx(600.0)]
    bucket.settle(first, 0)


async def test_a_pause_within_the_ceiling_is_waited_out():
    clock = ManualClock()
    bucket = make(clock, rpm=600, max_pause_s=900.0)
    bucket.observe(RateLimitSnapshot(remaining_requests=0, reset_requests_s=600.0))
    pause = bucket.pause()
    assert pause["waits"] is True and "no requests remaining" in pause["reason"]
    assert bucket.headroom()["paused_for_s"] == pytest.approx(600.0)
    times = await grant_times(clock, bucket, [0, 0])
    assert min(times) == pytest.approx(600.0)
    assert bucket.pause() is None
