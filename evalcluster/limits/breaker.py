"""A circuit breaker for one provider endpoint.

Guarantees of `CircuitBreaker`:

* closed -> open after `failure_threshold` consecutive provider-side failures (see
  `counts_as_failure`); a success in between resets the streak.
* open -> half_open once `reset_timeout_s` has passed; while open, `allow()` is False.
* half_open admits at most `half_open_probes` requests at a time; a probe's success closes the
  breaker, its failure re-opens it for another `reset_timeout_s`.
* Errors that say nothing about the endpoint's health (auth, bad request, rate limited, quota,
  content filter, anything not a `ProviderError`) neither count nor reset the streak; a probe
  that ends in one just frees its slot.
* `wait_for_probe()` lets work queue for the endpoint instead of failing when there is no
  fallback: it returns as soon as a request may go, without polling.

Not thread-safe: use one instance from one event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from evalcluster.errors import (
    OverloadedError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ServerError,
)
from evalcluster.limits.clock import Clock, Sleep
from evalcluster.spec.models import BreakerConfig

BreakerState = Literal["closed", "open", "half_open"]

_PROVIDER_SIDE = (ServerError, OverloadedError, ProviderTimeoutError, ProviderConnectionError)


def counts_as_failure(exc: BaseException) -> bool:
    """Whether `exc` is evidence that the endpoint itself is unhealthy."""
    if isinstance(exc, _PROVIDER_SIDE):
        return True
    # An unparseable body behind a 4xx is the request's problem; behind a 5xx or with no
    # status at all (a dropped stream) it is the endpoint's.
    return isinstance(exc, ProtocolError) and (exc.status is None or exc.status >= 500)


class CircuitBreaker:
    """closed / open / half_open state of one endpoint, with a bounded number of probes."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_probes: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1 or not reset_timeout_s > 0:
            raise ValueError(
                "failure_threshold and half_open_probes must be >= 1 and reset_timeout_s > 0"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._sleep = sleep
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probes = 0
        self._consecutive_failures = 0
        self._opened_count = 0
        self._watchers: list[asyncio.Future[None]] = []

    @classmethod
    def from_config(
        cls, config: BreakerConfig, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> CircuitBreaker:
        """A breaker with the thresholds of a provider's `breaker:` block."""
        return cls(
            config.failure_threshold,
            config.reset_timeout_s,
            config.half_open_probes,
            clock=clock,
            sleep=sleep,
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """ "closed", "open" or "half_open" (open turns half_open once the timeout passes)."""
        if self._state == "open" and self._clock() >= self._opened_at + self.reset_timeout_s:
            self._state = "half_open"
            self._probes = 0
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def opened_count(self) -> int:
        """How many times the breaker has opened since it was made."""
        return self._opened_count

    @property
    def probes_in_flight(self) -> int:
        return self._probes if self.state == "half_open" else 0

    def status(self) -> dict[str, Any]:
        """State and counters for status displays and metrics."""
        state = self.state
        reopens_in = (
            max(0.0, self._opened_at + self.reset_timeout_s - self._clock())
            if state == "open"
            else 0.0
        )
        return {
            "state": state,
            "consecutive_failures": self._consecutive_failures,
            "opened_count": self._opened_count,
            "probes_in_flight": self.probes_in_flight,
            "half_open_in_s": reopens_in,
        }

    # -- admission --------------------------------------------------------------------------

    def allow(self) -> bool:
        """Whether a request may go now; in half_open this takes a probe slot when it says yes."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probes < self.half_open_probes:
            self._probes += 1
            return True
        return False

    async def wait_for_probe(self) -> None:
        """Wait until `allow()` says yes (and has taken a probe slot if half_open)."""
        loop = asyncio.get_running_loop()
        while not self.allow():
            changed: asyncio.Future[None] = loop.create_future()
            self._watchers.append(changed)
            timer: asyncio.Task[None] | None = None
            if self._state == "open":
                delay = self._opened_at + self.reset_timeout_s - self._clock()
                timer = loop.create_task(self._sleep(delay))
                timer.add_done_callback(lambda _t, f=changed: f.done() or f.set_result(None))
            try:
                await changed
            finally:
                if timer is not None:
                    timer.cancel()
                if changed in self._watchers:
                    self._watchers.remove(changed)

    # -- outcomes ---------------------------------------------------------------------------

    def record_success(self) -> None:
        """A request got an answer: the streak resets and a half_open breaker closes.

        An open breaker stays open: a late answer to a request sent before it opened does not
        replace the probe."""
        self._consecutive_failures = 0
        if self.state == "half_open":
            self._state = "closed"
            self._probes = 0
            self._notify()

    def record_failure(self, exc: BaseException) -> None:
        """A request failed with `exc`; only provider-side failures count (see module doc)."""
        if not counts_as_failure(exc):
            self.release_probe()
            return
        self._consecutive_failures += 1
        state = self.state
        if state == "half_open" or (
            state == "closed" and self._consecutive_failures >= self.failure_threshold
        ):
            self._open()
        # Already open: a late failure of a request sent before it opened changes nothing.

    def release_probe(self) -> None:
        """Free a probe slot whose outcome says nothing about the endpoint's health."""
        if self.state == "half_open" and self._probes > 0:
            self._probes -= 1
            self._notify()

    def force_half_open(self) -> None:
        """Start in half_open (an actor restarted after a crash trusts the endpoint only after
        a probe succeeds)."""
        self._state = "half_open"
        self._probes = 0
        self._notify()

    # -- internals --------------------------------------------------------------------------

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probes = 0
        self._opened_count += 1
        self._notify()

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)
