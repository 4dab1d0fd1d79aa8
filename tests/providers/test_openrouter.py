"""OpenRouter's extensions over the OpenAI format (mock transport)."""

from __future__ import annotations

import pytest

from evalcluster.errors import (
    AuthError,
    ContentFilteredError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.pricing import cost_usd

from .conftest import ask, mocked, over_http, reply, sent, sim_answer, sim_input_tokens

pytestmark = pytest.mark.anyio


def _ok(cost: float | None = 0.00042) -> dict:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    if cost is not None:
        usage["cost"] = cost
    return {"id": "gen-1", "model": "openai/gpt-4o-mini", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "5"},
                         "finish_reason": "stop"}], "usage": usage}  # fmt: skip


async def test_request_has_attribution_routing_and_usage_accounting(api_key: str) -> None:
    adapter, transport = mocked(
        "openrouter", reply(200, _ok()), http_referer="https://evals.example",
        app_title="evalcluster", provider_routing={"order": ["openai"], "allow_fallbacks": False},
    )  # fmt: skip
    await adapter.complete(ask(model="openai/gpt-4o-mini", max_tokens=8))
    call = sent(transport)
    assert call.url == "https://openrouter.ai/api/v1/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {api_key}"
    assert call.headers["HTTP-Referer"] == "https://evals.example"
    assert call.headers["X-Title"] == "evalcluster"
    body = call.json()
    assert body["usage"] == {"include": True}
    assert body["provider"] == {"order": ["openai"], "allow_fallbacks": False}
    assert body["max_tokens"] == 8 and "max_completion_tokens" not in body


async def test_optional_headers_are_absent_when_not_configured(api_key: str) -> None:
    adapter, transport = mocked("openrouter", reply(200, _ok()))
    await adapter.complete(ask())
    call = sent(transport)
    assert "HTTP-Referer" not in call.headers and "X-Title" not in call.headers
    assert "provider" not in call.json()


async def test_reported_cost_wins_over_pricing(api_key: str) -> None:
    adapter, _ = mocked("openrouter", reply(200, _ok(cost=0.00042)))
    completion = await adapter.complete(ask(model="openai/gpt-4o-mini"))
    assert completion.provider_cost_usd == 0.00042
    assert completion.text == "5" and completion.usage.input_tokens == 10
    assert cost_usd("openai/gpt-4o-mini", completion.usage, None, completion.provider_cost_usd) == (
        0.00042
    )
    adapter, _ = mocked("openrouter", reply(200, _ok(cost=None)))
    assert (await adapter.complete(ask())).provider_cost_usd is None


async def test_402_means_credits_are_exhausted(api_key: str) -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits. Add more using ..."}}
    adapter, _ = mocked("openrouter", reply(402, body))
    with pytest.raises(QuotaExhaustedError, match="Insufficient credits") as info:
        await adapter.complete(ask())
    assert not info.value.retryable


async def test_flagged_input_is_a_content_filter(api_key: str) -> None:
    body = {"error": {"code": 403, "message": "Input was flagged",
                      "metadata": {"reasons": ["violence"], "flagged_input": "...",
                                   "provider_name": "x", "model_slug": "y"}}}  # fmt: skip
    adapter, _ = mocked("openrouter", reply(403, body))
    with pytest.raises(ContentFilteredError):
        await adapter.complete(ask())
    adapter, _ = mocked("openrouter", reply(403, {"error": {"code": 403, "message": "forbidden"}}))
    with pytest.raises(AuthError):
        await adapter.complete(ask())


async def test_error_inside_a_200_body_is_an_error_not_an_answer(api_key: str) -> None:
    body = {"error": {"code": 502, "message": "Provider returned error"}}
    adapter, _ = mocked("openrouter", reply(200, body))
    with pytest.raises(ServerError, match="Provider returned error") as info:
        await adapter.complete(ask())
    assert info.value.status == 502 and info.value.retryable
    body = {"error": {"code": 429, "message": "rate limited upstream"}}
    adapter, _ = mocked("openrouter", reply(200, body, {"retry-after": "3"}))
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 3.0


async def test_error_in_a_choice_is_an_error(api_key: str) -> None:
    payload = _ok()
    payload["choices"][0].update(
        finish_reason="error", error={"code": 502, "message": "upstream died mid-answer"}
    )
    adapter, _ = mocked("openrouter", reply(200, payload))
    with pytest.raises(ServerError, match="upstream died"):
        await adapter.complete(ask())


# --- over real HTTP, against the simulator ---------------------------------------------------


async def test_http_reported_cost_and_usage(sim, api_key: str) -> None:
    from evalcluster.simulator import count_tokens

    request = ask("What is 40 + 2? Answer with the number only.", model="openai/gpt-4o-mini")
    async with over_http(sim, "openrouter", app_title="evalcluster") as adapter:
        completion = await adapter.complete(request)
    assert completion.text == sim_answer(request) == "42"
    usage = completion.usage
    assert (usage.input_tokens, usage.output_tokens) == (
        sim_input_tokens(request),
        count_tokens("42"),
    )
    # The simulator prices OpenRouter-style usage.cost at $1/Mtok in and $2/Mtok out.
    reported = (usage.input_tokens * 1.0 + usage.output_tokens * 2.0) / 1e6
    assert completion.provider_cost_usd == pytest.approx(reported)
    assert cost_usd(request.model, usage, None, completion.provider_cost_usd) == pytest.approx(
        reported
    )


@pytest.mark.parametrize(
    ("force", "cls", "status"),
    [("credits", QuotaExhaustedError, 402), ("error_in_200", ServerError, 502),
     ("429", RateLimitedError, 429), ("auth", AuthError, 401)],
)  # fmt: skip
async def test_http_openrouter_errors(sim, force: str, cls: type, status: int, api_key) -> None:
    async with over_http(sim, "openrouter", force=force) as adapter:
        with pytest.raises(cls) as info:
            await adapter.complete(ask())
    assert type(info.value) is cls and info.value.status == status
