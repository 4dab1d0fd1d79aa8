"""OpenAI Chat Completions bodies to and from the provider-neutral types of `providers.base`.

Reference: platform.openai.com/docs/api-reference/chat (the request, the `chat.completion`
object and the streamed `chat.completion.chunk`). Accepted: text content (a string or text
parts), system/developer/user/assistant/tool turns, function tools and `tool_choice`, the
generation parameters every adapter knows (temperature, top_p, max_tokens /
max_completion_tokens, stop, seed). `n` above 1 and non-text content parts are refused (400,
naming the field); other OpenAI fields are ignored, as the gateway cannot honour them on every
provider.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalcluster.gateway.errors import GatewayError
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Tool,
    ToolCall,
)

_GENERATION = ("temperature", "top_p", "seed")
_Body = TypeVar("_Body", bound=BaseModel)


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Open):
    type: str
    text: str | None = None


class FunctionCall(_Open):
    name: str = Field(min_length=1)
    arguments: str = "{}"


class ToolCallIn(_Open):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionSpec(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(_Open):
    type: Literal["function"]
    function: FunctionSpec


class NamedChoice(_Open):
    type: Literal["function"] = "function"
    function: FunctionCall | dict[str, Any]


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    """The fields of a chat completion request the gateway reads."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedChoice | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def deterministic(self) -> bool:
        """Whether the same request should get the same answer (what the cache may keep)."""
        return self.temperature == 0 and (self.n or 1) == 1


def validate_body(
    schema: type[_Body], body: Any, param: Callable[[tuple[Any, ...]], str], message: str
) -> _Body:
    """`body` validated as `schema`, or a 400 naming the first field at fault: `param` spells
    pydantic's location in the wire format's style, `message` (with `{param}` and `{msg}`)
    words the error."""
    if not isinstance(body, dict):
        raise GatewayError(400, "the request body must be a JSON object", param=None)
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = param(first.get("loc", ()))
        text = message.format(param=where, msg=first.get("msg", "invalid value"))
        raise GatewayError(400, text, param=where) from None


def parse_chat_request(body: Any) -> ChatRequest:
    """The request in `body`, or a 400 naming the first field at fault."""
    request = validate_body(ChatRequest, body, _param, "invalid '{param}': {msg}")
    if (request.n or 1) > 1:
        raise GatewayError(400, "n > 1 is not supported by this gateway", param="n")
    return request


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[ContentPart]", "NamedChoice", "FunctionCall") or (
            isinstance(part, str) and part.startswith(("literal[", "dict["))
        ):
            continue  # pydantic names the union member it tried: not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def to_completion_request(chat: ChatRequest, model: str) -> CompletionRequest:
    """The provider-neutral request for `chat`, sent to the route's `model`."""
    messages = tuple(_message(m, i) for i, m in enumerate(chat.messages))
    params: dict[str, Any] = {}
    for name in _GENERATION:
        value = getattr(chat, name)
        if value is not None:
            params[name] = value
    max_tokens = chat.max_completion_tokens or chat.max_tokens
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if chat.stop:
        params["stop"] = [chat.stop] if isinstance(chat.stop, str) else list(chat.stop)
    tools = tuple(
        Tool(t.function.name, t.function.description, t.function.parameters)
        for t in chat.tools or ()
    )
    return CompletionRequest(
        model=model,
        messages=messages,
        params=params,
        tools=tools,
        tool_choice=_tool_choice(chat.tool_choice) if tools else None,
    )


def _message(message: ChatMessage, index: int) -> Message:
    text = _text(message.content, f"messages[{index}].content")
    role = "system" if message.role == "developer" else message.role
    if role == "tool" and not message.tool_call_id:
        raise GatewayError(
            400, "a tool message needs tool_call_id", param=f"messages[{index}].tool_call_id"
        )
    calls = tuple(
        ToolCall(c.id, c.function.name, c.function.arguments)
        for c in (message.tool_calls or ())
        if role == "assistant"
    )
    return Message(role, text, calls, message.tool_call_id, message.name)


def _text(content: str | list[ContentPart] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise GatewayError(
                400, f"only text content parts are supported, not {part.type!r}", param=where
            )
        texts.append(part.text)
    return "\n".join(texts)


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    function = choice.function
    name = function.name if isinstance(function, FunctionCall) else function.get("name")
    if not name:
        raise GatewayError(400, "tool_choice needs function.name", param="tool_choice")
    return {"name": name}


# --- answers -----------------------------------------------------------------------------

_FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.REFUSAL: "content_filter",
    FinishReason.BLOCKED: "content_filter",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.OTHER: "stop",
}


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def finish_reason(completion: Completion) -> str:
    if completion.tool_calls:
        return "tool_calls"
    return _FINISH.get(completion.finish_reason, "stop")


def usage_body(completion: Completion) -> dict[str, int]:
    usage = completion.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _tool_calls(completion: Completion) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in completion.tool_calls
    ]


def completion_body(completion: Completion, route: str, completion_id: str) -> dict[str, Any]:
    """A `chat.completion` object; `model` is the route the client named."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if completion.text or not completion.tool_calls else None,
        "refusal": None,
    }
    if completion.tool_calls:
        message["tool_calls"] = _tool_calls(completion)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": route,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(completion),
            }
        ],
        "usage": usage_body(completion),
        "system_fingerprint": None,
    }


def completion_chunks(
    completion: Completion, route: str, completion_id: str, include_usage: bool
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed answer: the role, the content, each
    tool call, the finish reason, then (with `stream_options.include_usage`) the usage in a
    chunk without choices."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": route,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    chunks = [chunk({"role": "assistant", "content": ""})]
    if completion.text:
        chunks.append(chunk({"content": completion.text}))
    for i, call in enumerate(_tool_calls(completion)):
        chunks.append(chunk({"tool_calls": [{"index": i, **call}]}))
    chunks.append(chunk({}, finish_reason(completion)))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = usage_body(completion)
        chunks.append(last)
    return chunks
