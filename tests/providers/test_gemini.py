"""Gemini generateContent: request shape, parsing and error mapping (mock transport)."""

from __future__ import annotations

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.base import FinishReason, Message, Usage

from .conftest import ask, mocked, over_http, reply, sent, sim_answer, sim_input_tokens

pytestmark = pytest.mark.anyio


def _ok(parts: list | None = None, finish: str = "STOP", usage: dict | None = None) -> dict:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts or [{"text": "5"}]},
                        "finishReason": finish, "index": 0}],
        "usageMetadata": usage or {"promptTokenCount": 9, "candidatesTokenCount": 1,
                                   "totalTokenCount": 10},
        "modelVersion": "gemini-2.5-flash",
    }  # fmt: skip


async def test_request_shape(api_key: str) -> None:
    adapter, transport = mocked("gemini", reply(200, _ok()))
    request = ask("Q?", system="Be brief.", model="models/gemini-2.5-flash", temperature=0,
                  top_p=0.5, max_tokens=32, stop=["\n"], seed=1, topK=3,
                  safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT",
                                   "threshold": "BLOCK_NONE"}])  # fmt: skip
    request = type(request)(request.model, (*request.messages, Message("assistant", "A"),
                                            Message("user", "more")), request.params)  # fmt: skip
    await adapter.complete(request)
    call = sent(transport)
    assert call.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert call.headers["x-goog-api-key"] == api_key
    assert "key=" not in call.url  # the key never travels in a URL that might be logged
    assert call.json() == {
        "contents": [
            {"role": "user", "parts": [{"text": "Q?"}]},
            {"role": "model", "parts": [{"text": "A"}]},
            {"role": "user", "parts": [{"text": "more"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0, "topP": 0.5, "maxOutputTokens": 32,
                             "stopSequences": ["\n"], "seed": 1, "topK": 3},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }  # fmt: skip


async def test_text_skips_thoughts_and_thinking_tokens_count_as_output(api_key: str) -> None:
    parts = [{"text": "thinking...", "thought": True}, {"text": "The answer"}, {"text": " is 5"}]
    usage = {"promptTokenCount": 20, "candidatesTokenCount": 4, "thoughtsTokenCount": 50,
             "cachedContentTokenCount": 8, "totalTokenCount": 74}  # fmt: skip
    adapter, _ = mocked("gemini", reply(200, _ok(parts, usage=usage)))
    completion = await adapter.complete(ask())
    assert completion.text == "The answer is 5"
    assert completion.usage == Usage(20, 54, cache_read_tokens=8, reasoning_tokens=50)
    assert completion.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("raw", "finish"),
    [("STOP", FinishReason.STOP), ("MAX_TOKENS", FinishReason.LENGTH),
     ("SAFETY", FinishReason.CONTENT_FILTER), ("RECITATION", FinishReason.CONTENT_FILTER),
     ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER), ("OTHER", FinishReason.OTHER)],
)  # fmt: skip
async def test_finish_reasons(raw: str, finish: FinishReason, api_key: str) -> None:
    adapter, _ = mocked("gemini", reply(200, _ok(finish=raw)))
    assert (await adapter.complete(ask())).finish_reason is finish


async def test_safety_stop_without_content_is_an_empty_answer(api_key: str) -> None:
    payload = {"candidates": [{"finishReason": "SAFETY", "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}  # fmt: skip
    adapter, _ = mocked("gemini", reply(200, payload))
    completion = await adapter.complete(ask())
    assert completion.text == "" and completion.finish_reason is FinishReason.CONTENT_FILTER
    assert completion.usage == Usage(5, 0)


async def test_blocked_prompt_is_a_completion_not_an_exception(api_key: str) -> None:
    payload = {"promptFeedback": {"blockReason": "SAFETY"},
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}  # fmt: skip
    adapter, _ = mocked("gemini", reply(200, payload))
    completion = await adapter.complete(ask())
    assert completion.text == "" and completion.finish_reason is FinishReason.BLOCKED
    assert completion.raw_finish_reason == "SAFETY" and completion.usage.input_tokens == 7


def _error(code: int, status: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "status": status,
                      "details": details or []}}  # fmt: skip


_RPC = "type.googleapis.com/google.rpc."
_KEY_INVALID = [{"@type": _RPC + "ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com"}]  # fmt: skip
_PER_MINUTE = [
    {"@type": _RPC + "QuotaFailure", "violations": [
        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
         "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
    {"@type": _RPC + "RetryInfo", "retryDelay": "17s"},
]  # fmt: skip
_PER_DAY = [
    {"@type": _RPC + "QuotaFailure", "violations": [
        {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
    {"@type": _RPC + "RetryInfo", "retryDelay": "3600s"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "status", "message", "details", "cls"),
    [(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", _KEY_INVALID,
      AuthError),
     (400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of "
      "tokens allowed (1048576).", None, ContextLengthError),
     (400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.temperature'", None,
      BadRequestError),
     (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers", None, AuthError),
     (404, "NOT_FOUND", "models/gemini-9 is not found", None, BadRequestError),
     (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", _PER_MINUTE,
      RateLimitedError),
     (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", _PER_DAY,
      QuotaExhaustedError),
     (500, "INTERNAL", "An internal error has occurred", None, ServerError),
     (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", None,
      OverloadedError)],
)  # fmt: skip
async def test_error_mapping(code: int, status: str, message: str, details, cls, api_key) -> None:
    adapter, _ = mocked("gemini", reply(code, _error(code, status, message, details)))
    with pytest.raises(cls) as info:
        await adapter.complete(ask())
    assert type(info.value) is cls and info.value.status == code
    assert message in str(info.value)


async def test_retry_delay_from_retry_info(api_key: str) -> None:
    error = _error(429, "RESOURCE_EXHAUSTED", "quota", _PER_MINUTE)
    adapter, _ = mocked("gemini", reply(429, error, {"retry-after": "99"}))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 17.0
    adapter, _ = mocked("gemini", reply(429, _error(429, "RESOURCE_EXHAUSTED", "q")))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s is None


async def test_error_wrapped_in_a_list_is_read(api_key: str) -> None:
    adapter, _ = mocked("gemini", reply(503, [_error(503, "UNAVAILABLE", "try later")]))
    with pytest.raises(OverloadedError, match="try later"):
        await adapter.complete(ask())


# --- over real HTTP, against the simulator ---------------------------------------------------


async def test_http_answer_usage_and_cost(sim, api_key: str) -> None:
    from evalcluster.providers.pricing import cost_usd
    from evalcluster.simulator import count_tokens

    request = ask("What is 50 - 8? Answer with the number only.", system="You are a calculator.",
                  model="gemini-2.5-flash", temperature=0, max_tokens=16)  # fmt: skip
    async with over_http(sim, "gemini") as adapter:
        completion = await adapter.complete(request)
    assert completion.text == sim_answer(request) == "42"
    assert completion.finish_reason is FinishReason.STOP
    assert completion.usage == Usage(sim_input_tokens(request), count_tokens("42"))
    expected = (completion.usage.input_tokens * 0.30 + completion.usage.output_tokens * 2.50) / 1e6
    assert cost_usd(request.model, completion.usage) == pytest.approx(expected)


async def test_http_thinking_tokens_count_as_output(sim, api_key: str) -> None:
    from evalcluster.simulator import count_tokens

    request = ask("What is 50 - 8?", model="gemini-2.5-pro")
    headers = {"x-sim-thinking-tokens": "40"}
    async with over_http(sim, "gemini", headers=headers) as adapter:
        completion = await adapter.complete(request)
    answer_tokens = count_tokens(completion.text)
    assert completion.usage.output_tokens == answer_tokens + 40
    assert completion.usage.reasoning_tokens == 40


@pytest.mark.parametrize(
    ("force", "finish"),
    [("length", FinishReason.LENGTH), ("content_filter", FinishReason.CONTENT_FILTER),
     ("blocked", FinishReason.BLOCKED)],
)  # fmt: skip
async def test_http_odd_answers_are_outcomes(sim, force: str, finish, api_key: str) -> None:
    async with over_http(sim, "gemini", force=force) as adapter:
        completion = await adapter.complete(ask("Tell me about the sea.", max_tokens=64))
    assert completion.finish_reason is finish
    if finish is not FinishReason.LENGTH:
        assert completion.text == ""


async def test_http_retry_delay_from_retry_info(sim, api_key: str) -> None:
    headers = {"x-sim-retry-after": "17"}
    async with over_http(sim, "gemini", force="429", headers=headers) as adapter:
        with pytest.raises(RateLimitedError) as info:
            await adapter.complete(ask())
    assert info.value.retry_after_s == 17.0
