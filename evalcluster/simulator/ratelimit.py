"""Request and token limits enforced the way real providers do: in short fixed windows.

A per-minute limit L is enforced per window of `w = max(window_s, 60 / L)` seconds, each
admitting `C = max(1, floor(L * w / 60))` units, so a client cannot burst a whole minute's
budget in one go. A request larger than C (a long prompt against a small token limit) is
admitted into a window nothing has touched yet, and its excess carries over as debt that blocks
the following windows: the long-run rate never exceeds L per minute. A request costing more
than L itself can never be served and is refused with `too_large`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

LimitName = Literal["requests", "tokens"]


class WindowState(NamedTuple):
    """What a response reports about one limit: per-minute limit, what is left now, reset."""

    limit: int
    remaining: int
    reset_s: float


class Admission(NamedTuple):
    """The limiter's verdict on one request."""

    admitted: bool
    retry_after_s: float = 0.0
    limited_by: LimitName | None = None
    too_large: bool = False


@dataclass
class WindowLimit:
    """One per-minute limit quantized to fixed windows aligned to `origin`."""

    per_minute: int
    window_s: float
    origin: float

    def __post_init__(self) -> None:
        self.window_s = max(self.window_s, 60.0 / self.per_minute)
        self.capacity = max(1, math.floor(self.per_minute * self.window_s / 60.0))
        self._index = 0
        self._used = 0

    def _roll(self, now: float) -> None:
        index = math.floor((now - self.origin) / self.window_s)
        if index > self._index:
            self._used = max(0, self._used - self.capacity * (index - self._index))
            self._index = index

    def _window_end(self) -> float:
        return self.origin + (self._index + 1) * self.window_s

    def wait_s(self, cost: int, now: float) -> float:
        """0 when `cost` fits now, else the seconds until it will."""
        self._roll(now)
        if self._used == 0 or self._used + cost <= self.capacity:
            return 0.0
        # After n more windows `used` has fallen by n * capacity; n is the first that fits.
        n = min(
            math.ceil((self._used + cost - self.capacity) / self.capacity),
            math.ceil(self._used / self.capacity),
        )
        return self._window_end() - now + (n - 1) * self.window_s

    def charge(self, cost: int, now: float) -> None:
        self._roll(now)
        self._used += cost

    def state(self, now: float) -> WindowState:
        self._roll(now)
        remaining = max(0, self.capacity - self._used)
        return WindowState(self.per_minute, remaining, max(0.0, self._window_end() - now))


class RateLimiter:
    """The requests and tokens limits of one simulator; either may be None (unlimited)."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        origin = clock()
        self.requests = WindowLimit(rpm, window_s, origin) if rpm else None
        self.tokens = WindowLimit(tpm, window_s, origin) if tpm else None

    def try_acquire(self, tokens: int) -> Admission:
        """Admit and charge one request of `tokens` tokens, or say how long to wait."""
        now = self._clock()
        if self.tokens is not None and tokens > self.tokens.per_minute:
            return Admission(False, 60.0, "tokens", too_large=True)
        waits: list[tuple[float, LimitName]] = []
        if self.requests is not None:
            waits.append((self.requests.wait_s(1, now), "requests"))
        if self.tokens is not None:
            waits.append((self.tokens.wait_s(tokens, now), "tokens"))
        wait, name = max(waits, default=(0.0, None))
        if wait > 0:
            return Admission(False, wait, name)
        if self.requests is not None:
            self.requests.charge(1, now)
        if self.tokens is not None:
            self.tokens.charge(tokens, now)
        return Admission(True)

    def requests_state(self) -> WindowState | None:
        return None if self.requests is None else self.requests.state(self._clock())

    def tokens_state(self) -> WindowState | None:
        return None if self.tokens is None else self.tokens.state(self._clock())
