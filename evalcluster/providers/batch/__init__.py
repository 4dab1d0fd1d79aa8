"""Vendor batch APIs: submit, poll, results and cancel, over the sync adapters.

`batch_client(adapter)` picks the client for an adapter's wire format; the contract is in
`base.py`.
"""

from __future__ import annotations

from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.anthropic import AnthropicAdapter
from evalcluster.providers.batch.anthropic import AnthropicBatchClient
from evalcluster.providers.batch.base import (
    Anomaly,
    BatchClient,
    BatchItem,
    BatchLimits,
    BatchResults,
    BatchStatus,
    LineOutcome,
    split_batches,
)
from evalcluster.providers.batch.gemini import GeminiBatchClient
from evalcluster.providers.batch.openai import OpenAIBatchClient
from evalcluster.providers.gemini import GeminiAdapter
from evalcluster.providers.openai import OpenAIAdapter

__all__ = [
    "AnthropicBatchClient",
    "Anomaly",
    "BatchClient",
    "BatchItem",
    "BatchLimits",
    "BatchResults",
    "BatchStatus",
    "GeminiBatchClient",
    "LineOutcome",
    "OpenAIBatchClient",
    "batch_client",
    "split_batches",
]


def batch_client(adapter: HttpAdapter) -> BatchClient:
    """The batch client for `adapter`'s wire format. Raises ValueError for a format with no
    batch API (OpenRouter, local servers and custom HTTP providers answer sync only)."""
    # Exactly OpenAI: OpenRouter and local servers subclass its adapter but have no batch API.
    if type(adapter) is OpenAIAdapter:
        return OpenAIBatchClient(adapter)
    if isinstance(adapter, AnthropicAdapter):
        return AnthropicBatchClient(adapter)
    if isinstance(adapter, GeminiAdapter):
        return GeminiBatchClient(adapter)
    raise ValueError(f"provider {adapter.name!r} (kind {adapter.kind}) has no batch API")
