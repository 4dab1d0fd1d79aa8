"""Provider adapters: one module per wire format over one transport module.

`build_adapter(name, config)` is the entry point; the contract an adapter implements is in
`base.py`, the kinds it knows are in `registry.py`, and costs are in `pricing.py`.
"""

from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    ProviderAdapter,
    RateLimitSnapshot,
    Usage,
)
from evalcluster.providers.factory import build_adapter
from evalcluster.providers.registry import known_kinds, register_provider

__all__ = [
    "Completion",
    "CompletionRequest",
    "FinishReason",
    "Message",
    "ProviderAdapter",
    "RateLimitSnapshot",
    "Usage",
    "build_adapter",
    "known_kinds",
    "register_provider",
]
