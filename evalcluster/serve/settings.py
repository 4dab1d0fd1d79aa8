"""The service's settings: one frozen value built from the service configuration.

`build_app` receives ``key=value`` strings from ``serve run`` or typed values from a Serve config
file, and either may name a ``config`` file (see `evalcluster.serve.config`); `settings_from_args`
validates them all and resolves what a replica needs (keys as digests, the provider registry).
Local paths are made absolute here, in the process that parsed them, because Serve replicas and
run drivers are Ray workers whose working directory is not the user's.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evalcluster.errors import SpecError
from evalcluster.gateway.config import GatewayConfig, check_routes
from evalcluster.serve.auth import ApiKeys, load_api_keys, tenant_keys
from evalcluster.serve.config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_UPLOAD_BYTES,
    load_service_config,
)
from evalcluster.suite.loader import load_providers_file
from evalcluster.suite.models import ProviderConfig
from evalcluster.suite.rules import ClientProviders

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ServeSettings",
    "absolute_store_uri",
    "absolute_tracking_uri",
    "settings_from_args",
]


@dataclass(frozen=True)
class ServeSettings:
    """Everything a replica needs; pickled into the deployment (keys only as digests)."""

    store_uri: str
    api_keys: ApiKeys
    endpoint_url: str | None = None
    tracking_uri: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    dataset_roots: tuple[str, ...] = ()
    registry: Mapping[str, ProviderConfig] = field(default_factory=dict)
    client_providers: ClientProviders = "deny"
    client_networks: tuple[str, ...] = ()
    max_websockets: int = 256
    driver_linger_s: float = 0.0
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


def settings_from_args(args: Mapping[str, Any]) -> ServeSettings:
    """Validate the application arguments (and the ``config`` file they may name); SpecError
    names the bad field. Refuses to build a service without API keys unless ``allow_no_auth``."""
    config = load_service_config(dict(args))
    keys = load_api_keys(config.api_keys_file, quotas=config.default_quotas)
    for name, tenant in config.tenants.items():
        keys = keys.merged(tenant_keys(name, tenant, os.environ))
    if not keys and not config.allow_no_auth:
        raise SpecError(
            "no API keys configured: define tenants in the service configuration, set "
            "EVALCLUSTER_API_KEYS (comma-separated) or pass an api_keys_file (one key per line); "
            "to run without authentication set allow_no_auth=true (for `evalcluster serve`: "
            "EVALCLUSTER_ALLOW_NO_AUTH=1)",
            field="api_keys",
        )
    roots = list(config.datasets.roots)
    if config.base_dir is not None:  # legacy: one more dataset root
        base_dir = Path(config.base_dir).resolve()
        if not base_dir.is_dir():
            raise SpecError(f"not a directory: {base_dir}", field="base_dir")
        roots.append(str(base_dir))
    registry: dict[str, ProviderConfig] = {}
    if config.providers_file:
        registry = load_providers_file(Path(config.providers_file), "providers_file")
    return ServeSettings(
        store_uri=absolute_store_uri(config.store_uri),
        api_keys=keys,
        endpoint_url=config.endpoint_url,
        tracking_uri=absolute_tracking_uri(config.tracking_uri),
        max_body_bytes=config.max_body_bytes,
        max_upload_bytes=config.datasets.max_upload_bytes,
        dataset_roots=tuple(_dataset_root(r, i) for i, r in enumerate(roots)),
        registry=registry,
        client_providers=config.client_providers,
        client_networks=tuple(_network(n, i) for i, n in enumerate(config.client_networks)),
        max_websockets=config.max_websockets,
        driver_linger_s=config.driver_linger_s,
        gateway=check_routes(
            config.gateway,
            registry,
            {n: t.quotas.gateway_routes for n, t in config.tenants.items()},
        ),
    )


def _dataset_root(root: str, index: int) -> str:
    """A root made canonical: an existing absolute folder (symlinks resolved) or s3:// prefix."""
    if root.startswith("s3://"):
        bucket = root.removeprefix("s3://").split("/", 1)[0]
        if not bucket or ".." in root.split("/"):
            raise SpecError(
                f"not an s3://bucket/prefix: {root!r}", field=f"datasets.roots[{index}]"
            )
        return root if root.endswith("/") else root + "/"
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise SpecError(f"not a directory: {root}", field=f"datasets.roots[{index}]")
    return str(path)


def _network(cidr: str, index: int) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise SpecError(f"not a network: {cidr!r}", field=f"client_networks[{index}]") from None


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
