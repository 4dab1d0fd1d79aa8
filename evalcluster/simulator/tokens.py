"""The simulator's public, deterministic tokenizer.

A token is a run of word characters or one other non-space character (the regex
``\\w+|[^\\w\\s]``). Every usage figure the simulator reports is computed with `count_tokens`,
so tests and other components can predict it exactly.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Number of tokens in `text`: matches of ``\\w+|[^\\w\\s]``."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The prefix of `text` holding its first `max_tokens` tokens.

    Cutting right after a token's last character keeps every earlier token intact, so
    ``count_tokens(truncate_tokens(t, n)) == min(n, count_tokens(t))``.
    """
    if max_tokens <= 0:
        return ""
    for i, match in enumerate(_TOKEN.finditer(text), start=1):
        if i == max_tokens:
            return text[: match.end()]
    return text
