"""Any OpenAI-compatible server on your own machines: vLLM, Ollama, llama.cpp, TGI, SGLang.

The OpenAI wire format with three differences: base_url is required (e.g.
http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama), a key is optional
(sent as a bearer token only when configured), and the URL is checked against link-local and
cloud metadata addresses, since it is an arbitrary address named in a suite.
"""

from __future__ import annotations

from evalcluster.providers.openai import OpenAIAdapter

__all__ = ["LocalAdapter"]


class LocalAdapter(OpenAIAdapter):
    """An OpenAI-compatible server at `base_url`."""

    kind = "local"
    default_base_url = None
    default_key_env = None
    key_required = False
    guard_private_network = True
    max_tokens_field = "max_tokens"  # the name every compatible server understands
