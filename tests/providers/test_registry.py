from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers import registry
from evalcluster.providers.anthropic import AnthropicAdapter
from evalcluster.providers.openai import OpenAIAdapter


def test_builtin_kinds_resolve_to_their_adapters() -> None:
    assert registry.adapter_class("openai") is OpenAIAdapter
    assert registry.adapter_class("anthropic") is AnthropicAdapter
    assert {"openai", "anthropic", "gemini", "openrouter", "local", "custom"} <= set(
        registry.known_kinds()
    )


def test_unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'anthropic'"):
        registry.adapter_class("antropic")
    with pytest.raises(SpecError, match="unknown provider kind 'zzz'"):
        registry.adapter_class("zzz")


def test_register_by_decorator_and_by_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))

    @registry.register_provider("mine")
    class Mine(OpenAIAdapter):
        kind = "mine"

    assert registry.adapter_class("mine") is Mine
    registry.register_provider("lazy", "evalcluster.providers.gemini:GeminiAdapter")
    assert registry.adapter_class("lazy").__name__ == "GeminiAdapter"
