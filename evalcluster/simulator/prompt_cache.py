"""Prompt-prefix caching as the vendors account for it in usage.

A request's *prefix* is what providers cache: for OpenAI and Gemini every message before the
last one (system prompt, few-shot turns, rubric), cached automatically once it is at least
`cache_min_tokens` long (OpenAI: 1,024 tokens, hits counted in 128-token steps,
platform.openai.com/docs/guides/prompt-caching; Gemini's implicit caching reports
``cachedContentTokenCount``). Anthropic caches only up to the last block marked
``cache_control`` (docs.anthropic.com/en/docs/build-with-claude/prompt-caching): the first
request writes it (``cache_creation_input_tokens``), later ones within the TTL read it
(``cache_read_input_tokens``), and its ``input_tokens`` then counts only the rest.

A prefix is "seen" per wire format, model and exact text, and stays cached `cache_ttl_s` after
its last use. The rewrite of usage happens on the body a format's `success` built, so the
answer and the token totals stay those of the uncached request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from evalcluster.simulator.tokens import count_tokens

OPENAI_CACHE_STEP = 128


class Prefix(NamedTuple):
    """The cacheable part of one request."""

    key: str  # digest of (format, model, prefix text)
    tokens: int


class CacheUse(NamedTuple):
    read: int  # tokens read from the cache
    written: int  # tokens written to it (Anthropic only)


class PromptCache:
    """Which prefixes are warm. Single event loop: no locking."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def reset(self) -> None:
        self._expiry.clear()

    def use(self, prefix: Prefix | None, ttl_s: float, min_tokens: int, step: int = 1) -> CacheUse:
        """Account one request's `prefix`: a hit reads it, a miss writes it; both refresh it."""
        if prefix is None or prefix.tokens < min_tokens:
            return CacheUse(0, 0)
        now = self._clock()
        warm = self._expiry.get(prefix.key, float("-inf")) > now
        self._expiry[prefix.key] = now + ttl_s
        if len(self._expiry) > 100_000:  # drop the expired ones now and then
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
        cached = prefix.tokens - prefix.tokens % step if step > 1 else prefix.tokens
        return CacheUse(cached, 0) if warm else CacheUse(0, prefix.tokens)

    def annotate(self, fmt: str, request_body: Any, model: str, reply: dict[str, Any],
                 ttl_s: float, min_tokens: int) -> CacheUse:  # fmt: skip
        """Rewrite `reply`'s usage in place for the cache use of `request_body`."""
        if fmt == "openai":
            use = self.use(openai_prefix(request_body, model), ttl_s, min_tokens, OPENAI_CACHE_STEP)
            usage = reply.get("usage")
            if isinstance(usage, dict):
                usage["prompt_tokens_details"] = {"cached_tokens": use.read}
            return CacheUse(use.read, 0)
        if fmt == "anthropic":
            use = self.use(anthropic_prefix(request_body, model), ttl_s, min_tokens)
            usage = reply.get("usage")
            if isinstance(usage, dict):
                usage["input_tokens"] = max(0, usage["input_tokens"] - use.read - use.written)
                usage["cache_read_input_tokens"] = use.read
                usage["cache_creation_input_tokens"] = use.written
            return use
        use = self.use(gemini_prefix(request_body, model), ttl_s, min_tokens)
        usage = reply.get("usageMetadata")
        if isinstance(usage, dict) and use.read:
            usage["cachedContentTokenCount"] = use.read
        return CacheUse(use.read, 0)


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def _text(content: Any) -> str:
    """Text of a string or a list of text parts/blocks (the formats already validated it)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def openai_prefix(body: Any, model: str) -> Prefix | None:
    """Every message but the last."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    texts = [f"{m.get('role')}:{_text(m.get('content'))}" for m in messages[:-1]]
    tokens = sum(count_tokens(_text(m.get("content"))) for m in messages[:-1])
    return Prefix(_digest("openai", model, *texts), tokens)


def gemini_prefix(body: Any, model: str) -> Prefix | None:
    """systemInstruction and every content but the last."""
    if not isinstance(body, dict):
        return None
    contents = body.get("contents") or []
    system = body.get("systemInstruction", body.get("system_instruction"))
    texts = [_text((system or {}).get("parts"))] if isinstance(system, dict) else []
    texts += [_text(c.get("parts")) for c in contents[:-1] if isinstance(c, dict)]
    if not any(texts):
        return None
    return Prefix(_digest("gemini", model, *texts), sum(count_tokens(t) for t in texts))


def anthropic_prefix(body: Any, model: str) -> Prefix | None:
    """system, then each message's blocks, up to the last block carrying ``cache_control``."""
    if not isinstance(body, dict):
        return None
    blocks = _blocks(body.get("system"))
    for message in body.get("messages") or []:
        blocks += _blocks(message.get("content") if isinstance(message, dict) else None)
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    if not marked:
        return None
    kept = [_text([b]) for b in blocks[: marked[-1] + 1] if isinstance(b, dict)]
    return Prefix(_digest("anthropic", model, *kept), sum(count_tokens(t) for t in kept))


def _blocks(content: Any) -> list[Any]:
    """A string or block list as blocks (a plain string is one unmarked text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []
