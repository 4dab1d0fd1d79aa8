"""Request and token limits enforced the way real providers do: in short fixed windows, or
(`mode="token_bucket"`) as a continuously refilled token bucket.

A per-minute limit L is enforced per window of `w = max(window_s, 60 / L)` seconds, each
admitting `C = max(1, floor(L * w / 60))` units, so a client cannot burst a whole minute's
budget in one go. A request larger than C (a long prompt against a small token limit) is
admitted into a window nothing has touched yet, and its excess carries over as debt that blocks
the following windows: the long-run rate never exceeds L per minute. A request costing more
than L itself can never be served and is refused with `too_large`.

A token bucket (`BucketLimit`) holds `window_s` seconds of the limit (L * window_s / 60, at
least 1) and refills continuously at L / 60 per second, starting full: after an idle spell a
client may send a full bucket at once, then only at the rate. A request larger than the bucket
is admitted into a full bucket and leaves it in debt, as with windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

LimitName = Literal["requests", "tokens"]
LimiterMode = Literal["window", "token_bucket"]


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


@dataclass
class BucketLimit:
    """One per-minute limit as a token bucket of `window_s` seconds, refilled continuously."""

    per_minute: int
    window_s: float
    origin: float

    def __post_init__(self) -> None:
        self.rate = self.per_minute / 60.0
        self.capacity = max(1.0, self.per_minute * self.window_s / 60.0)
        self._level = self.capacity
        self._at = self.origin

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
            self._at = now

    def wait_s(self, cost: int, now: float) -> float:
        """0 when `cost` fits now, else the seconds until it will (a cost above the bucket
        fits once the bucket is full)."""
        self._refill(now)
        need = min(float(cost), self.capacity)
        if self._level >= need:
            return 0.0
        return (need - self._level) / self.rate

    def charge(self, cost: int, now: float) -> None:
        self._refill(now)
        self._level -= cost

    def state(self, now: float) -> WindowState:
        self._refill(now)
        remaining = max(0, math.floor(self._level))
        return WindowState(self.per_minute, remaining, (self.capacity - self._level) / self.rate)


class RateLimiter:
    """The requests and tokens limits of one simulator; either may be None (unlimited)."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        mode: LimiterMode = "window",
    ):
        self._clock = clock
        origin = clock()
        kind = BucketLimit if mode == "token_bucket" else WindowLimit
        self.requests = kind(rpm, window_s, origin) if rpm else None
        self.tokens = kind(tpm, window_s, origin) if tpm else None

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
