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
  fallback: it returns as soon as a request may go, without polling. The wait is bounded: after
  `max_wait_s` (default 4 x `reset_timeout_s`) it raises `CircuitOpenError`.

Endpoint down (the fail-fast rule for endpoints that cannot be reached at all):

* When the failure that opens a closed breaker is a `ProviderConnectionError` (connection
  refused, host not found, connection reset before an answer), the first probe comes after
  `down_probe_s` (default 1 s, at most `reset_timeout_s`) instead of `reset_timeout_s`: a
  refused connection costs nothing to re-check.
* If that probe (any half-open probe after a connection-failure opening) fails to connect too,
  the endpoint is *down*: `down` is True while the breaker is open, `wait_for_probe()` raises
  `EndpointDownError` at once, to every waiter and to every new caller, instead of waiting.
  Probes go on every `reset_timeout_s` (the first caller after it is the probe; callers that
  arrive while the probe is in flight wait for its outcome). A successful probe closes the
  breaker and clears `down`; a probe that fails otherwise (5xx, timeout) leaves an ordinary
  open breaker.
* `status()` says why the breaker opened (`reason`: kind, message, wall time) and whether the
  endpoint is down, so a display can say "endpoint down: connection refused".

Not thread-safe: use one instance from one event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from evalcluster.errors import (
    CircuitOpenError,
    EndpointDownError,
    OverloadedError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ServerError,
)
from evalcluster.limits.clock import Clock, Sleep
from evalcluster.suite.models import BreakerConfig

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
        down_probe_s: float = 1.0,
        max_wait_s: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1 or not reset_timeout_s > 0:
            raise ValueError(
                "failure_threshold and half_open_probes must be >= 1 and reset_timeout_s > 0"
            )
        if not down_probe_s > 0 or (max_wait_s is not None and not max_wait_s > 0):
            raise ValueError("down_probe_s and max_wait_s must be > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.half_open_probes = half_open_probes
        self.down_probe_s = min(down_probe_s, reset_timeout_s)
        self.max_wait_s = 4 * reset_timeout_s if max_wait_s is None else max_wait_s
        self._wall_clock = wall_clock
        self._open_for_s = reset_timeout_s
        self._down = False
        self._reason: dict[str, Any] | None = None
        self._last_failure: dict[str, Any] | None = None
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
        cls,
        config: BreakerConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> CircuitBreaker:
        """A breaker with the thresholds of a provider's `breaker:` block."""
        return cls(
            config.failure_threshold,
            config.reset_timeout_s,
            config.half_open_probes,
            down_probe_s=config.down_probe_s,
            max_wait_s=config.max_wait_s,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """ "closed", "open" or "half_open" (open turns half_open once the timeout passes)."""
        if self._state == "open" and self._clock() >= self._opened_at + self._open_for_s:
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
    def down(self) -> bool:
        """Whether the endpoint is down (see module doc): open after a probe failed to connect
        following a connection-failure opening. False again once half-open."""
        return self._down and self.state == "open"

    @property
    def reason(self) -> dict[str, Any] | None:
        """Why the breaker last opened: the failure's `kind`, `error` message and `at` (wall
        time); None if it never opened."""
        return None if self._reason is None else dict(self._reason)

    @property
    def probes_in_flight(self) -> int:
        return self._probes if self.state == "half_open" else 0

    def status(self) -> dict[str, Any]:
        """State and counters for status displays and metrics."""
        state = self.state
        reopens_in = (
            max(0.0, self._opened_at + self._open_for_s - self._clock()) if state == "open" else 0.0
        )
        return {
            "state": state,
            "consecutive_failures": self._consecutive_failures,
            "opened_count": self._opened_count,
            "probes_in_flight": self.probes_in_flight,
            "half_open_in_s": reopens_in,
            # Whether requests without a fallback fail at once (endpoint down) and why it
            # opened; both stay readable after it closes only as `reason` (history).
            "down": self._down and state != "closed",
            "reason": self.reason,
            "last_failure": None if self._last_failure is None else dict(self._last_failure),
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

    async def wait_for_probe(self, max_wait_s: float | None = None) -> None:
        """Wait until `allow()` says yes (and has taken a probe slot if half_open).

        Raises `EndpointDownError` as soon as the endpoint is down (at once if it already is),
        and `CircuitOpenError` once `max_wait_s` (default: the breaker's) has passed."""
        loop = asyncio.get_running_loop()
        limit = self.max_wait_s if max_wait_s is None else max_wait_s
        deadline = self._clock() + limit
        while not self.allow():
            if self.down:
                raise self.down_error()
            left = deadline - self._clock()
            if left <= 0:
                raise CircuitOpenError(
                    f"circuit open: no probe got through within {limit:g}s{self._reason_text()}",
                    should_retry=False,
                )
            changed: asyncio.Future[None] = loop.create_future()
            self._watchers.append(changed)
            delay = left
            if self._state == "open":
                delay = min(delay, self._opened_at + self._open_for_s - self._clock())
            timer = loop.create_task(self._sleep(delay))
            timer.add_done_callback(lambda _t, f=changed: f.done() or f.set_result(None))
            try:
                await changed
            finally:
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
            self._down = False
            self._notify()

    def record_failure(self, exc: BaseException) -> None:
        """A request failed with `exc`; only provider-side failures count (see module doc)."""
        if not counts_as_failure(exc):
            self.release_probe()
            return
        self._consecutive_failures += 1
        self._last_failure = self._describe(exc)
        state = self.state
        if state == "half_open":
            # A probe failed: down when it could not connect after a connection-failure
            # opening (or after an earlier down verdict).
            was_unreachable = self._down or (
                self._reason is not None and self._reason["kind"] == ProviderConnectionError.kind
            )
            self._down = was_unreachable and isinstance(exc, ProviderConnectionError)
            self._open(exc)
        elif state == "closed" and self._consecutive_failures >= self.failure_threshold:
            self._open(exc)
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

    def down_error(self) -> EndpointDownError:
        """The error a request without a fallback ends with while the endpoint is down."""
        return EndpointDownError(
            f"endpoint down{self._reason_text()}; next probe in "
            f"{self.status()['half_open_in_s']:.0f}s",
            should_retry=False,
        )

    def _reason_text(self) -> str:
        failure = self._last_failure or self._reason
        return "" if failure is None else f": {failure['error']}"

    def _describe(self, exc: BaseException) -> dict[str, Any]:
        kind = getattr(exc, "kind", type(exc).__name__)
        # The message without the "provider: " prefix; adapters keep keys out of messages.
        message = getattr(exc, "message", None) or str(exc)
        return {"kind": kind, "error": str(message)[:200], "at": self._wall_clock()}

    def _open(self, exc: BaseException) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probes = 0
        self._opened_count += 1
        self._reason = self._describe(exc)
        # A connection failure not yet confirmed is re-checked early: a probe that cannot
        # connect either makes the endpoint down (see module doc).
        unconfirmed = isinstance(exc, ProviderConnectionError) and not self._down
        self._open_for_s = self.down_probe_s if unconfirmed else self.reset_timeout_s
        self._notify()

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)
