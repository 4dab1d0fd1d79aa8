"""A sliding send window: at most a bucket's burst of sends in any burst-length window.

The token bucket alone lets up to twice its capacity through within one window after an idle
spell (a full bucket, then the refill). Providers enforce per-minute limits in short fixed
windows ("quantized": OpenAI's rate-limit guide gives 60,000 rpm enforced as 1,000 per second),
so that burst meets 429s whenever the window was already partly used. A window of the bucket's
burst length holding the bucket's capacity closes the gap; at the steady rate it never waits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from evalcluster.limits.clock import Clock, Sleep


class SendWindow:
    """At most `capacity` sends in any `window_s` seconds (a sliding log of send times).

    `per_minute` of None means unlimited (`wait` returns at once). Callers must take turns
    (the endpoint pipeline's fair queue serialises them): two waiting at once could both go
    when the oldest send leaves the window.
    """

    def __init__(
        self,
        per_minute: float | None,
        burst_s: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute is not None and not per_minute > 0:
            raise ValueError(f"per_minute must be positive or None, got {per_minute}")
        if not burst_s > 0:
            raise ValueError(f"burst_s must be positive, got {burst_s}")
        self.window_s = burst_s if per_minute is None else max(burst_s, 60.0 / per_minute)
        capacity = None if per_minute is None else max(1, math.floor(per_minute * burst_s / 60))
        self._sent: deque[float] | None = None if capacity is None else deque(maxlen=capacity)
        self._clock = clock
        self._sleep = sleep

    @property
    def capacity(self) -> int | None:
        """Sends allowed in any `window_s` seconds; None when unlimited."""
        return None if self._sent is None else self._sent.maxlen

    async def wait(self) -> None:
        """Return when one more send fits, and record it."""
        if self._sent is None:
            return
        if len(self._sent) == self._sent.maxlen:
            delay = self._sent[0] + self.window_s - self._clock()
            if delay > 0:
                await self._sleep(delay)
        self._sent.append(self._clock())
