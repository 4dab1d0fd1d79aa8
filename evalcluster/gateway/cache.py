"""The gateway's response cache: a tenant's deterministic answers, kept in the runs' store.

Opt-in per request (``x-evalcluster-cache: use``) or per route (`cache: true`), and only for
deterministic requests (temperature 0, one choice). One small JSON object per answer under
``cache/gateway/<tenant>/<provider>/<request hash>.json``, beside the runs' cache in the same
store; a tenant never reads another's. The hash covers the provider, model, messages (tool
calls included), tools, tool choice and parameters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.providers.base import Completion, CompletionRequest, FinishReason, ToolCall, Usage
from evalcluster.store.fs import Store
from evalcluster.store.layout import check_name

log = logging.getLogger("evalcluster.gateway")

CACHE_PREFIX = "cache/gateway/"


def request_key(tenant: str, provider: str, request: CompletionRequest) -> str:
    identity = {
        "model": request.model,
        "messages": [
            [m.role, m.content, [asdict(c) for c in m.tool_calls], m.tool_call_id]
            for m in request.messages
        ],
        "params": request.params,
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
        "tool_choice": request.tool_choice,
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    check_name("tenant name", tenant)
    check_name("provider name", provider)
    return f"{CACHE_PREFIX}{tenant}/{provider}/{digest}.json"


def _encode(completion: Completion) -> bytes:
    return json.dumps(
        {
            "text": completion.text,
            "finish_reason": str(completion.finish_reason),
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "model": completion.model,
            "tool_calls": [asdict(c) for c in completion.tool_calls],
        }
    ).encode()


def _decode(data: bytes) -> Completion:
    value: dict[str, Any] = json.loads(data)
    return Completion(
        text=value["text"],
        finish_reason=FinishReason(value["finish_reason"]),
        usage=Usage(int(value["input_tokens"]), int(value["output_tokens"])),
        latency_ms=0.0,
        model=value.get("model"),
        tool_calls=tuple(ToolCall(**c) for c in value.get("tool_calls") or ()),
    )


class GatewayCache:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(
        self, tenant: str, provider: str, request: CompletionRequest
    ) -> Completion | None:
        key = request_key(tenant, provider, request)
        try:
            data = await asyncio.to_thread(self.store.get, key)
            return _decode(data)
        except NotFoundError:
            return None
        except (StoreError, ValueError, KeyError, TypeError) as exc:
            log.warning("gateway cache: unreadable %s: %s", key, exc)
            return None

    async def put(
        self, tenant: str, provider: str, request: CompletionRequest, completion: Completion
    ) -> None:
        key = request_key(tenant, provider, request)
        try:
            await asyncio.to_thread(self.store.put, key, _encode(completion))
        except StoreError as exc:
            log.warning("gateway cache: cannot write %s: %s", key, exc)
