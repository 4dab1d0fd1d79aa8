"""Which addresses a provider may reach: a permissive check for the operator's providers and a
strict `NetworkPolicy` for providers that a submitted suite defines itself.

Operator providers (`check_url`): a suite may name any URL for `custom` and `local` providers.
Without a check such a provider could read a cloud machine's instance credentials from its
metadata service, so link-local and metadata addresses are refused; loopback and private ranges
stay allowed (that is where local model servers live) and `allow_private_network` lifts even
that refusal.

Client providers (`NetworkPolicy`, `ProviderConfig.from_client`): the HTTP service accepts
suites from API-key holders, who must be treated as hostile. A provider such a suite defines
reaches global unicast addresses only: loopback, private, link-local, CGNAT, unspecified,
multicast, reserved and documentation ranges are refused, so are their IPv4-mapped, 6to4 and
NAT64 spellings and the metadata host names, and `allow_private_network` does not loosen it.
The operator may add networks (`NetworkPolicy.extra_allowed`, from the service's
`client_networks`), e.g. an internal model farm; the metadata addresses stay refused even then.
The URL is checked when the adapter is built and every address is checked again when a
connection is made (`transport.AiohttpTransport` with a policy), against DNS rebinding.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from evalcluster.errors import SpecError

__all__ = [
    "BLOCKED_HOSTNAMES",
    "BLOCKED_NETWORKS",
    "NON_PUBLIC_NETWORKS",
    "NetworkPolicy",
    "check_url",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6 (Nitro)
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
BLOCKED_HOSTNAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})

# Every range that is not global unicast, written out rather than taken from `ipaddress`'s
# is_global / is_private, whose answers differ between Python patch releases (and call
# multicast and 100.64/10's neighbours global). The flags are checked as well, as a second net.
NON_PUBLIC_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 broadcast
        "::/8",  # unspecified, loopback, IPv4-compatible and -translated, NAT64 (judged first)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (private)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata (inside 100.64/10 already)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: last 32 bits are IPv4

Resolver = Callable[[str, int], Iterable[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [str(info[4][0]) for info in infos]


def parse_address(address: str) -> IPAddress | None:
    """`address` as an IP address (an IPv6 zone id dropped), or None when it is not one in
    canonical form. Legacy IPv4 spellings (2130706433, 0x7f.1, 127.1) give None."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _is_legacy_ipv4(host: str) -> bool:
    """Whether `host` is a numeric IPv4 spelling that `ipaddress` refuses but the C library
    (inet_aton, getaddrinfo) maps onto an address: 2130706433, 0x7f.1, 127.1, 0177.0.0.1."""
    if parse_address(host) is not None or not host or not host.isascii():
        return False
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _blocked(address: str) -> bool:
    ip = parse_address(address)
    if ip is None:
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
    """The operator providers' check: raise `SpecError` if `url` is not http(s) or reaches a
    link-local or metadata address (unless `allow_private_network`).

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
    port = _port(url, parts, provider=provider, field=field)
    addresses = [host] if parse_address(host) is not None else list(resolve(host, port))
    if host in BLOCKED_HOSTNAMES or any(_blocked(a) for a in addresses):
        raise SpecError(
            f"provider {provider!r}: {url!r} reaches a link-local or cloud metadata address; "
            "set allow_private_network: true if this is intended",
            field=field,
        )


def _port(url: str, parts: Any, *, provider: str, field: str) -> int:
    try:
        return int(parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:
        raise SpecError(f"provider {provider!r}: {url!r} has a bad port", field=field) from None


class BlockedAddressError(OSError):
    """A connection to an address outside a `NetworkPolicy` was refused. An `OSError` (EACCES,
    the message as its `strerror`), so that aiohttp reports it as a connection failure with
    the message (`ProviderConnectionError` in the end)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Where a provider defined by a submitted suite may connect: global unicast addresses,
    plus the operator's `extra_allowed` networks. Frozen and picklable.

    Build one with `NetworkPolicy()` (public addresses only) or
    `NetworkPolicy.from_cidrs(["10.20.0.0/16"])`. The metadata networks (`BLOCKED_NETWORKS`)
    and host names (`BLOCKED_HOSTNAMES`) stay refused even when an allowed network covers them.
    """

    extra_allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> NetworkPolicy:
        """A policy allowing the networks `cidrs` ("10.0.0.0/8", "127.0.0.1/32", "fd12::/48")
        besides public addresses; host bits may be set. Raises ValueError for a bad CIDR."""
        return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs))

    @classmethod
    def for_config(cls, config: Any) -> NetworkPolicy:
        """The policy of a client provider: its `client_networks` (CIDRs the service copies
        onto the config from its own settings, next to `from_client`), public addresses only
        when it has none. A bad CIDR raises ValueError."""
        return cls.from_cidrs(getattr(config, "client_networks", None) or ())

    def allows_address(self, address: str | IPAddress) -> bool:
        """Whether a connection to `address` (an IP address, never a name) is allowed.

        Anything that does not parse as a canonical IP address is refused, an IPv4-mapped
        IPv6 address is judged as its IPv4 address, and 6to4 and NAT64 addresses as well by
        the IPv4 address they carry.
        """
        ip = parse_address(address) if isinstance(address, str) else address
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # the kernel connects to the IPv4 address itself
        if _in_any(ip, BLOCKED_NETWORKS):
            return False
        if _in_any(ip, self.extra_allowed):
            return True
        return _is_public(ip)

    def allows_host(self, host: str) -> bool | None:
        """For a URL's host: False if it is refused as written (a metadata name, an address
        outside the policy, a legacy numeric IPv4 spelling), True for an allowed IP address,
        None for a name whose addresses decide."""
        host = host.rstrip(".").lower()
        if not host or host in BLOCKED_HOSTNAMES or _is_legacy_ipv4(host):
            return False
        if ":" in host or parse_address(host) is not None:
            return self.allows_address(host)
        return None

    def check_url(
        self, url: str, *, provider: str, field: str, resolve: Resolver = system_resolver
    ) -> None:
        """Raise `SpecError` unless `url` is http(s) and its host is allowed: an IP address
        in the policy, or a name every address of which (resolved now) is in the policy.

        A name that does not resolve here passes: the cluster's resolver may answer, and the
        guarded transport checks every address again when it connects. The message names the
        URL (the client sent it) but no resolved address, so that a client cannot map the
        internal network through error messages.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecError(f"provider {provider!r}: {url!r} is not an http(s) URL", field=field)
        port = _port(url, parts, provider=provider, field=field)
        host = parts.hostname
        allowed = self.allows_host(host)
        if allowed is None:
            allowed = all(self.allows_address(a) for a in resolve(host.rstrip("."), port))
        if not allowed:
            raise SpecError(
                f"provider {provider!r}: {url!r} is not a public address; a provider defined "
                "in a submitted suite may reach only public addresses"
                + (" and the operator's client_networks" if self.extra_allowed else ""),
                field=field,
            )

    def socket_factory(self) -> Callable[[tuple[Any, ...]], socket.socket]:
        """A socket factory for aiohttp's `TCPConnector(socket_factory=...)`: the last gate,
        called with the address about to be connected to, after any resolver or cache."""

        def make_socket(addr_info: tuple[Any, ...]) -> socket.socket:
            family, type_, proto, _, sockaddr = addr_info
            if not self.allows_address(str(sockaddr[0])):
                raise BlockedAddressError("address outside the allowed networks")
            return socket.socket(family=family, type=type_, proto=proto)

        return make_socket


def _in_any(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip in net for net in networks if net.version == ip.version)


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # A 6to4 or NAT64 address is relayed to the IPv4 address it carries: judge that one.
        if ip in _NAT64:
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return _is_public(ip.sixtofour)
    if _in_any(ip, NON_PUBLIC_NETWORKS):
        return False
    flags = (ip.is_private, ip.is_loopback, ip.is_link_local, ip.is_multicast, ip.is_reserved,
             ip.is_unspecified)  # fmt: skip
    return ip.is_global and not any(flags)
