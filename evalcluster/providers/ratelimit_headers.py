"""Every provider's rate-limit and retry headers, parsed into one shape.

Formats understood (header names are lower-case, as `HttpResponse` keeps them):

- `retry-after-ms`: milliseconds (OpenAI, sent before `retry-after`, which it refines).
- `retry-after`: seconds, or an HTTP date (RFC 9110 section 10.2.3).
- OpenAI `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go-style
  durations such as "1s", "6m0s", "120ms" (platform.openai.com/docs/guides/rate-limits).
- Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
  reset}`; resets are RFC 3339 times (docs.anthropic.com/en/api/rate-limits#response-headers).
- Generic `x-ratelimit-{limit,remaining,reset}` (OpenRouter and many gateways): the reset is
  a delay in seconds or an epoch time in seconds or milliseconds.

Missing or malformed values give None; nothing here raises.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from evalcluster.providers.base import RateLimitSnapshot

__all__ = [
    "parse_duration",
    "parse_rate_limits",
    "parse_reset",
    "parse_retry_after",
    "retry_delay",
]

_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "1.5s", "120ms") or a bare number of seconds."""
    if text is None:
        return None
    text = text.strip()
    number = _number(text)
    if number is not None:
        return number if number >= 0 else None
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(v) * _UNIT_S[unit] for v, unit in _DURATION_PART.findall(text))


def parse_reset(text: str | None, *, now: float | None = None) -> float | None:
    """Seconds from `now` until a reset given as a duration, an RFC 3339 time or an epoch."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    now = time.time() if now is None else now
    number = _number(text)
    if number is not None:
        if number < 0:
            return None
        if number > 1e12:  # epoch milliseconds
            return max(0.0, number / 1000 - now)
        if number > 1e9:  # epoch seconds
            return max(0.0, number - now)
        return number
    duration = parse_duration(text)
    if duration is not None:
        return duration
    moment = _rfc3339(text)
    return None if moment is None else max(0.0, moment - now)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The delay the provider asks for: `retry-after-ms`, else `retry-after` (seconds or date)."""
    ms = _number(headers.get("retry-after-ms", ""))
    if ms is not None and ms >= 0:
        return ms / 1000
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - now)


_FAMILIES = ("x-ratelimit-", "anthropic-ratelimit-")
_NONE_SENT = RateLimitSnapshot()


def parse_rate_limits(headers: Mapping[str, str], *, now: float | None = None) -> RateLimitSnapshot:
    """The provider's view of its limits from whichever family of headers it sent."""
    if not any(name.startswith(_FAMILIES) for name in headers):
        return _NONE_SENT  # local servers (vLLM, Ollama, llama.cpp) send none: skip the lookups

    def first(*names: str) -> str | None:
        for name in names:
            if name in headers:
                return headers[name]
        return None

    def count(*names: str) -> int | None:
        return _count(first(*names))

    def reset(*names: str) -> float | None:
        return parse_reset(first(*names), now=now)

    oa, an = "x-ratelimit-", "anthropic-ratelimit-"
    return RateLimitSnapshot(
        limit_requests=count(f"{oa}limit-requests", f"{an}requests-limit", f"{oa}limit"),
        limit_tokens=count(f"{oa}limit-tokens", f"{an}tokens-limit", f"{an}input-tokens-limit"),
        remaining_requests=count(
            f"{oa}remaining-requests", f"{an}requests-remaining", f"{oa}remaining"
        ),
        remaining_tokens=count(
            f"{oa}remaining-tokens", f"{an}tokens-remaining", f"{an}input-tokens-remaining"
        ),
        reset_requests_s=reset(f"{oa}reset-requests", f"{an}requests-reset", f"{oa}reset"),
        reset_tokens_s=reset(f"{oa}reset-tokens", f"{an}tokens-reset", f"{an}input-tokens-reset"),
    )


def retry_delay(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long to wait after a 429: the explicit retry headers, else the reset of the window
    the snapshot shows exhausted (or the longest reset when none is marked exhausted)."""
    explicit = parse_retry_after(headers, now=now)
    if explicit is not None:
        return explicit
    snap = parse_rate_limits(headers, now=now)
    windows = [
        (snap.remaining_requests, snap.reset_requests_s),
        (snap.remaining_tokens, snap.reset_tokens_s),
    ]
    exhausted = [r for left, r in windows if left == 0 and r is not None]
    if exhausted:
        return max(exhausted)
    known = [r for _, r in windows if r is not None]
    return max(known) if known else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str | None) -> int | None:
    value = _number(text)
    if value is None or value < 0 or value != int(value):
        return None
    return int(value)


def _rfc3339(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()
