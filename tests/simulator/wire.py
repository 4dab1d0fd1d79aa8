"""Test helper: build a request in each wire format and read its response back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

FORMAT_NAMES = ("openai", "anthropic", "gemini")


@dataclass(frozen=True)
class Call:
    url: str
    body: dict[str, Any]
    headers: dict[str, str]


def build(
    fmt: str,
    base_url: str,
    prompt: str,
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    model: str = "sim-1",
    key: str | None = "test-key",
    headers: dict[str, str] | None = None,
) -> Call:
    """A minimal valid request of `fmt` asking `prompt`."""
    extra = dict(headers or {})
    if fmt == "openai":
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": model, "messages": messages}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return Call(base_url + "/v1/chat/completions", body, {**auth, **extra})
    if fmt == "anthropic":
        body = {
            "model": model,
            "max_tokens": max_tokens or 256,
            "messages": [{"role": "user", "content": prompt}],
        }
        if system:
            body["system"] = system
        auth = {"x-api-key": key} if key else {}
        return Call(
            base_url + "/v1/messages", body, {**auth, "anthropic-version": "2023-06-01", **extra}
        )
    if fmt == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if max_tokens is not None:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
        auth = {"x-goog-api-key": key} if key else {}
        return Call(f"{base_url}/v1beta/models/{model}:generateContent", body, {**auth, **extra})
    raise ValueError(fmt)


def post(
    client: httpx.Client,
    fmt: str,
    base_url: str,
    prompt: str,
    *,
    timeout: float | None = None,
    **kw: Any,
) -> httpx.Response:
    """Send `build(...)` with `client`; `timeout` overrides the client's for this call."""
    call = build(fmt, base_url, prompt, **kw)
    extra = {} if timeout is None else {"timeout": timeout}
    return client.post(call.url, json=call.body, headers=call.headers, **extra)


def text_of(fmt: str, body: dict[str, Any]) -> str:
    if fmt == "openai":
        return body["choices"][0]["message"]["content"] or ""
    if fmt == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    candidate = body["candidates"][0]
    return "".join(p.get("text", "") for p in candidate.get("content", {}).get("parts", []))


def usage_of(fmt: str, body: dict[str, Any]) -> tuple[int, int]:
    """(input tokens, output tokens) as the format reports them."""
    if fmt == "openai":
        return body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]
    if fmt == "anthropic":
        return body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    meta = body["usageMetadata"]
    return meta["promptTokenCount"], meta.get("candidatesTokenCount", 0)


def finish_of(fmt: str, body: dict[str, Any]) -> str:
    if fmt == "openai":
        return body["choices"][0]["finish_reason"]
    if fmt == "anthropic":
        return body["stop_reason"]
    return body["candidates"][0]["finishReason"]
