"""Google Gemini API (generateContent).

Reference: ai.google.dev/api/generate-content and ai.google.dev/gemini-api/docs/troubleshooting.
`POST {base_url}/v1beta/models/{model}:generateContent` (base_url defaults to
https://generativelanguage.googleapis.com) with the key in `x-goog-api-key`. The system prompt
is `systemInstruction`; generation parameters go in `generationConfig`. The answer joins the
text of every part except thought summaries (`thought: true`); thinking tokens
(`thoughtsTokenCount`) are billed, and counted here, as output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from evalcluster.errors import (
    AuthError,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.adapter import HttpAdapter, HttpCall, estimated_usage
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    ToolCall,
    Usage,
    function_declaration,
    tool_arguments,
)
from evalcluster.providers.error_mapping import ErrorBody, class_for_status
from evalcluster.providers.ratelimit_headers import parse_duration, retry_delay
from evalcluster.providers.transport import HttpResponse

__all__ = ["GeminiAdapter"]

_FILTERED = FinishReason.CONTENT_FILTER
FINISH_REASONS = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": _FILTERED,
    "RECITATION": _FILTERED,
    "BLOCKLIST": _FILTERED,
    "PROHIBITED_CONTENT": _FILTERED,
    "SPII": _FILTERED,
    "IMAGE_SAFETY": _FILTERED,
    "MALFORMED_FUNCTION_CALL": FinishReason.TOOL_CALLS,
}

# Our generic names -> generationConfig's (ai.google.dev/api/generate-content#generationconfig).
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "max_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "seed": "seed",
}
# Extras that belong at the top of the request, not in generationConfig.
_TOP_LEVEL = {"safetySettings", "safety_settings", "tools", "toolConfig", "tool_config",
              "cachedContent", "cached_content", "labels"}  # fmt: skip

_STATUS_CLASSES: dict[str, type[ProviderError]] = {
    "UNAUTHENTICATED": AuthError,
    "PERMISSION_DENIED": AuthError,
    "RESOURCE_EXHAUSTED": RateLimitedError,
    "INTERNAL": ServerError,
    "UNAVAILABLE": OverloadedError,  # "The model is overloaded" / "temporarily unavailable"
    "DEADLINE_EXCEEDED": ProviderTimeoutError,
}
_TYPE_PREFIX = "type.googleapis.com/google.rpc."


class GeminiAdapter(HttpAdapter):
    """generativelanguage.googleapis.com's generateContent."""

    kind = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    default_key_env = "GEMINI_API_KEY"

    def build_call(self, request: CompletionRequest) -> HttpCall:
        model = request.model.removeprefix("models/")
        url = f"{self.base_url}/v1beta/models/{quote(model, safe='-._~')}:generateContent"
        headers = dict(self.config.headers)
        headers["x-goog-api-key"] = self.api_key or ""
        return HttpCall(url, headers, self.body(request))

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": _contents(request.chat)}
        if request.system is not None:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = [
                {"functionDeclarations": [function_declaration(t) for t in request.tools]}
            ]
        if request.tool_choice is not None:
            body["toolConfig"] = _tool_config(request.tool_choice)
        generation: dict[str, Any] = {}
        for key, value in request.params.items():
            if value is None:
                continue
            if key in _TOP_LEVEL:
                body[key] = value
            else:
                generation[_GENERATION_CONFIG.get(key, key)] = value
        if generation:
            body["generationConfig"] = generation
        return body

    def parse_completion(
        self, request: CompletionRequest, payload: Any, response: HttpResponse, latency_ms: float
    ) -> Completion:
        usage = _usage(payload.get("usageMetadata"))
        candidates = payload.get("candidates") or []
        if not candidates:
            block = (payload.get("promptFeedback") or {}).get("blockReason")
            if not block:
                raise self.protocol_error("no candidates and no blockReason", response)
            return Completion(
                text="",
                finish_reason=FinishReason.BLOCKED,
                usage=usage or estimated_usage(request, ""),
                latency_ms=latency_ms,
                model=payload.get("modelVersion"),
                raw_finish_reason=block,
                rate_limits=self.rate_limits(response),
            )
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        raw = candidate.get("finishReason")
        calls = _tool_calls(parts)
        finish = FINISH_REASONS.get(raw, FinishReason.OTHER)
        return Completion(
            text=text,
            finish_reason=FinishReason.TOOL_CALLS if calls and raw == "STOP" else finish,
            tool_calls=calls,
            usage=usage or estimated_usage(request, text),
            latency_ms=latency_ms,
            model=payload.get("modelVersion"),
            raw_finish_reason=raw,
            rate_limits=self.rate_limits(response),
        )

    def read_error(self, payload: Any) -> ErrorBody | None:
        if isinstance(payload, list) and len(payload) == 1:  # some endpoints wrap it in a list
            payload = payload[0]
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return None
        reason, quota_ids = None, []
        for detail in _details(error):
            kind = str(detail.get("@type", "")).removeprefix(_TYPE_PREFIX)
            if kind == "ErrorInfo":
                reason = detail.get("reason")
            elif kind == "QuotaFailure":
                quota_ids += [str(v.get("quotaId", "")) for v in detail.get("violations") or []]
        status = error.get("status")
        return ErrorBody(
            str(error.get("message") or ""),
            type=status if isinstance(status, str) else None,
            code=reason if isinstance(reason, str) else None,
            details=tuple(quota_ids),
        )

    def error_class(self, status: int, error: ErrorBody) -> type[ProviderError]:
        message = error.message.lower()
        if error.code == "API_KEY_INVALID" or "api key not valid" in message:
            return AuthError
        if any("perday" in q.lower() for q in error.details):
            return QuotaExhaustedError  # a per-day quota resets tomorrow, not in seconds
        if status == 400 and "token" in message and "exceeds the maximum" in message:
            return ContextLengthError
        return _STATUS_CLASSES.get(error.type or "") or class_for_status(status)

    def retry_after(self, response: HttpResponse, payload: Any) -> float | None:
        """`google.rpc.RetryInfo.retryDelay` ("17s") in the body, else the headers."""
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        error = payload.get("error") if isinstance(payload, dict) else None
        for detail in _details(error):
            if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                delay = detail.get("retryDelay")
                seconds = parse_duration(delay) if isinstance(delay, str) else None
                if seconds is not None:
                    return seconds
        return retry_delay(response.headers)


def _contents(chat: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Chat turns as `contents`: tool calls become `functionCall` parts, tool results
    `functionResponse` parts of a user turn, named after the call they answer (Gemini matches
    results by function name, not id)."""
    names = {c.id: c.name for m in chat for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in chat:
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "")
            part = {"functionResponse": {"name": name, "response": {"content": m.content}}}
            last = out[-1] if out else None
            if last and last["role"] == "user" and "functionResponse" in last["parts"][0]:
                last["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        parts: list[dict[str, Any]] = [{"text": m.content}] if m.content or not m.tool_calls else []
        for call in m.tool_calls:
            parts.append(
                {"functionCall": {"name": call.name, "args": tool_arguments(call.arguments)}}
            )
        out.append({"role": "model" if m.role == "assistant" else "user", "parts": parts})
    return out


def _tool_config(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's tool_choice as `functionCallingConfig` (AUTO, ANY, NONE)."""
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice, "AUTO")
        return {"functionCallingConfig": {"mode": mode}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}}


def _tool_calls(parts: list[Any]) -> tuple[ToolCall, ...]:
    calls = []
    for i, part in enumerate(parts):
        call = part.get("functionCall") if isinstance(part, dict) else None
        if isinstance(call, dict) and call.get("name"):
            ident = str(call.get("id") or f"call_{i}")
            calls.append(ToolCall(ident, str(call["name"]), json.dumps(call.get("args") or {})))
    return tuple(calls)


def _details(error: Any) -> list[dict[str, Any]]:
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict) or meta.get("promptTokenCount") is None:
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(meta["promptTokenCount"]) + int(meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cache_read_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )
