"""Anthropic Messages: request shape, parsing and error mapping (mock transport)."""

from __future__ import annotations

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    OverloadedError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.base import FinishReason, Usage

from .conftest import ask, mocked, over_http, reply, sent, sim_answer, sim_input_tokens

pytestmark = pytest.mark.anyio


def _ok(content: list | None = None, stop: str = "end_turn", usage: dict | None = None) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content if content is not None else [{"type": "text", "text": "5"}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 1},
    }


async def test_request_shape(api_key: str) -> None:
    adapter, transport = mocked("anthropic", reply(200, _ok()), anthropic_version="2023-06-01")
    request = ask("Q?", system="Be brief.", model="claude-sonnet-4-5", temperature=0.2,
                  top_p=0.9, max_tokens=64, stop=["END"], seed=3, top_k=5)  # fmt: skip
    await adapter.complete(request)
    call = sent(transport)
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.headers["x-api-key"] == api_key
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in call.headers
    assert call.json() == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "system": "Be brief.",  # top-level, not a message
        "messages": [{"role": "user", "content": "Q?"}],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,  # extras pass through; seed does not exist in this API
    }


async def test_max_tokens_is_always_sent(api_key: str) -> None:
    adapter, transport = mocked("anthropic", reply(200, _ok()))
    await adapter.complete(ask())
    body = sent(transport).json()
    assert body["max_tokens"] == 1024 and "system" not in body


async def test_text_joins_only_text_blocks_and_usage_counts_cache_tokens(api_key: str) -> None:
    content = [
        {"type": "thinking", "thinking": "let me think", "signature": "s"},
        {"type": "text", "text": "The answer "},
        {"type": "tool_use", "id": "t", "name": "calc", "input": {}},
        {"type": "text", "text": "is 5."},
    ]
    usage = {"input_tokens": 10, "output_tokens": 7, "cache_creation_input_tokens": 100,
             "cache_read_input_tokens": 1000}  # fmt: skip
    headers = {"anthropic-ratelimit-requests-remaining": "49"}
    adapter, _ = mocked("anthropic", reply(200, _ok(content, usage=usage), headers))
    completion = await adapter.complete(ask())
    assert completion.text == "The answer is 5."
    assert completion.usage == Usage(1110, 7, cache_read_tokens=1000, cache_write_tokens=100)
    assert completion.model == "claude-sonnet-4-5-20250929"
    assert completion.rate_limits.remaining_requests == 49


@pytest.mark.parametrize(
    ("raw", "finish"),
    [("end_turn", FinishReason.STOP), ("stop_sequence", FinishReason.STOP),
     ("max_tokens", FinishReason.LENGTH), ("refusal", FinishReason.REFUSAL),
     ("tool_use", FinishReason.TOOL_CALLS), ("pause_turn", FinishReason.OTHER)],
)  # fmt: skip
async def test_stop_reasons(raw: str, finish: FinishReason, api_key: str) -> None:
    adapter, _ = mocked("anthropic", reply(200, _ok(stop=raw)))
    completion = await adapter.complete(ask())
    assert completion.finish_reason is finish and completion.raw_finish_reason == raw


def _error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls"),
    [(400, "invalid_request_error", "max_tokens: Field required", BadRequestError),
     (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum",
      ContextLengthError),
     (400, "invalid_request_error", "Your credit balance is too low to access the API",
      QuotaExhaustedError),
     (401, "authentication_error", "invalid x-api-key", AuthError),
     (403, "permission_error", "no access", AuthError),
     (404, "not_found_error", "model: claude-9", BadRequestError),
     (413, "request_too_large", "Request exceeds the maximum size", BadRequestError),
     (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
      RateLimitedError),
     (429, "rate_limit_error", "You have reached your specified workspace API usage limits",
      QuotaExhaustedError),
     (500, "api_error", "Internal server error", ServerError),
     (504, "timeout_error", "Request timed out", ProviderTimeoutError),
     (529, "overloaded_error", "Overloaded", OverloadedError)],
)  # fmt: skip
async def test_error_mapping(status: int, kind: str, message: str, cls: type, api_key: str) -> None:
    adapter, _ = mocked("anthropic", reply(status, _error(kind, message)))
    with pytest.raises(cls) as info:
        await adapter.complete(ask())
    assert type(info.value) is cls and info.value.status == status
    assert message in str(info.value) and kind in str(info.value)


async def test_rate_limit_delay_from_retry_after_or_rfc3339_reset(api_key: str) -> None:
    error = _error("rate_limit_error", "slow down")
    adapter, _ = mocked("anthropic", reply(429, error, {"retry-after": "12"}))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 12.0
    from datetime import UTC, datetime, timedelta

    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": reset}  # fmt: skip
    adapter, _ = mocked("anthropic", reply(429, error, headers))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert 28 <= info.value.retry_after_s <= 30


async def test_error_inside_a_200_is_an_error(api_key: str) -> None:
    adapter, _ = mocked("anthropic", reply(200, _error("overloaded_error", "Overloaded")))
    with pytest.raises(OverloadedError):
        await adapter.complete(ask())


# --- over real HTTP, against the simulator ---------------------------------------------------


async def test_http_answer_usage_and_cost(sim, api_key: str) -> None:
    from evalcluster.providers.pricing import cost_usd
    from evalcluster.simulator import count_tokens

    request = ask("What is 6 * 7? Answer with the number only.", system="You are a calculator.",
                  model="claude-haiku-4-5", temperature=0)  # fmt: skip
    async with over_http(sim, "anthropic") as adapter:
        completion = await adapter.complete(request)
    assert completion.text == sim_answer(request) == "42"
    assert completion.finish_reason is FinishReason.STOP
    assert completion.usage == Usage(sim_input_tokens(request), count_tokens("42"))
    expected = (completion.usage.input_tokens * 1.0 + completion.usage.output_tokens * 5.0) / 1e6
    assert cost_usd(request.model, completion.usage) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("force", "finish"),
    [("length", FinishReason.LENGTH), ("content_filter", FinishReason.REFUSAL),
     ("blocked", FinishReason.REFUSAL)],
)  # fmt: skip
async def test_http_odd_answers_are_outcomes(sim, force: str, finish, api_key: str) -> None:
    async with over_http(sim, "anthropic", force=force) as adapter:
        completion = await adapter.complete(ask("Tell me about the sea.", max_tokens=64))
    assert completion.finish_reason is finish


async def test_http_retry_delay(sim, api_key: str) -> None:
    headers = {"x-sim-retry-after": "3"}
    async with over_http(sim, "anthropic", force="429", headers=headers) as adapter:
        with pytest.raises(RateLimitedError) as info:
            await adapter.complete(ask())
    assert info.value.retry_after_s == 3.0
