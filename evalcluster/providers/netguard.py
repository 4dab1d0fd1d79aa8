"""Refuse provider URLs that point at link-local or cloud metadata addresses.

A suite may name any URL for `custom` and `local` providers, and a suite may come from someone
else (the HTTP service accepts them). Without this check such a provider could read a cloud
machine's instance credentials from its metadata service. Loopback and private ranges stay
allowed: that is where local model servers live.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from evalcluster.errors import SpecError

__all__ = ["BLOCKED_NETWORKS", "BLOCKED_HOSTNAMES", "check_url"]

BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6 (Nitro)
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
BLOCKED_HOSTNAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})

Resolver = Callable[[str, int], Iterable[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [info[4][0] for info in infos]


def _blocked(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in BLOCKED_NETWORKS if net.version == ip.version)


def check_url(
    url: str,
    *,
    provider: str,
    field: str,
    allow_private_network: bool = False,
    resolve: Resolver = system_resolver,
) -> None:
    """Raise `SpecError` if `url` is not http(s) or reaches a blocked address.

    The host is checked as written and, for a name, every address it resolves to now. A name
    that does not resolve here passes (it may resolve on the cluster); the request then fails
    or reaches wherever the name leads there.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"provider {provider!r}: {url!r} is not an http(s) URL", field=field)
    if allow_private_network:
        return
    host = parts.hostname.rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SpecError(f"provider {provider!r}: {url!r} has a bad port", field=field) from None
    addresses = [host] if _is_ip(host) else list(resolve(host, port))
    if host in BLOCKED_HOSTNAMES or any(_blocked(a) for a in addresses):
        raise SpecError(
            f"provider {provider!r}: {url!r} reaches a link-local or cloud metadata address; "
            "set allow_private_network: true if this is intended",
            field=field,
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
