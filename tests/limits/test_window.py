import pytest

from evalcluster.limits.clock import ManualClock
from evalcluster.limits.window import SendWindow

pytestmark = pytest.mark.anyio


async def send_times(clock: ManualClock, window: SendWindow, n: int) -> list[float]:
    """`n` sends taking turns (as the pipeline's fair queue makes them): when each went."""

    async def all_of() -> list[float]:
        times = []
        for _ in range(n):
            await window.wait()
            times.append(clock())
        return times

    return await clock.run(all_of())


async def test_unlimited_never_waits():
    clock = ManualClock()
    window = SendWindow(None, 1.0, clock=clock, sleep=clock.sleep)
    assert window.capacity is None
    assert await send_times(clock, window, 1000) == [0.0] * 1000


async def test_at_most_the_burst_goes_in_any_window():
    clock = ManualClock()
    window = SendWindow(600, 1.0, clock=clock, sleep=clock.sleep)  # 10 per second
    assert window.capacity == 10 and window.window_s == 1.0
    times = await send_times(clock, window, 25)
    assert times == pytest.approx([0.0] * 10 + [1.0] * 10 + [2.0] * 5)


async def test_a_rate_below_one_per_burst_allows_one_send_per_interval():
    clock = ManualClock()
    window = SendWindow(10, 1.0, clock=clock, sleep=clock.sleep)  # one per 6 s
    assert window.capacity == 1 and window.window_s == 6.0
    assert await send_times(clock, window, 3) == pytest.approx([0.0, 6.0, 12.0])


async def test_at_the_steady_rate_it_never_waits():
    clock = ManualClock()
    window = SendWindow(480, 1.0, clock=clock, sleep=clock.sleep)  # 8/s: one each 0.125 s
    for i in range(50):
        await clock.advance(0.125 if i else 0.0)
        before = clock()
        await clock.run(window.wait())
        assert clock() == before


@pytest.mark.parametrize(("per_minute", "burst_s"), [(0, 1.0), (-5, 1.0), (60, 0.0)])
def test_nonsense_limits_are_refused(per_minute, burst_s):
    with pytest.raises(ValueError, match="must be positive"):
        SendWindow(per_minute, burst_s)
