"""OpenAI Chat Completions, the wire format that OpenRouter and local servers share.

Reference: platform.openai.com/docs/api-reference/chat/create. `POST {base_url}/chat/completions`
with `Authorization: Bearer <key>`; base_url defaults to https://api.openai.com/v1, as in the
official SDK. The system prompt is a message with role "system".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from evalcluster.errors import (
    AuthError,
    ContentFilteredError,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    QuotaExhaustedError,
    RateLimitedError,
)
from evalcluster.providers.adapter import HttpAdapter, HttpCall, estimated_usage
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Tool,
    ToolCall,
    Usage,
    function_declaration,
)
from evalcluster.providers.error_mapping import ErrorBody, class_for_status
from evalcluster.providers.transport import HttpResponse

__all__ = ["OpenAIAdapter", "openai_error_class", "read_openai_error", "read_tool_calls"]

FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}


class OpenAIAdapter(HttpAdapter):
    """api.openai.com, or anything that speaks its Chat Completions format."""

    kind = "openai"
    default_base_url = "https://api.openai.com/v1"
    default_key_env = "OPENAI_API_KEY"
    # OpenAI deprecated `max_tokens` for `max_completion_tokens`, and reasoning models (o1,
    # o3, o4-mini, gpt-5) reject `max_tokens`. Compatible servers mostly know only the old name.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    def headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_wire_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [_wire_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _wire_tool_choice(request.tool_choice)
        for key, value in request.params.items():
            if value is None:
                continue
            if key == "max_tokens" and "max_completion_tokens" not in request.params:
                body[self.max_tokens_field] = value
            else:
                body[key] = value  # temperature, top_p, stop, seed and any extra pass through
        return body

    def build_call(self, request: CompletionRequest) -> HttpCall:
        return HttpCall(f"{self.base_url}/chat/completions", self.headers(), self.body(request))

    def parse_completion(
        self, request: CompletionRequest, payload: Any, response: HttpResponse, latency_ms: float
    ) -> Completion:
        choices = payload["choices"]
        if not choices:
            raise self.protocol_error("no choices in the response", response)
        choice = choices[0]
        if choice.get("error"):  # OpenRouter: an upstream failed mid-answer (finish "error")
            raise self.embedded_error(choice["error"], response, {"error": choice["error"]})
        message = choice.get("message") or {}
        text = _message_text(message.get("content"))
        raw = choice.get("finish_reason")
        finish = FINISH_REASONS.get(raw, FinishReason.OTHER) if raw else FinishReason.STOP
        if message.get("refusal") and not text:
            finish = FinishReason.REFUSAL
        usage = read_openai_usage(payload.get("usage")) or estimated_usage(request, text)
        return Completion(
            text=text,
            finish_reason=finish,
            usage=usage,
            latency_ms=latency_ms,
            model=payload.get("model"),
            raw_finish_reason=raw,
            provider_cost_usd=self.reported_cost(payload.get("usage")),
            rate_limits=self.rate_limits(response),
            tool_calls=read_tool_calls(message.get("tool_calls")),
        )

    def reported_cost(self, usage: Any) -> float | None:
        """The provider's own cost figure; OpenAI reports none."""
        return None

    def read_error(self, payload: Any) -> ErrorBody | None:
        return read_openai_error(payload)

    def error_class(self, status: int, error: ErrorBody) -> type[ProviderError]:
        return openai_error_class(status, error)


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_tool(tool: Tool) -> dict[str, Any]:
    return {"type": "function", "function": function_declaration(tool)}


def _wire_tool_choice(choice: str | Mapping[str, Any]) -> Any:
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice["name"]}}


def read_tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    """`message.tool_calls` of a Chat Completions answer (function calls only)."""
    if not isinstance(calls, list):
        return ()
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        out.append(ToolCall(str(call.get("id") or f"call_{i}"), function["name"], arguments))
    return tuple(out)


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Some compatible servers answer with content parts, as requests may send them.
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def read_openai_usage(usage: Any) -> Usage | None:
    """`usage{prompt_tokens, completion_tokens, *_details}` as a `Usage` (None if absent)."""
    if not isinstance(usage, dict) or usage.get("prompt_tokens") is None:
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage["prompt_tokens"]),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def read_openai_error(payload: Any) -> ErrorBody | None:
    """OpenAI's `{"error": {message, type, param, code}}`, and the shapes compatible servers
    use instead: Ollama's `{"error": "text"}`, vLLM's top-level `{message, type, code}`,
    FastAPI's `{"detail": ...}`."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, str):
        return ErrorBody(error)
    if isinstance(error, dict):
        payload = error
    elif "message" not in payload:
        detail = payload.get("detail")
        return ErrorBody(str(detail)) if detail else None
    code = payload.get("code")
    return ErrorBody(
        message=str(payload.get("message") or ""),
        type=payload.get("type") if isinstance(payload.get("type"), str) else None,
        code=None if code is None else str(code),
    )


def openai_error_class(status: int, error: ErrorBody) -> type[ProviderError]:
    """Error codes from platform.openai.com/docs/guides/error-codes."""
    code = (error.code or "").lower()
    kind = (error.type or "").lower()
    message = error.message.lower()
    if "insufficient_quota" in (code, kind) or "exceeded your current quota" in message:
        return QuotaExhaustedError
    if status == 429:
        return RateLimitedError
    if status in (401, 403):
        return AuthError
    if code == "context_length_exceeded" or "maximum context length" in message:
        return ContextLengthError
    if code in ("content_policy_violation", "content_filter") or kind == "content_filter":
        return ContentFilteredError
    # "503 - The engine is currently overloaded" / "503 - Slow Down" (the error-codes guide).
    if status >= 500 and ("overload" in message or "slow down" in message):
        return OverloadedError
    return class_for_status(status)
