"""A custom HTTP API declared in the suite (`ProviderConfig.custom`).

The request is a template: in the body, a string that is exactly one placeholder becomes the
value itself (`"{messages}"` -> the list of `{role, content}` objects, `"{max_tokens}"` -> a
number or null); placeholders inside longer strings are replaced by text. Header values may use
`{api_key}` (the key is read from `api_key_env` / `api_key_file`). The answer and token counts
are found by dotted paths into the JSON response ("choices.0.text"); counts that are not there
are estimated. The URL is refused if it reaches a link-local or cloud metadata address (any
non-public address, for a provider defined by a submitted suite: see netguard.py).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from evalcluster.errors import SpecError
from evalcluster.providers.adapter import HttpAdapter, HttpCall
from evalcluster.providers.base import Completion, CompletionRequest, FinishReason, Usage
from evalcluster.providers.error_mapping import ErrorBody
from evalcluster.providers.openai import read_openai_error
from evalcluster.providers.pricing import estimate_input_tokens, estimate_tokens
from evalcluster.providers.transport import HttpResponse
from evalcluster.suite.models import CustomHttpConfig, ProviderConfig

__all__ = ["CustomAdapter", "fill_template", "lookup_path"]

PLACEHOLDERS = ("prompt", "system", "model", "messages", "max_tokens", "temperature")
_MISSING: Any = object()

FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "safety": FinishReason.CONTENT_FILTER,
    "refusal": FinishReason.REFUSAL,
    "tool_calls": FinishReason.TOOL_CALLS,
}


class CustomAdapter(HttpAdapter):
    """Any JSON-over-HTTP model API, described by a `CustomHttpConfig`."""

    kind = "custom"
    key_required = False
    guard_private_network = True

    @classmethod
    def requires_key(cls, config: ProviderConfig) -> bool:
        return config.custom is not None and any(
            "{api_key}" in v for v in config.custom.headers.values()
        )

    @property
    def spec(self) -> CustomHttpConfig:
        assert self.config.custom is not None  # ProviderConfig validates it for kind custom
        return self.config.custom

    def _check_urls(self) -> None:
        url = self.spec.url
        field = f"providers.{self.name}.custom.url"
        if "{" in (urlsplit(url).hostname or "") or "{" in urlsplit(url).netloc:
            raise SpecError(f"provider {self.name!r}: the host of {url!r} cannot be a template",
                            field=field)  # fmt: skip
        self._check_url(url, field)  # guard_private_network: the operator check honours the flag
        self.base_url = url
        if self.requires_key(self.config) and self._api_key is None:
            raise SpecError(
                f"provider {self.name!r}: custom.headers use {{api_key}} but no key is configured "
                "(set api_key_env or api_key_file)",
                field=f"providers.{self.name}.api_key_env",
            )

    def build_call(self, request: CompletionRequest) -> HttpCall:
        values = _values(request)
        url = self.spec.url.replace("{model}", quote(request.model, safe=""))
        headers = dict(self.config.headers)
        for name, value in self.spec.headers.items():
            headers[name] = value.replace("{api_key}", self.api_key or "")
        body = None if self.spec.method == "GET" else fill_template(self.spec.body_template, values)
        return HttpCall(url, headers, body, method=self.spec.method)

    def parse_completion(
        self, request: CompletionRequest, payload: Any, response: HttpResponse, latency_ms: float
    ) -> Completion:
        text = lookup_path(payload, self.spec.text_path)
        if text is _MISSING or text is None:
            raise self.protocol_error(f"text_path {self.spec.text_path!r} not in the response",
                                      response)  # fmt: skip
        text = text if isinstance(text, str) else json.dumps(text)
        input_tokens = self._count(payload, self.spec.input_tokens_path)
        output_tokens = self._count(payload, self.spec.output_tokens_path)
        estimated = input_tokens is None or output_tokens is None
        if input_tokens is None:
            input_tokens = estimate_input_tokens(request)
        if output_tokens is None:
            output_tokens = estimate_tokens(text)
        raw = self._raw_finish(payload)
        finish = FINISH_REASONS.get(raw.lower(), FinishReason.OTHER) if raw else FinishReason.STOP
        return Completion(
            text=text,
            finish_reason=finish,
            usage=Usage(input_tokens, output_tokens, estimated=estimated),
            latency_ms=latency_ms,
            raw_finish_reason=raw,
            rate_limits=self.rate_limits(response),
        )

    def _count(self, payload: Any, path: str | None) -> int | None:
        value = lookup_path(payload, path) if path else _MISSING
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)

    def _raw_finish(self, payload: Any) -> str | None:
        if not self.spec.finish_reason_path:
            return None
        value = lookup_path(payload, self.spec.finish_reason_path)
        return value if isinstance(value, str) else None

    def read_error(self, payload: Any) -> ErrorBody | None:
        return read_openai_error(payload)


def _values(request: CompletionRequest) -> dict[str, Any]:
    users = [m.content for m in request.messages if m.role == "user"]
    return {
        "prompt": users[-1] if users else "",
        "system": request.system,
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.params.get("max_tokens"),
        "temperature": request.params.get("temperature"),
    }


def fill_template(template: Any, values: dict[str, Any]) -> Any:
    """`template` with its placeholders replaced (see the module docstring)."""
    if isinstance(template, dict):
        return {k: fill_template(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_template(v, values) for v in template]
    if not isinstance(template, str):
        return template
    for name in PLACEHOLDERS:
        if template == f"{{{name}}}":
            return values.get(name)
    for name in PLACEHOLDERS:
        token = f"{{{name}}}"
        if token in template:
            value = values.get(name)
            text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
            template = template.replace(token, text)
    return template


def lookup_path(data: Any, path: str | None) -> Any:
    """The value at a dotted path ("choices.0.message.content"); a sentinel when absent."""
    if not path:
        return _MISSING
    for segment in path.split("."):
        if isinstance(data, list):
            try:
                data = data[int(segment)]
            except (ValueError, IndexError):
                return _MISSING
        elif isinstance(data, dict) and segment in data:
            data = data[segment]
        else:
            return _MISSING
    return data
