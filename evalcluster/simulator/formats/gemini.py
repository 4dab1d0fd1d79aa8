"""Gemini generateContent.

Shapes follow https://ai.google.dev/api/generate-content; errors are Google's
``{"error": {"code", "message", "status", "details"}}`` (https://ai.google.dev/gemini-api/docs/troubleshooting)
with ``google.rpc`` detail types (https://cloud.google.com/apis/design/errors): QuotaFailure
and RetryInfo on 429, ErrorInfo ``API_KEY_INVALID`` on a bad key. The key comes in the
``x-goog-api-key`` header or the ``key`` query parameter.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from evalcluster.simulator.formats.base import (
    ErrorContext,
    ErrorKind,
    HttpReply,
    RequestInvalid,
    SimRequest,
    SimResult,
    WireFormat,
    new_id,
    positive_int,
    stop_list,
)
from evalcluster.simulator.tokens import count_tokens

_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS"}
_RPC = "type.googleapis.com/google.rpc."
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]

# kind -> (HTTP status, google.rpc status, stock message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "quota": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "server_error": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "unavailable": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "auth_missing": (
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    ),
    "auth_invalid": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "forbidden": (403, "PERMISSION_DENIED", "The caller does not have permission"),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "context_length": (400, "INVALID_ARGUMENT", ""),
    "content_filter": (400, "INVALID_ARGUMENT", "Request blocked by the safety system."),
    "not_found": (404, "NOT_FOUND", "Requested entity was not found."),
}
_ERRORS["credits"] = _ERRORS["quota"]  # Gemini has no credits: a spent prepaid project is a quota


def duration(seconds: float) -> str:
    """A google.protobuf.Duration in JSON: "17s", "0.25s"."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class GeminiFormat(WireFormat):
    name = "gemini"

    def api_key(self, request: web.Request) -> str | None:
        key = request.headers.get("x-goog-api-key", "").strip() or request.query.get("key", "")
        return key.strip() or None

    def parse(self, body: Any, request: web.Request) -> SimRequest:
        if not isinstance(body, dict):
            raise RequestInvalid("Invalid JSON payload received. Expected an object.")
        model = request.match_info.get("model", "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestInvalid("* GenerateContentRequest.contents: contents is not specified")
        system = body.get("systemInstruction", body.get("system_instruction"))
        input_tokens = count_tokens(_parts_text(system, "systemInstruction")) if system else 0
        prompt = ""
        for i, content in enumerate(contents):
            if not isinstance(content, dict) or content.get("role", "user") not in (
                "user",
                "model",
            ):
                raise RequestInvalid(f"* contents[{i}].role: Please use a valid role: user, model.")
            text = _parts_text(content, f"contents[{i}]")
            input_tokens += count_tokens(text)
            if content.get("role", "user") == "user":
                prompt = text
        config = body.get("generationConfig", body.get("generation_config")) or {}
        if not isinstance(config, dict):
            raise RequestInvalid("Invalid value at 'generation_config'")
        max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
        if max_tokens is not None and not positive_int(max_tokens):
            raise RequestInvalid("Invalid value at 'generation_config.max_output_tokens'")
        stop = stop_list(
            config.get("stopSequences", config.get("stop_sequences")),
            "Invalid value at 'generation_config.stop_sequences'",
        )
        last = contents[-1]
        asks = last.get("role", "user") == "user" and not any(
            isinstance(p, dict) and "functionResponse" in p for p in last.get("parts") or ()
        )
        return SimRequest(
            model,
            prompt,
            input_tokens,
            max_tokens,
            stop,
            call_tool=_first_function(body.get("tools")) if asks else None,
        )

    def success(self, request: SimRequest, result: SimResult) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": result.input_tokens}
        body: dict[str, Any] = {}
        if result.finish == "blocked":
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS}
        elif result.finish == "content_filter":
            # A candidate stopped for safety carries no content, only its ratings.
            body["candidates"] = [
                {"finishReason": "SAFETY", "index": 0, "safetyRatings": _SAFETY_RATINGS}
            ]
        else:
            parts: list[dict[str, Any]] = [{"text": result.text}]
            if request.call_tool is not None:
                # As the OpenAI format does: call the first function offered with the user's
                # text as its argument, instead of answering (Gemini's finishReason stays STOP).
                args = {"input": request.prompt}
                parts = [{"functionCall": {"name": request.call_tool, "args": args}}]
            body["candidates"] = [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": _FINISH[result.finish],
                    "index": 0,
                }
            ]
            usage["candidatesTokenCount"] = result.output_tokens
        total = result.input_tokens + usage.get("candidatesTokenCount", 0)
        if result.thinking_tokens:
            # Gemini counts thoughts in the total but not in candidatesTokenCount.
            usage["thoughtsTokenCount"] = result.thinking_tokens
            total += result.thinking_tokens
        usage["totalTokenCount"] = total
        body["usageMetadata"] = usage
        body["modelVersion"] = request.model
        body["responseId"] = new_id("", 22)
        return body

    def error(self, kind: ErrorKind, ctx: ErrorContext) -> HttpReply:
        status, rpc_status, message = _ERRORS[kind]
        details: list[dict[str, Any]] = []
        if kind in ("rate_limit", "quota", "credits"):
            details = _quota_details(kind, ctx)
        elif kind == "auth_invalid":
            details = [
                {
                    "@type": _RPC + "ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        if kind == "context_length":
            message = (
                f"The input token count ({ctx.input_tokens}) exceeds the maximum number of "
                f"tokens allowed ({ctx.context_window})."
            )
        elif ctx.message and kind in ("bad_request", "not_found"):
            message = ctx.message
        body = {
            "error": {"code": status, "message": message, "status": rpc_status, "details": details}
        }
        return HttpReply.json(status, body)


def _quota_details(kind: ErrorKind, ctx: ErrorContext) -> list[dict[str, Any]]:
    if kind == "rate_limit" and ctx.limited_by == "tokens":
        metric, quota_id = "input_token_count", "GenerateContentInputTokensPerModelPerMinute"
    elif kind == "rate_limit":
        metric, quota_id = "requests", "GenerateRequestsPerMinutePerProjectPerModel"
    else:
        metric, quota_id = "requests", "GenerateRequestsPerDayPerProjectPerModel"
    violation: dict[str, Any] = {
        "quotaMetric": f"generativelanguage.googleapis.com/generate_content_{metric}",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": ctx.model},
    }
    if ctx.limit is not None:
        violation["quotaValue"] = str(ctx.limit)
    details: list[dict[str, Any]] = [
        {"@type": _RPC + "QuotaFailure", "violations": [violation]},
        {
            "@type": _RPC + "Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if ctx.retry_after_s is not None:
        details.append({"@type": _RPC + "RetryInfo", "retryDelay": duration(ctx.retry_after_s)})
    return details


def _parts_text(content: Any, where: str) -> str:
    """Joined text of a Content's parts; parts without text (images) carry no tokens here."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise RequestInvalid(f"* {where}.parts: must be a list of parts")
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            raise RequestInvalid(f"* {where}.parts: each part must be an object")
        if "text" in part:
            if not isinstance(part["text"], str):
                raise RequestInvalid(f"* {where}.parts.text: must be a string")
            texts.append(part["text"])
    return "\n".join(texts)


def _first_function(tools: Any) -> str | None:
    """The name of the first function declaration a request offers, if any."""
    if not isinstance(tools, list) or not tools:
        return None
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        declarations = tool.get("functionDeclarations", tool.get("function_declarations"))
        if not isinstance(declarations, list):
            continue
        for declaration in declarations:
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise RequestInvalid("* tools[0].function_declarations[0].name: name is required")
            return declaration["name"]
    return None
