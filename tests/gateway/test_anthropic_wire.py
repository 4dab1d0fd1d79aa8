"""Anthropic Messages bodies to the gateway's chat requests and back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evalcluster.gateway.anthropic_wire import (
    message_body,
    message_events,
    parse_messages_request,
)
from evalcluster.gateway.errors import GatewayError, error_shape
from evalcluster.gateway.wire import to_completion_request
from evalcluster.providers.base import Completion, FinishReason, ToolCall, Usage

TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_a_tool_conversation_becomes_the_provider_neutral_request() -> None:
    chat = parse_messages_request(
        {
            "model": "claude/sim",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "Be brief."}],
            "stop_sequences": ["END"],
            "temperature": 0,
            "tools": [TOOL],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "metadata": {"user_id": "ignored"},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": "21 C"}]},
                    {"type": "text", "text": "And tomorrow?"}]},
            ],
        }
    )  # fmt: skip
    assert chat.deterministic
    request = to_completion_request(chat, "sim-1")
    assert request.system == "Be brief."
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assistant = request.messages[2]
    assert assistant.content == "Let me look."
    assert assistant.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),)
    assert request.messages[3].tool_call_id == "toolu_1"
    assert request.messages[3].content == "21 C"
    assert request.messages[4].content == "And tomorrow?"
    assert request.params == {"temperature": 0, "max_tokens": 50, "stop": ["END"]}
    assert request.tools[0].name == "get_weather"
    assert request.tools[0].parameters == TOOL["input_schema"]
    assert request.tool_choice == {"name": "get_weather"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_in_openais_words(choice: dict[str, Any], expected: str) -> None:
    chat = parse_messages_request(
        {"model": "m", "max_tokens": 5, "tools": [TOOL], "tool_choice": choice,
         "messages": [{"role": "user", "content": "x"}]}
    )  # fmt: skip
    assert to_completion_request(chat, "m").tool_choice == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
         "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "temperature": 1.5,
          "messages": [{"role": "user", "content": "x"}]}, "temperature"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "data": "AAAA"}}]}]},
         "messages.0.content.0"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
          "tools": [TOOL], "tool_choice": {"type": "tool"}}, "tool_choice"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as err:
        parse_messages_request(body)
    assert err.value.status == 400
    assert err.value.param == param
    assert err.value.anthropic_body()["error"]["type"] == "invalid_request_error"


TOOL_ANSWER = Completion(
    text="",
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(30, 7, cache_read_tokens=10),
    latency_ms=1.0,
    tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),),
)


def test_a_tool_call_answer_is_a_tool_use_message() -> None:
    body = message_body(TOOL_ANSWER, "claude/sim", "msg_1")
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude/sim" and body["stop_reason"] == "tool_use"
    assert body["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert body["usage"] == {"input_tokens": 20, "output_tokens": 7,
                             "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 10}  # fmt: skip


def test_stop_reasons() -> None:
    def reason(finish: FinishReason, raw: str | None = None) -> str:
        answer = Completion("x", finish, Usage(1, 1), 1.0, raw_finish_reason=raw)
        return message_body(answer, "m", "msg")["stop_reason"]

    assert reason(FinishReason.STOP) == "end_turn"
    assert reason(FinishReason.STOP, "stop_sequence") == "stop_sequence"
    assert reason(FinishReason.LENGTH) == "max_tokens"
    assert reason(FinishReason.CONTENT_FILTER) == "refusal"


def test_streamed_events_rebuild_the_message() -> None:
    answer = Completion("Let me check.", FinishReason.TOOL_CALLS, Usage(9, 4), 1.0,
                        tool_calls=TOOL_ANSWER.tool_calls)  # fmt: skip
    events = message_events(answer, "claude/sim", "msg_2")
    names = [name for name, _ in events]
    assert names == ["message_start"] + ["content_block_start", "content_block_delta",
                                         "content_block_stop"] * 2 + ["message_delta",
                                                                      "message_stop"]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["content"] == []
    assert events[0][1]["message"]["usage"]["input_tokens"] == 9
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "Let me check."}
    assert events[4][1]["content_block"]["type"] == "tool_use"
    assert json.loads(events[5][1]["delta"]["partial_json"]) == {"city": "Oslo"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"output_tokens": 4}


def test_error_shapes_by_status_and_path() -> None:
    down = GatewayError(503, "down", type="server_error", retry_after_s=2.2)
    assert down.anthropic_body() == {"type": "error",
                                     "error": {"type": "api_error", "message": "down"}}  # fmt: skip
    assert down.response("anthropic").headers["retry-after"] == "3"
    overloaded = GatewayError(503, "busy", error_kind="overloaded")
    assert overloaded.anthropic_body()["error"]["type"] == "overloaded_error"
    for status, kind in [(401, "authentication_error"), (404, "not_found_error"),
                         (429, "rate_limit_error"), (413, "request_too_large")]:  # fmt: skip
        assert GatewayError(status, "m").anthropic_body()["error"]["type"] == kind
    assert error_shape("/v1/messages") == "anthropic"
    assert error_shape("/gw/v1/chat/completions", "/gw") == "openai"
    assert error_shape("/v1/runs") is None


def test_a_messages_body_that_is_not_an_object_is_400_with_no_field() -> None:
    with pytest.raises(GatewayError) as err:
        parse_messages_request(["not", "an", "object"])
    assert (err.value.status, err.value.param) == (400, None)
    assert err.value.message == "the request body must be a JSON object"


def test_the_anthropic_400_names_the_dotted_field_then_pydantics_reason() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}
    with pytest.raises(GatewayError) as err:
        parse_messages_request(body)
    assert err.value.message.startswith("messages.0.role: ")
    assert "'user' or 'assistant'" in err.value.message
