"""OpenAI Chat Completions: request shape, parsing and error mapping (mock transport)."""

from __future__ import annotations

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.base import FinishReason, Usage

from .conftest import ask, mocked, over_http, reply, sent, sim_answer, sim_input_tokens

pytestmark = pytest.mark.anyio


def _ok(text: str = "5", finish: str = "stop", usage: dict | None = None, **extra) -> dict:
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish}],
        "usage": usage if usage is not None else {"prompt_tokens": 12, "completion_tokens": 1,
                                                  "total_tokens": 13},
    }  # fmt: skip
    payload.update(extra)
    return payload


async def test_request_shape(api_key: str) -> None:
    adapter, transport = mocked("openai", reply(200, _ok()), headers={"X-Team": "evals"})
    request = ask("Q?", system="Be brief.", model="gpt-4o-mini", temperature=0, top_p=0.5,
                  max_tokens=16, stop=["\n"], seed=7, logprobs=True)  # fmt: skip
    await adapter.complete(request)
    call = sent(transport)
    assert call.method == "POST" and call.url == "https://api.openai.com/v1/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {api_key}"
    assert call.headers["X-Team"] == "evals"
    assert call.json() == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}],
        "temperature": 0,
        "top_p": 0.5,
        "max_completion_tokens": 16,  # OpenAI's current name; reasoning models refuse max_tokens
        "stop": ["\n"],
        "seed": 7,
        "logprobs": True,  # extras pass through
    }
    assert call.timeout_s == 60.0


async def test_completion_text_finish_usage_and_rate_limits(api_key: str) -> None:
    headers = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-reset-tokens": "1s"}
    usage = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
             "prompt_tokens_details": {"cached_tokens": 100},
             "completion_tokens_details": {"reasoning_tokens": 20}}  # fmt: skip
    adapter, _ = mocked("openai", reply(200, _ok("hello", "length", usage), headers))
    completion = await adapter.complete(ask())
    assert completion.text == "hello"
    assert (
        completion.finish_reason is FinishReason.LENGTH and completion.raw_finish_reason == "length"
    )
    assert completion.usage == Usage(120, 30, cache_read_tokens=100, reasoning_tokens=20)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.provider_cost_usd is None
    assert completion.rate_limits.remaining_requests == 99
    assert completion.rate_limits.reset_tokens_s == 1.0
    assert completion.latency_ms >= 0


@pytest.mark.parametrize(
    ("raw", "finish"),
    [("stop", FinishReason.STOP), ("length", FinishReason.LENGTH),
     ("content_filter", FinishReason.CONTENT_FILTER), ("tool_calls", FinishReason.TOOL_CALLS),
     ("something_new", FinishReason.OTHER)],
)  # fmt: skip
async def test_finish_reasons(raw: str, finish: FinishReason, api_key: str) -> None:
    adapter, _ = mocked("openai", reply(200, _ok(finish=raw)))
    assert (await adapter.complete(ask())).finish_reason is finish


async def test_refusal_is_an_outcome_with_empty_text(api_key: str) -> None:
    payload = _ok()
    payload["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "No."}
    adapter, _ = mocked("openai", reply(200, payload))
    completion = await adapter.complete(ask())
    assert completion.text == "" and completion.finish_reason is FinishReason.REFUSAL


async def test_missing_usage_is_estimated(api_key: str) -> None:
    payload = _ok("x" * 8)
    del payload["usage"]
    adapter, _ = mocked("openai", reply(200, payload))
    usage = (await adapter.complete(ask("y" * 20, system="z" * 4))).usage
    assert usage == Usage(5 + 1, 2, estimated=True)


@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [(429, {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"},
      RateLimitedError),
     (429, {"message": "You exceeded your current quota", "type": "insufficient_quota",
            "code": "insufficient_quota"}, QuotaExhaustedError),
     (401, {"message": "Incorrect API key provided", "type": "invalid_request_error",
            "code": "invalid_api_key"}, AuthError),
     (403, {"message": "Country not supported", "type": "invalid_request_error",
            "code": "unsupported_country_region_territory"}, AuthError),
     (400, {"message": "This model's maximum context length is 128000 tokens",
            "type": "invalid_request_error", "code": "context_length_exceeded"},
      ContextLengthError),
     (400, {"message": "Your request was rejected by our safety system",
            "type": "invalid_request_error", "code": "content_policy_violation"},
      ContentFilteredError),
     (400, {"message": "Unrecognized request argument", "type": "invalid_request_error",
            "code": None}, BadRequestError),
     (404, {"message": "The model does not exist", "type": "invalid_request_error",
            "code": "model_not_found"}, BadRequestError),
     (500, {"message": "The server had an error", "type": "server_error", "code": None},
      ServerError),
     (503, {"message": "The engine is currently overloaded", "type": "server_error",
            "code": None}, OverloadedError),
     (503, {"message": "Service unavailable", "type": "server_error", "code": None},
      ServerError)],
)  # fmt: skip
async def test_error_mapping(status: int, error: dict, cls: type, api_key: str) -> None:
    adapter, _ = mocked("openai", reply(status, {"error": {**error, "param": None}}))
    with pytest.raises(cls) as info:
        await adapter.complete(ask())
    assert type(info.value) is cls
    assert info.value.status == status and info.value.provider == "p"
    assert error["message"] in str(info.value)


async def test_rate_limit_delay_from_headers(api_key: str) -> None:
    error = {"error": {"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"}}
    adapter, _ = mocked("openai", reply(429, error, {"retry-after-ms": "1500", "retry-after": "2"}))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 1.5
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    adapter, _ = mocked("openai", reply(429, error, headers))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 360.0


async def test_wrong_key_echoed_by_provider_is_scrubbed(api_key: str) -> None:
    error = {"error": {"message": f"Incorrect API key provided: {api_key}. See docs.",
                       "type": "invalid_request_error", "code": "invalid_api_key"}}  # fmt: skip
    adapter, _ = mocked("openai", reply(401, error))
    with pytest.raises(AuthError) as info:
        await adapter.complete(ask())
    assert api_key not in str(info.value) and api_key not in repr(info.value)
    assert api_key not in info.value.message
    assert "Incorrect API key provided: ***" in str(info.value)


async def test_compatible_server_error_shapes(api_key: str) -> None:
    adapter, _ = mocked("openai", reply(404, {"error": "model 'x' not found"}))  # Ollama
    with pytest.raises(BadRequestError, match="model 'x' not found"):
        await adapter.complete(ask())
    adapter, _ = mocked("openai", reply(400, {"object": "error", "message": "bad temp",
                                              "type": "BadRequestError", "code": 400}))  # fmt: skip
    with pytest.raises(BadRequestError, match="bad temp"):
        await adapter.complete(ask())
    adapter, _ = mocked("openai", reply(422, {"detail": "field required"}))  # FastAPI
    with pytest.raises(BadRequestError, match="field required"):
        await adapter.complete(ask())


# --- over real HTTP, against the simulator ---------------------------------------------------

QUESTION = "What is 17 + 25? Answer with the number only."


async def test_http_answer_usage_and_cost(sim, api_key: str) -> None:
    from evalcluster.providers.pricing import cost_usd
    from evalcluster.simulator import count_tokens

    request = ask(QUESTION, system="You are a calculator.", model="gpt-4o-mini", max_tokens=16,
                  temperature=0)  # fmt: skip
    async with over_http(sim, "openai") as adapter:
        completion = await adapter.complete(request)
    assert completion.text == sim_answer(request) == "42"
    assert completion.finish_reason is FinishReason.STOP
    assert completion.usage == Usage(sim_input_tokens(request), count_tokens("42"))
    assert completion.model == "gpt-4o-mini"
    expected = (completion.usage.input_tokens * 0.15 + completion.usage.output_tokens * 0.60) / 1e6
    assert cost_usd(request.model, completion.usage) == pytest.approx(expected)


async def test_http_length_is_an_outcome(sim, api_key: str) -> None:
    request = ask("Tell me about the sea.", max_tokens=64)
    async with over_http(sim, "openai", force="length") as adapter:
        completion = await adapter.complete(request)
    assert completion.finish_reason is FinishReason.LENGTH
    assert completion.raw_finish_reason == "length"


async def test_http_blocked_is_a_content_filter_outcome(sim, api_key: str) -> None:
    async with over_http(sim, "openai", force="blocked") as adapter:
        completion = await adapter.complete(ask())
    assert completion.text == "" and completion.finish_reason is FinishReason.CONTENT_FILTER


async def test_http_retry_delay_and_should_retry(sim, api_key: str) -> None:
    headers = {"x-sim-retry-after": "2.5"}
    async with over_http(sim, "openai", force="429", headers=headers) as adapter:
        with pytest.raises(RateLimitedError) as info:
            await adapter.complete(ask())
    assert info.value.retry_after_s == 2.5 and info.value.retryable
    headers = {"x-sim-should-retry": "false"}
    async with over_http(sim, "openai", force="500", headers=headers) as adapter:
        with pytest.raises(ServerError) as info:
            await adapter.complete(ask())
    assert info.value.should_retry is False and not info.value.retryable
