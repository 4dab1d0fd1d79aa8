"""OpenRouter: the OpenAI wire format plus OpenRouter's extensions.

Reference: openrouter.ai/docs (API reference, "Errors", "Usage accounting", "Provider routing",
"App attribution"). Differences from OpenAI handled here:

- optional `HTTP-Referer` / `X-Title` headers attribute the app (`http_referer`, `app_title`);
- the request's `provider` object carries routing preferences (`provider_routing`);
- `"usage": {"include": true}` asks for `usage.cost`, the credits the call used, which wins over
  our pricing table;
- 402 means the credits ran out (never retried); a 403 for flagged input is a content filter;
- an error can arrive inside an HTTP 200 body, top-level or in a choice (`finish_reason:
  "error"`): it is an error with the embedded code, never an answer (handled for every
  OpenAI-compatible server by `HttpAdapter` and `OpenAIAdapter`).
"""

from __future__ import annotations

from typing import Any

from evalcluster.errors import ContentFilteredError, ProviderError
from evalcluster.providers.base import CompletionRequest
from evalcluster.providers.error_mapping import ErrorBody
from evalcluster.providers.openai import OpenAIAdapter, read_openai_error

__all__ = ["OpenRouterAdapter"]


class OpenRouterAdapter(OpenAIAdapter):
    """openrouter.ai, or a gateway with its API."""

    kind = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"
    default_key_env = "OPENROUTER_API_KEY"
    max_tokens_field = "max_tokens"

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.config.http_referer:
            headers["HTTP-Referer"] = self.config.http_referer
        if self.config.app_title:
            headers["X-Title"] = self.config.app_title
        return headers

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        body = super().body(request)
        body["usage"] = {"include": True}
        if self.config.provider_routing:
            body["provider"] = dict(self.config.provider_routing)
        return body

    def reported_cost(self, usage: Any) -> float | None:
        cost = usage.get("cost") if isinstance(usage, dict) else None
        return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None

    def read_error(self, payload: Any) -> ErrorBody | None:
        error = read_openai_error(payload)
        inner = payload.get("error") if isinstance(payload, dict) else None
        metadata = inner.get("metadata") if isinstance(inner, dict) else None
        # A 403 whose metadata names the flagged input is OpenRouter's moderation refusal.
        if error is not None and isinstance(metadata, dict) and "flagged_input" in metadata:
            return ErrorBody(error.message, type="moderation", code=error.code)
        return error

    def error_class(self, status: int, error: ErrorBody) -> type[ProviderError]:
        if error.type == "moderation":
            return ContentFilteredError
        return super().error_class(status, error)
