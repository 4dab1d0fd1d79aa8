"""API keys by reference: read from an environment variable or a file, never shown.

A key is wrapped in `Secret` the moment it is read, so no repr, str, log line or error message
can contain it by accident; `redact` scrubs it (and key-shaped strings) from provider text
before that text becomes part of an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from evalcluster.errors import SpecError

__all__ = ["Secret", "redact", "resolve_api_key"]


class Secret:
    """A string that never shows itself. `reveal()` is the one way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def resolve_api_key(
    provider: str,
    *,
    env: str | None,
    file: str | None,
    default_env: str | None = None,
    required: bool = True,
) -> Secret | None:
    """Read a provider's key from `file`, else `env`, else `default_env`.

    A missing key raises `SpecError` naming the provider and the variable or file (never a
    value) when `required`; otherwise it gives None.
    """
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SpecError(
                f"provider {provider!r}: cannot read api_key_file {str(path)!r} "
                f"({exc.strerror or type(exc).__name__})",
                field=f"providers.{provider}.api_key_file",
            ) from None
        if not value:
            raise SpecError(
                f"provider {provider!r}: api_key_file {str(path)!r} is empty",
                field=f"providers.{provider}.api_key_file",
            )
        return Secret(value)
    variable = env or default_env
    value = os.environ.get(variable, "").strip() if variable else ""
    if value:
        return Secret(value)
    if not required:
        return None
    if variable is None:
        raise SpecError(
            f"provider {provider!r} needs an API key: set api_key_env or api_key_file",
            field=f"providers.{provider}",
        )
    raise SpecError(
        f"provider {provider!r} needs an API key: environment variable {variable} is not set",
        field=f"providers.{provider}.api_key_env",
    )


# Key shapes that providers echo back in error messages, e.g. OpenAI's "Incorrect API key
# provided: sk-proj-****abcd": OpenAI/Anthropic/OpenRouter "sk-...", Google "AIza...".
_KEY_SHAPED = re.compile(r"\b(?:sk-[A-Za-z0-9_*\-]{6,}|AIza[A-Za-z0-9_\-]{10,})")


def redact(text: str, secret: Secret | None) -> str:
    """`text` with the key and anything key-shaped replaced by '***'."""
    # Shorter "keys" (placeholders such as the simulator's) would garble the text for nothing.
    if secret is not None and len(secret.reveal()) >= 4:
        text = text.replace(secret.reveal(), "***")
    return _KEY_SHAPED.sub("***", text)
