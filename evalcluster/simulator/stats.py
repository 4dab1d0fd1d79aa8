"""Counters behind ``GET /stats``: requests by outcome and wire format, tokens served.

Outcomes: ``ok``; ``rate_limited`` (the rpm/tpm limiter); injected faults ``error_500``,
``error_503``, ``timeout``, ``dropped``; ``auth`` (missing or unknown key); ``bad_request`` and
``context_length`` (the request itself); ``forced_<kind>`` for each `x-sim-force` kind used.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

BASE_OUTCOMES = ("ok", "rate_limited", "error_500", "error_503", "timeout", "dropped", "auth")
WIRE_FORMATS = ("openai", "anthropic", "gemini")


class Stats:
    """Mutable counters; single event loop, so no locking."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter (requests in flight stay counted)."""
        self.by_outcome: Counter[str] = Counter()
        self.by_format: Counter[str] = Counter()
        self.by_format_outcome: dict[str, Counter[str]] = {}
        self.tokens_in = 0
        self.tokens_out = 0
        self.cached_tokens = 0  # prompt tokens the sync routes reported read from the cache
        self.since = time.time()
        self.in_flight = getattr(self, "in_flight", 0)

    def record(self, wire_format: str, outcome: str, tokens_in: int = 0, tokens_out: int = 0):
        """Count one finished request (a hung or dropped one counts when it starts)."""
        self.by_outcome[outcome] += 1
        self.by_format[wire_format] += 1
        self.by_format_outcome.setdefault(wire_format, Counter())[outcome] += 1
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view. Every base outcome and wire format is present, zero or not::

        {"requests_total": 3, "by_outcome": {"ok": 2, "rate_limited": 1, ...},
         "by_format": {"openai": 3, "anthropic": 0, "gemini": 0},
         "by_format_outcome": {"openai": {"ok": 2, "rate_limited": 1}},
         "tokens_in": 40, "tokens_out": 2, "in_flight": 0, "since": 1700000000.0}
        """
        return {
            "requests_total": sum(self.by_format.values()),
            "by_outcome": {**dict.fromkeys(BASE_OUTCOMES, 0), **self.by_outcome},
            "by_format": {**dict.fromkeys(WIRE_FORMATS, 0), **self.by_format},
            "by_format_outcome": {k: dict(v) for k, v in self.by_format_outcome.items()},
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cached_tokens": self.cached_tokens,
            "in_flight": self.in_flight,
            "since": self.since,
        }
