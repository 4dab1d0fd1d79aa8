"""The one module that owns HTTP: a pooled HTTP client behind a small `Transport` seam.

Adapters never touch an HTTP library. They call `Transport.post_json` / `get` / `request` and
get an `HttpResponse` back, or a `ProviderTimeoutError` / `ProviderConnectionError`: this module
is the one translation table from the client libraries' exceptions to ours.

Both clients were chosen by measurement (benchmarks/transport.py and benchmarks/limits.py,
results in benchmarks/README.md, "Transport" and "Limits"). aiohttp served 2-8x the requests
per second of httpx and httpx2 at 16 in flight and 4-40x at 64 and 256. pyreqwest (reqwest and
hyper in Rust) then matched aiohttp's requests per second at about half its CPU per request,
most of it outside the GIL; a provider actor is one Python thread serving a whole endpoint, so
`PyreqwestTransport` is the default and `AiohttpTransport` stays as the pure-Python one.

`MockTransport` is the seam for unit tests, in the spirit of httpx's MockTransport: a handler
function answers each `HttpRequest` without any network.

A provider that a submitted suite defines (`ProviderConfig.from_client`) gets an
`AiohttpTransport` with a `NetworkPolicy` (netguard.py): pyreqwest has no resolver hook (its
`ClientBuilder` only takes static `resolve(domain, ip, port)` overrides), so it cannot check
the addresses a name resolves to when it connects. With a policy, aiohttp asks
`GuardedResolver` for every new connection (its DNS cache is off), the resolver keeps only the
allowed addresses, `send` refuses an IP-literal URL outside the policy (aiohttp does not resolve
those), and the connector's socket factory refuses any other address as the last gate. A name
that passed the check at build time and resolves to 127.0.0.1 by the time of the connection
(DNS rebinding) therefore fails with `ProviderConnectionError`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import orjson
import pyreqwest.exceptions as pyreqwest_errors
from aiohttp.abc import AbstractResolver, ResolveResult
from pyreqwest.client import ClientBuilder
from yarl import URL

from evalcluster.errors import ProviderConnectionError, ProviderTimeoutError
from evalcluster.providers.netguard import BlockedAddressError, NetworkPolicy

__all__ = [
    "AiohttpTransport",
    "GuardedResolver",
    "HttpRequest",
    "HttpResponse",
    "MockTransport",
    "PyreqwestTransport",
    "Transport",
]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as a transport sees it. Header names keep the caller's spelling."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout_s: float

    def json(self) -> Any:
        """The body decoded as JSON (tests use it to inspect what an adapter sent)."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A whole response. Header names are lower-cased; `body` is the raw bytes."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def encode_json(body: Any) -> bytes:
    """`body` as compact UTF-8 JSON: orjson (about 15x quicker than json for a request body),
    or json for what orjson refuses (non-string keys, integers over 64 bits)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Transport(ABC):
    """Sends one HTTP request and returns the whole response. Never follows redirects."""

    @abstractmethod
    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send `request`; raise `ProviderTimeoutError` or `ProviderConnectionError` on failure."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any = None,
        timeout_s: float = 60.0,
    ) -> HttpResponse:
        """Send `body` (JSON-encoded when not None) with `method` to `url`."""
        data = None if body is None else encode_json(body)
        sent = dict(headers)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        return await self.send(HttpRequest(method, url, sent, data, timeout_s))

    async def post_json(
        self, url: str, headers: Mapping[str, str], body: Any, timeout_s: float
    ) -> HttpResponse:
        """POST `body` as JSON."""
        return await self.request("POST", url, headers, body, timeout_s)

    async def get(self, url: str, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        """GET `url`."""
        return await self.request("GET", url, headers, None, timeout_s)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections. The transport may be used again afterwards (it reopens)."""

    @property
    def confined(self) -> bool:
        """Whether this transport can reach only addresses that a `NetworkPolicy` allows: it
        checks every connection against one, or it makes no connections at all. A provider
        defined by a submitted suite accepts only such a transport."""
        return False


class PyreqwestTransport(Transport):
    """pyreqwest (Rust reqwest/hyper behind a small Python API), pooled, the default transport.

    HTTP framing, pooling and parsing run in Rust threads outside the GIL, so the provider
    actor's one Python thread spends about half the CPU per request that it spends with aiohttp
    (benchmarks/README.md, "Transport"): a zero-latency endpoint drives that thread flat out.
    The client is made lazily inside the running event loop, like the aiohttp one. Proxy
    variables are ignored and redirects are not followed, as with aiohttp before it.
    """

    def __init__(self, max_connections: int = 64) -> None:
        self.max_connections = max_connections
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"PyreqwestTransport(max_connections={self.max_connections})"

    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = (
                ClientBuilder()
                .max_connections(self.max_connections)
                .follow_redirects(False)
                .error_for_status(False)
                .no_proxy()
                .build()
            )
            self._loop = loop
        return self._client

    async def send(self, request: HttpRequest) -> HttpResponse:
        client = self._get_client()
        builder = (
            client.request(request.method, request.url)
            .headers(dict(request.headers))
            .timeout(timedelta(seconds=request.timeout_s))
        )
        if request.body is not None:
            builder = builder.body_bytes(request.body)
        try:
            response = await builder.build().send()
            body = bytes(await response.bytes())
        except pyreqwest_errors.RequestTimeoutError as exc:
            raise ProviderTimeoutError(
                f"no response within {request.timeout_s:g}s ({_describe_pyreqwest(exc)})"
            ) from None
        except pyreqwest_errors.PyreqwestError as exc:
            raise ProviderConnectionError(
                f"connection failed: {_describe_pyreqwest(exc)}"
            ) from None
        # hyper hands header names over lower-cased already.
        return HttpResponse(response.status, dict(response.headers.items()), body)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


_URL = re.compile(r"\s*(?:for url\s*)?\(?https?://[^\s)]*\)?")


def _describe_pyreqwest(exc: BaseException) -> str:
    """The error class and its chain of causes, without the URL: a custom endpoint's URL may
    carry a key in its query string, and error text ends up in Parquet and logs."""
    details = getattr(exc, "details", None) or {}
    causes = details.get("causes") or [] if isinstance(details, dict) else []
    chain = [str(c.get("message", "")) for c in causes if isinstance(c, dict)]
    text = "; ".join(_URL.sub("", m) for m in chain if m) or _URL.sub("", str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that returns only the addresses `policy` allows.

    It asks `inner` (aiohttp's `DefaultResolver` unless given) and drops every address outside
    the policy; when none is left it raises `BlockedAddressError`, which aiohttp reports as a
    connection error. The message names the host, never an address: a client must not learn
    what internal names resolve to, nor tell a refused name from one that does not resolve.
    """

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else aiohttp.resolver.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        refused = BlockedAddressError(f"{host!r} resolves to no address a client may reach")
        if self.policy.allows_host(host) is False:  # a metadata name, a legacy IPv4 spelling
            raise refused
        try:
            results = await self._inner.resolve(host, port, family)
        except OSError:
            raise refused from None
        allowed = [r for r in results if self.policy.allows_address(r["host"])]
        if not allowed:
            raise refused
        return allowed

    async def close(self) -> None:
        await self._inner.close()


ResolverFactory = Callable[[], AbstractResolver]
_HAS_SOCKET_FACTORY = "socket_factory" in inspect.signature(aiohttp.TCPConnector).parameters


class AiohttpTransport(Transport):
    """aiohttp with one pooled `TCPConnector` sized to the endpoint's concurrency.

    The session is created lazily inside the running event loop (an aiohttp session is bound
    to the loop it was made in, and Ray actors or `asyncio.run` create theirs late).

    With `policy` every connection is checked against it (see the module docstring): DNS
    caching is off (`dns_cache_s` is ignored) so that the resolver is consulted for every new
    connection; `resolver_factory` makes the resolver the policy filters (aiohttp's
    `DefaultResolver` when None; tests pass one that answers chosen names).
    """

    def __init__(
        self,
        max_connections: int = 64,
        *,
        dns_cache_s: int = 300,
        policy: NetworkPolicy | None = None,
        resolver_factory: ResolverFactory | None = None,
    ):
        self.max_connections = max_connections
        self.dns_cache_s = dns_cache_s
        self.policy = policy
        self.resolver_factory = resolver_factory
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        guarded = ", guarded" if self.policy is not None else ""
        return f"AiohttpTransport(max_connections={self.max_connections}{guarded})"

    @property
    def confined(self) -> bool:
        return self.policy is not None

    def _connector(self) -> aiohttp.TCPConnector:
        if self.policy is None:
            return aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, ttl_dns_cache=self.dns_cache_s
            )
        inner = self.resolver_factory() if self.resolver_factory is not None else None
        gate: dict[str, Any] = {}
        if _HAS_SOCKET_FACTORY:  # aiohttp >= 3.12; the resolver and `send` guard without it
            gate["socket_factory"] = self.policy.socket_factory()
        return aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            use_dns_cache=False,
            resolver=GuardedResolver(self.policy, inner),
            **gate,
        )

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # No cookies: a shared pool must not carry one caller's state into another's.
            # No proxies either (trust_env stays False), so the connector sees the real host.
            self._session = aiohttp.ClientSession(
                connector=self._connector(),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
            self._loop = loop
        return self._session

    def _check_literal(self, url: str) -> None:
        """Refuse a URL whose host is an IP address (or a numeric IPv4 spelling) outside the
        policy: aiohttp connects to those without asking the resolver."""
        assert self.policy is not None
        try:
            host = URL(url).raw_host or ""
        except (ValueError, TypeError):
            raise ProviderConnectionError("connection refused: not a valid URL") from None
        if self.policy.allows_host(host) is False:
            raise ProviderConnectionError(
                f"connection refused: {host!r} is not an address a client may reach"
            )

    async def send(self, request: HttpRequest) -> HttpResponse:
        if self.policy is not None:
            self._check_literal(request.url)
        session = self._client()
        timeout = aiohttp.ClientTimeout(total=request.timeout_s)
        try:
            async with session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
                return HttpResponse(response.status, headers, body)
        except TimeoutError as exc:  # aiohttp's timeouts all derive from TimeoutError
            raise ProviderTimeoutError(
                f"no response within {request.timeout_s:g}s ({_describe(exc)})"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                why = exc.os_error.strerror
                raise ProviderConnectionError(f"connection refused: {why}") from None
            raise ProviderConnectionError(f"connection failed: {_describe(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderConnectionError(f"connection failed: {_describe(exc)}") from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


class MockTransport(Transport):
    """Answers requests with `handler(request)` (sync or async), recording every request.

    The handler may raise `ProviderTimeoutError` / `ProviderConnectionError` to act out a
    network failure.
    """

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.closed = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    @property
    def confined(self) -> bool:
        return True  # it answers from `handler` and opens no connection

    async def aclose(self) -> None:
        self.closed = True
