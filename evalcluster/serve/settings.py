"""The service's configuration: one frozen value built from the Serve application's arguments.

`build_app` receives ``key=value`` strings from ``serve run`` or typed values from a Serve config
file; `settings_from_args` accepts both. Local paths are made absolute here, in the process that
parsed them, because Serve replicas and run drivers are Ray workers whose working directory is
not the user's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evalcluster.errors import SpecError
from evalcluster.jobs.options import DEFAULT_STORE, DEFAULT_TRACKING_URI
from evalcluster.serve.auth import ApiKeys, load_api_keys

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_DRIVER_LINGER_S = 600.0
_KNOWN_ARGS = {
    "store_uri",
    "endpoint_url",
    "tracking_uri",
    "api_keys_file",
    "allow_no_auth",
    "max_body_bytes",
    "base_dir",
    "driver_linger_s",
}


@dataclass(frozen=True)
class ServeSettings:
    """Everything a replica needs; pickled into the deployment (keys only as digests)."""

    store_uri: str
    api_keys: ApiKeys
    endpoint_url: str | None = None
    tracking_uri: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    base_dir: str = field(default_factory=os.getcwd)
    driver_linger_s: float = DEFAULT_DRIVER_LINGER_S


def settings_from_args(args: Mapping[str, Any]) -> ServeSettings:
    """Validate the application arguments; SpecError names the bad one.

    Refuses to build a service without API keys unless ``allow_no_auth`` is true.
    """
    unknown = sorted(set(args) - _KNOWN_ARGS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_ARGS))
        raise SpecError(f"unknown argument (known: {known})", field=unknown[0])
    keys = load_api_keys(_optional_str(args.get("api_keys_file")))
    allow_no_auth = _bool(args.get("allow_no_auth", False), "allow_no_auth")
    if not keys and not allow_no_auth:
        raise SpecError(
            "no API keys configured: set EVALCLUSTER_API_KEYS (comma-separated) or pass an "
            "api_keys_file (one key per line); to run without authentication set "
            "allow_no_auth=true (for `evalcluster serve`: EVALCLUSTER_ALLOW_NO_AUTH=1)",
            field="api_keys",
        )
    base_dir = Path(_optional_str(args.get("base_dir")) or os.getcwd()).resolve()
    if not base_dir.is_dir():
        raise SpecError(f"not a directory: {base_dir}", field="base_dir")
    return ServeSettings(
        store_uri=absolute_store_uri(_optional_str(args.get("store_uri")) or DEFAULT_STORE),
        api_keys=keys,
        endpoint_url=_optional_str(args.get("endpoint_url")),
        tracking_uri=absolute_tracking_uri(args.get("tracking_uri", DEFAULT_TRACKING_URI)),
        max_body_bytes=_positive_int(
            args.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), "max_body_bytes"
        ),
        base_dir=str(base_dir),
        driver_linger_s=_non_negative_float(
            args.get("driver_linger_s", DEFAULT_DRIVER_LINGER_S), "driver_linger_s"
        ),
    )


def absolute_store_uri(uri: str) -> str:
    """`uri` with a local folder made absolute; ``s3://`` and other URIs unchanged."""
    parts = urlsplit(uri)
    if parts.scheme.lower() == "file":
        return str(Path(parts.path).resolve())
    if parts.scheme and len(parts.scheme) > 1:
        return uri
    return str(Path(uri).resolve())


def absolute_tracking_uri(uri: Any) -> str | None:
    """None for an empty or ``none`` URI; a relative ``sqlite:///x.db`` made absolute."""
    text = _optional_str(uri)
    if text is None or text.lower() == "none":
        return None
    prefix = "sqlite:///"
    if text.startswith(prefix) and not text[len(prefix) :].startswith("/"):
        return prefix + str(Path(text[len(prefix) :]).resolve())
    return text


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise SpecError(f"expected true or false, got {value!r}", field=name)


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpecError(f"expected a whole number, got {value!r}", field=name) from None
    if number <= 0:
        raise SpecError(f"must be positive, got {number}", field=name)
    return number


def _non_negative_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"expected a number, got {value!r}", field=name) from None
    if not number >= 0:
        raise SpecError(f"must be >= 0, got {value!r}", field=name)
    return number
