"""`HttpAdapter`: one HTTP call per completion, the part every wire format shares.

A wire format subclasses it and fills four hooks: `build_call` (request -> URL, headers, JSON
body), `parse_completion` (JSON -> `Completion`), `read_error` (error JSON -> `ErrorBody`) and
`error_class` (status + `ErrorBody` -> exception class). Timing, transport failures, invalid
bodies, retry delays and key scrubbing are handled here once.

A provider that a submitted suite defines (`config.from_client`) is held to a `NetworkPolicy`
here, whatever its kind: its URL must be public (or in the operator's `client_networks`) when
the adapter is built, and its transport must check every connection against the same policy
(by default a guarded `AiohttpTransport`; see transport.py for why not pyreqwest).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from evalcluster.errors import (
    AuthError,
    ProtocolError,
    ProviderError,
    RateLimitedError,
    SpecError,
)
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    ProviderAdapter,
    RateLimitSnapshot,
    Usage,
)
from evalcluster.providers.error_mapping import (
    NOT_JSON,
    ErrorBody,
    body_snippet,
    class_for_status,
    decode_json,
    make_error,
    protocol_error,
)
from evalcluster.providers.netguard import NetworkPolicy, check_url
from evalcluster.providers.pricing import estimate_input_tokens, estimate_tokens
from evalcluster.providers.ratelimit_headers import parse_rate_limits, retry_delay
from evalcluster.providers.secrets import Secret
from evalcluster.providers.transport import (
    AiohttpTransport,
    HttpResponse,
    PyreqwestTransport,
    Transport,
)
from evalcluster.suite.models import ProviderConfig

__all__ = ["HttpAdapter", "HttpCall", "estimated_usage"]

# What a body that does not have the promised shape raises while being read.
_SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


@dataclass(frozen=True, slots=True)
class HttpCall:
    """The HTTP request an adapter makes for one completion."""

    url: str
    headers: Mapping[str, str]
    body: Any
    method: str = "POST"


class HttpAdapter(ProviderAdapter):
    """Base of the HTTP wire formats. The API key stays in a `Secret`, never in a repr."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    default_key_env: ClassVar[str | None] = None  # what the vendor's own SDK reads
    key_required: ClassVar[bool] = True
    guard_private_network: ClassVar[bool] = False  # refuse link-local/metadata addresses

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        api_key: Secret | None = None,
        transport: Transport | None = None,
        network_policy: NetworkPolicy | None = None,
    ):
        """`network_policy` binds a client provider (`config.from_client`) only, and defaults
        to `NetworkPolicy.for_config(config)`. Such a provider gets a guarded
        `AiohttpTransport`; a `transport` passed for it must be `confined` (ValueError if not).
        """
        self.name = name
        self.config = config
        self._api_key = api_key
        base_url = config.base_url or self.default_base_url
        self.base_url = base_url.rstrip("/") if base_url else ""
        self.network_policy: NetworkPolicy | None = None
        if config.from_client:
            self.network_policy = network_policy or _client_policy(name, config)
        self._check_urls()
        self._owns_transport = transport is None
        if transport is None:
            transport = (
                PyreqwestTransport(config.max_concurrency)
                if self.network_policy is None
                else AiohttpTransport(config.max_concurrency, policy=self.network_policy)
            )
        elif self.network_policy is not None and not transport.confined:
            raise ValueError(
                f"provider {name!r} is defined by a submitted suite: its transport must check "
                f"every connection against a network policy, and {transport!r} does not"
            )
        self.transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    @classmethod
    def requires_key(cls, config: ProviderConfig) -> bool:
        """Whether a call cannot be made without an API key."""
        return cls.key_required

    def _check_urls(self) -> None:
        if not self.base_url:
            raise SpecError(
                f"provider {self.name!r} (kind {self.kind}) needs base_url",
                field=f"providers.{self.name}.base_url",
            )
        self._check_url(self.base_url, f"providers.{self.name}.base_url")

    def _check_url(self, url: str, field: str) -> None:
        """The client policy's strict check for a client provider; else the operator's."""
        if self.network_policy is not None:
            self.network_policy.check_url(url, provider=self.name, field=field)
            return
        check_url(
            url,
            provider=self.name,
            field=field,
            allow_private_network=self.config.allow_private_network
            or not self.guard_private_network,
        )

    @property
    def api_key(self) -> str | None:
        """The key's value, for building headers only."""
        return self._api_key.reveal() if self._api_key is not None else None

    async def complete(self, request: CompletionRequest) -> Completion:
        call = self.build_call(request)
        if request.reference is not None and self.config.kind == "simulated":
            call = _with_reference(call, request.reference)
        started = time.perf_counter()
        try:
            response = await self.transport.request(
                call.method, call.url, call.headers, call.body, self.config.timeout_s
            )
        except ProviderError as exc:
            exc.provider = exc.provider or self.name
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        if not 200 <= response.status < 300:  # redirects are not followed: an error too
            raise self.error_for(response)
        payload = decode_json(response.body)
        if payload is NOT_JSON:
            what = "empty body" if not response.body.strip() else "invalid JSON"
            raise self.protocol_error(what, response)
        if isinstance(payload, dict) and payload.get("error"):
            raise self.embedded_error(payload["error"], response, payload)
        try:
            return self.parse_completion(request, payload, response, latency_ms)
        except ProviderError:
            raise
        except _SHAPE_ERRORS as exc:
            raise self.protocol_error(
                f"unexpected response shape ({type(exc).__name__})", response
            ) from None

    async def aclose(self) -> None:
        if self._owns_transport:
            await self.transport.aclose()

    # --- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def build_call(self, request: CompletionRequest) -> HttpCall:
        """The HTTP request for `request`."""

    @abstractmethod
    def parse_completion(
        self, request: CompletionRequest, payload: Any, response: HttpResponse, latency_ms: float
    ) -> Completion:
        """The `Completion` in a successful JSON body (raise a `ProviderError` if it is none)."""

    @abstractmethod
    def read_error(self, payload: Any) -> ErrorBody | None:
        """The error described by an error body, or None if it has no recognisable shape."""

    def error_class(self, status: int, error: ErrorBody) -> type[ProviderError]:
        """The exception class for an error response; by default from the status alone."""
        return class_for_status(status)

    def retry_after(self, response: HttpResponse, payload: Any) -> float | None:
        """The delay the provider asks for; by default from its headers."""
        return retry_delay(response.headers)

    # --- shared helpers ----------------------------------------------------------------------

    def error_for(self, response: HttpResponse, payload: Any = None) -> ProviderError:
        """The `ProviderError` an error response means."""
        if payload is None:
            payload = decode_json(response.body)
        error = None if payload is NOT_JSON else self.read_error(payload)
        if error is None:
            return self._unreadable_error(response, payload)
        return self.error_from(response.status, error, response, payload)

    def error_from(
        self, status: int, error: ErrorBody, response: HttpResponse, payload: Any
    ) -> ProviderError:
        """A `ProviderError` for `error`, reported with HTTP `status`."""
        cls = self.error_class(status, error)
        return make_error(
            cls,
            error.describe(),
            response,
            provider=self.name,
            secret=self._api_key,
            retry_after_s=self.retry_after(response, payload),
            status=status,
        )

    def embedded_error(self, embedded: Any, response: HttpResponse, payload: Any) -> ProviderError:
        """An error inside a 2xx body (OpenRouter and gateways do this): an error, never an
        answer. Its own numeric `code` is the status when it has one, else 502 (an upstream
        failed behind a gateway that answered)."""
        error = self.read_error(payload) or ErrorBody(body_snippet(response.body, self._api_key))
        code = embedded.get("code") if isinstance(embedded, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else 502
        return self.error_from(status, error, response, payload)

    def _unreadable_error(self, response: HttpResponse, payload: Any) -> ProviderError:
        # Statuses that mean the same whatever the body: a gateway's bare 429 is still a rate
        # limit, a bare 401 still a bad key. Anything else unreadable is a protocol error.
        cls = class_for_status(response.status)
        if cls in (RateLimitedError, AuthError):
            return make_error(
                cls,
                body_snippet(response.body, self._api_key),
                response,
                provider=self.name,
                secret=self._api_key,
                retry_after_s=self.retry_after(response, payload),
            )
        what = "error body is not JSON" if payload is NOT_JSON else "unrecognised error body"
        return self.protocol_error(what, response)

    def protocol_error(self, why: str, response: HttpResponse) -> ProtocolError:
        return protocol_error(why, response, provider=self.name, secret=self._api_key)

    def rate_limits(self, response: HttpResponse) -> RateLimitSnapshot:
        """The provider's rate-limit headers on `response`."""
        return parse_rate_limits(response.headers)


def _with_reference(call: HttpCall, reference: str) -> HttpCall:
    """`call` with the sample's reference in the simulator's header (simulated providers only;
    a reference too long for a header is left out and the simulator answers by its rules)."""
    from evalcluster.simulator.reference import REFERENCE_HEADER, encode_reference

    value = encode_reference(reference)
    if value is None:
        return call
    return replace(call, headers={**call.headers, REFERENCE_HEADER: value})


def _client_policy(name: str, config: ProviderConfig) -> NetworkPolicy:
    try:
        return NetworkPolicy.for_config(config)
    except ValueError as exc:
        raise SpecError(
            f"provider {name!r}: bad client_networks ({exc})",
            field=f"providers.{name}.client_networks",
        ) from None


def estimated_usage(request: CompletionRequest, text: str) -> Usage:
    """Usage counted by us when the provider reported none (`estimated=True`)."""
    return Usage(estimate_input_tokens(request), estimate_tokens(text), estimated=True)
