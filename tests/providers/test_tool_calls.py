"""Tool calls and multi-turn tool conversations in each wire format (mock transport):
what is sent, and the calls read back from each format's answer."""

from __future__ import annotations

from typing import Any

import pytest

from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Tool,
    ToolCall,
)

from .conftest import mocked, reply, sent

pytestmark = pytest.mark.anyio

TOOL = Tool("get_weather", "The weather.", {"type": "object", "properties": {"city": {}}})
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
CONVERSATION = CompletionRequest(
    model="m",
    messages=(
        Message("system", "Be brief."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (CALL,)),
        Message("tool", '{"celsius": 21}', tool_call_id="call_1"),
    ),
    tools=(TOOL,),
    tool_choice="required",
)


async def converse(kind: str, answer: dict[str, Any]) -> tuple[Completion, dict[str, Any]]:
    """CONVERSATION through `kind`'s adapter, answered `answer`: the completion read back and
    the JSON body that was sent."""
    adapter, transport = mocked(kind, reply(200, answer))
    completion = await adapter.complete(CONVERSATION)
    return completion, sent(transport).json()


async def test_openai_sends_tools_calls_and_results_and_reads_calls(api_key: str) -> None:
    answer = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_9", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }  # fmt: skip
    completion, body = await converse("openai", answer)
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }  # fmt: skip
    assert body["messages"][3] == {
        "role": "tool",
        "content": '{"celsius": 21}',
        "tool_call_id": "call_1",
    }
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "The weather.",
                                          "parameters": dict(TOOL.parameters)}}
    ]  # fmt: skip
    assert body["tool_choice"] == "required"
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.tool_calls == (ToolCall("call_9", "get_weather", '{"city": "Oslo"}'),)


async def test_anthropic_uses_tool_use_and_tool_result_blocks(api_key: str) -> None:
    answer = {
        "model": "claude",
        "stop_reason": "tool_use",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    completion, body = await converse("anthropic", answer)
    assert body["system"] == "Be brief."
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": '{"celsius": 21}'}],
    }
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": dict(TOOL.parameters),
            "description": "The weather.",
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert completion.text == "Checking."
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}'),)


async def test_gemini_uses_function_call_and_function_response_parts(api_key: str) -> None:
    answer = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    }  # fmt: skip
    completion, body = await converse("gemini", answer)
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather",
                                        "response": {"content": '{"celsius": 21}'}}}],
    }  # fmt: skip
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "get_weather", "description": "The weather.",
                                   "parameters": dict(TOOL.parameters)}]}
    ]  # fmt: skip
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.tool_calls == (ToolCall("call_0", "get_weather", '{"city": "Oslo"}'),)


async def test_plain_requests_are_sent_as_before(api_key: str) -> None:
    request = CompletionRequest("m", (Message("user", "hi"),))
    for kind in ("openai", "anthropic", "gemini"):
        adapter, transport = mocked(kind, reply(500, {"error": {"message": "x"}}))
        with pytest.raises(Exception):  # noqa: B017, PT011 - only the request matters here
            await adapter.complete(request)
        body = sent(transport).json()
        assert "tools" not in body and "tool_choice" not in body and "toolConfig" not in body
