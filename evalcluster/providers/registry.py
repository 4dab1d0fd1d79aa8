"""Provider kind -> adapter class, looked up lazily by "module:attr" so that an unused wire
format is never imported. `register_provider` adds kinds (or replaces one, e.g. in tests) and
`unregister_provider` removes an added one. A kind registered here is also registered with
`evalcluster.suite.models` (`register_provider_kind`), where suites are validated: spec knows
nothing of this package, so the names are pushed to it rather than looked up from it.

Installed packages add kinds without any code of ours running first: an entry point in the
group `evalcluster.providers` (name = kind, value = "module:attr" of the adapter class) is a
kind suites may name, imported on first use (`spec.models.installed_provider_kinds`)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TypeVar

from evalcluster.errors import SpecError
from evalcluster.providers.base import ProviderAdapter
from evalcluster.suite.models import (
    installed_provider_kinds,
    register_provider_kind,
    unregister_provider_kind,
)

__all__ = ["adapter_class", "known_kinds", "register_provider", "unregister_provider"]

_ENTRIES: dict[str, str | type[ProviderAdapter]] = {
    "openai": "evalcluster.providers.openai:OpenAIAdapter",
    "local": "evalcluster.providers.local:LocalAdapter",
    "openrouter": "evalcluster.providers.openrouter:OpenRouterAdapter",
    "anthropic": "evalcluster.providers.anthropic:AnthropicAdapter",
    "gemini": "evalcluster.providers.gemini:GeminiAdapter",
    "custom": "evalcluster.providers.custom:CustomAdapter",
}

_BUILTIN = dict(_ENTRIES)

A = TypeVar("A", bound=type[ProviderAdapter])


def register_provider(kind: str, target: str | None = None) -> Callable[[A], A]:
    """Register an adapter for `kind`: as a class decorator, or with a "module:attr" string
    (`register_provider("mine", "pkg.mod:MyAdapter")`, which returns a no-op decorator)."""
    if target is not None:
        _ENTRIES[kind] = target
        register_provider_kind(kind)

    def decorate(cls: A) -> A:
        _ENTRIES[kind] = cls
        register_provider_kind(kind)
        return cls

    return decorate


def unregister_provider(kind: str) -> None:
    """Remove a kind added with `register_provider`; a built-in kind is restored, not removed."""
    _ENTRIES.pop(kind, None)
    if kind in _BUILTIN:
        _ENTRIES[kind] = _BUILTIN[kind]
    unregister_provider_kind(kind)


def known_kinds() -> list[str]:
    """Every kind with an adapter (built-in, registered or installed), sorted."""
    return sorted(_ENTRIES.keys() | installed_provider_kinds().keys())


def adapter_class(kind: str) -> type[ProviderAdapter]:
    """The adapter class of `kind`; an unknown kind raises `SpecError` with a suggestion."""
    entry = _ENTRIES.get(kind) or installed_provider_kinds().get(kind)
    if entry is None:
        close = difflib.get_close_matches(kind, known_kinds(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecError(
            f"unknown provider kind {kind!r}{hint} (known: {', '.join(known_kinds())})",
            field="kind",
        )
    if isinstance(entry, str):
        entry = _import_adapter(kind, entry)
        _ENTRIES[kind] = entry
    return entry


def _import_adapter(kind: str, target: str) -> type[ProviderAdapter]:
    module, _, attr = target.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(
            f"provider kind {kind!r}: cannot load its adapter {target!r} ({exc})", field="kind"
        ) from None
    if not (isinstance(found, type) and issubclass(found, ProviderAdapter)):
        raise SpecError(
            f"provider kind {kind!r}: {target!r} is not a ProviderAdapter subclass", field="kind"
        )
    return found
