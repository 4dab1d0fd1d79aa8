from __future__ import annotations

from email.utils import formatdate

import pytest

from evalcluster.providers.base import RateLimitSnapshot
from evalcluster.providers.ratelimit_headers import (
    parse_duration,
    parse_rate_limits,
    parse_reset,
    parse_retry_after,
    retry_delay,
)

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5), ("0.5s", 0.5),
     ("17", 17.0), ("250us", 0.00025)],
)  # fmt: skip
def test_go_style_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("junk", ["", "soon", "1x", "s1", "-3", "1s junk", "nan", "∞"])
def test_junk_durations_are_none(junk: str) -> None:
    assert parse_duration(junk) is None


def test_retry_after_seconds_ms_and_http_date() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    # retry-after-ms refines retry-after (OpenAI sends both).
    assert parse_retry_after({"retry-after": "2", "retry-after-ms": "1250"}) == 1.25
    date = formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=NOW) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": formatdate(NOW - 30, usegmt=True)}, now=NOW) == 0.0


@pytest.mark.parametrize(
    "headers",
    [{}, {"retry-after": "later"}, {"retry-after": "-5"}, {"retry-after-ms": "x"},
     {"retry-after": "Mon, 99 Foo 2025 99:99:99 GMT"}, {"retry-after": ""}],
)  # fmt: skip
def test_junk_retry_after_is_none(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers) is None


def test_openai_headers() -> None:
    snap = parse_rate_limits(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert snap == RateLimitSnapshot(500, 30000, 499, 29000, 0.12, 360.0)


def test_anthropic_headers_with_rfc3339_resets() -> None:
    snap = parse_rate_limits(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2025-06-15T15:07:00Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-input-tokens-reset": "2025-06-15T15:06:50+00:00",
        },
        now=1_749_999_990.0,  # 2025-06-15T15:06:30Z
    )
    assert snap.limit_requests == 50 and snap.remaining_requests == 0
    assert snap.reset_requests_s == pytest.approx(30.0)
    assert snap.limit_tokens == 40000 and snap.remaining_tokens == 39000
    assert snap.reset_tokens_s == pytest.approx(20.0)


def test_generic_headers_with_epoch_resets() -> None:
    snap = parse_rate_limits(
        {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "3",
         "x-ratelimit-reset": str(int((NOW + 12) * 1000))},
        now=NOW,
    )  # fmt: skip
    assert (snap.limit_requests, snap.remaining_requests) == (20, 3)
    assert snap.reset_requests_s == pytest.approx(12.0)
    assert parse_reset(str(NOW + 5), now=NOW) == pytest.approx(5.0)
    assert parse_reset("42", now=NOW) == 42.0


def test_junk_rate_limit_headers_give_none_fields() -> None:
    snap = parse_rate_limits(
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-remaining-requests": "-1",
            "x-ratelimit-limit-tokens": "1.5",
            "x-ratelimit-reset-requests": "whenever",
            "anthropic-ratelimit-tokens-reset": "2025-13-45T99:00:00Z",
        }
    )
    assert snap == RateLimitSnapshot()
    assert parse_rate_limits({}) == RateLimitSnapshot()


def test_retry_delay_prefers_explicit_headers_then_the_exhausted_window() -> None:
    assert retry_delay({"retry-after": "3", "x-ratelimit-reset-requests": "20s"}) == 3.0
    headers = {
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1.5s",
    }
    assert retry_delay(headers) == 1.5
    assert retry_delay({"x-ratelimit-reset-requests": "4s"}) == 4.0
    assert retry_delay({"x-ratelimit-reset-requests": "junk"}) is None


# --- over real HTTP, against a rate-limited simulator ----------------------------------------


@pytest.fixture
def limited_sim():
    """A fresh simulator per test, so each starts with a full window."""
    from evalcluster.simulator import SimulatorConfig, SimulatorThread

    with SimulatorThread(SimulatorConfig(rpm=60, tpm=100_000)) as server:
        yield server


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_http_limits_are_read_and_a_real_429_carries_its_delay(
    limited_sim, kind: str, api_key: str
) -> None:
    from evalcluster.errors import RateLimitedError

    from .conftest import ask, over_http

    async with over_http(limited_sim, kind) as adapter:
        completion = await adapter.complete(ask(max_tokens=8))
        snap = completion.rate_limits
        assert snap.limit_requests == 60 and snap.limit_tokens == 100_000
        assert snap.remaining_requests is not None and snap.reset_requests_s is not None
        assert 0 <= snap.reset_requests_s <= 60
        with pytest.raises(RateLimitedError) as info:  # 60 rpm admits one request a second
            for _ in range(5):
                await adapter.complete(ask(max_tokens=8))
    assert info.value.retry_after_s is not None and 0 < info.value.retry_after_s <= 2


def test_a_response_without_rate_limit_headers_gives_an_empty_snapshot() -> None:
    snap = parse_rate_limits({"content-type": "application/json", "x-request-id": "abc"})
    assert snap == RateLimitSnapshot()
    # one header of a family is enough to read the rest
    assert parse_rate_limits({"x-ratelimit-remaining": "7"}).remaining_requests == 7
