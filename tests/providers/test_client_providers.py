"""Providers defined by a submitted suite (`from_client`): no server-held key, public addresses
only, checked when the adapter is built and again at every connection.

Everything here goes over real HTTP to a canary server on 127.0.0.1 that records what reaches
it; nothing of the network stack is mocked. A test that allows the canary puts 127.0.0.1/32 on
the operator's allow-list, as the service does with its `client_networks`.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from evalcluster.errors import ProviderConnectionError, SpecError
from evalcluster.providers import build_adapter
from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.factory import check_client_provider
from evalcluster.providers.local import LocalAdapter
from evalcluster.providers.netguard import BlockedAddressError, NetworkPolicy
from evalcluster.providers.openai import OpenAIAdapter
from evalcluster.providers.registry import adapter_class
from evalcluster.providers.transport import (
    AiohttpTransport,
    GuardedResolver,
    MockTransport,
    PyreqwestTransport,
)
from evalcluster.suite.models import CustomHttpConfig, ProviderConfig, SimulatorOptions

from .conftest import ask

pytestmark = pytest.mark.anyio

SERVER_SECRETS = {
    "OPENAI_API_KEY": "sk-server-openai-000000000000",
    "ANTHROPIC_API_KEY": "sk-server-anthropic-0000000000",
    "GEMINI_API_KEY": "AIzaServerGemini000000000000",
    "GOOGLE_API_KEY": "AIzaServerGoogle000000000000",
    "OPENROUTER_API_KEY": "sk-server-openrouter-000000000",
    "AWS_SECRET_ACCESS_KEY": "server-aws-secret-0000000000",
}
KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
LOOPBACK = NetworkPolicy.from_cidrs(["127.0.0.1/32"])
ANSWER = {
    "choices": [{"message": {"role": "assistant", "content": "canary"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    "text": "canary",
}


@dataclass
class Canary:
    """An HTTP server on 127.0.0.1 that records every request and answers like OpenAI."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def canary() -> AsyncIterator[Canary]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path": request.path,
                     "headers": {k.lower(): v for k, v in request.headers.items()},
                     "body": await request.read()})  # fmt: skip
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Canary(runner.addresses[0][1], seen)
    finally:
        await runner.cleanup()


@pytest.fixture
def server_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's own keys in its environment, where a vendor SDK would look for them."""
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    return SERVER_SECRETS


def client(kind: str, url: str, **config: Any) -> ProviderConfig:
    """A provider of `kind` at `url` as the service passes on a client's: `from_client`."""
    if kind == "custom":
        config.setdefault(
            "custom",
            CustomHttpConfig(
                url=url + "/generate", text_path="text", body_template={"prompt": "{prompt}"}
            ),
        )
    elif kind == "simulated":
        config.setdefault("simulator", SimulatorOptions(format="openai"))
        config.setdefault("base_url", url + "/v1")
    else:
        config.setdefault("base_url", url + ("/v1" if kind in ("openai", "local") else ""))
    return ProviderConfig(kind=kind, from_client=True, **config)


def assert_no_secret(text: str) -> None:
    for value in SERVER_SECRETS.values():
        assert value not in text


# --- (a) refused at build time; the canary hears nothing ---------------------------------


@pytest.mark.parametrize(
    "kind", ["openai", "anthropic", "gemini", "openrouter", "custom", "local", "simulated"]
)
async def test_a_client_provider_at_loopback_is_refused_at_build(
    kind: str, server_secrets: dict[str, str]
) -> None:
    async with canary() as server:
        with pytest.raises(SpecError) as info:
            build_adapter("mine", client(kind, server.url))
        assert_no_secret(str(info.value))
    assert server.requests == []


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "openrouter", "local"])
async def test_every_http_adapter_checks_the_url_itself(kind: str) -> None:
    # Keyed kinds never get past build_adapter's key rule; the adapter still guards its URL.
    cls = adapter_class(kind)
    assert issubclass(cls, HttpAdapter)
    async with canary() as server:
        with pytest.raises(SpecError, match="public") as info:
            cls("mine", client(kind, server.url))
        assert info.value.field == "providers.mine.base_url"
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://localhost:{port}/v1", "http://127.0.0.1:{port}/v1", "http://[::1]:{port}/v1",
     "http://[::ffff:127.0.0.1]:{port}/v1", "http://2130706433:{port}/v1",
     "http://0x7f.1:{port}/v1", "http://127.1:{port}/v1", "http://0177.0.0.1:{port}/v1",
     "http://0.0.0.0:{port}/v1", "http://[::]:{port}/v1", "http://169.254.169.254/v1",
     "http://metadata.google.internal/v1", "http://10.0.0.1/v1", "http://100.64.0.1/v1",
     "http://[fd00::1]/v1", "http://[64:ff9b::7f00:1]/v1", "http://[2002:7f00:1::]/v1"],
)  # fmt: skip
async def test_d_loopback_spellings_are_refused_at_build(url: str) -> None:
    async with canary() as server:
        config = ProviderConfig(kind="local", base_url=url.format(port=server.port),
                                from_client=True)  # fmt: skip
        with pytest.raises(SpecError, match="public"):
            build_adapter("mine", config)
    assert server.requests == []


async def test_allow_private_network_on_an_operator_provider_is_not_a_client_loophole() -> None:
    # The flag only ever loosens the operator check; on a client provider it is an error.
    with pytest.raises(SpecError) as info:
        build_adapter("mine", client("local", "http://127.0.0.1:9", allow_private_network=True))
    assert info.value.field == "providers.mine.allow_private_network"


# --- (b) allowed by the operator: reached, and without any key -----------------------------


@pytest.mark.parametrize("kind", ["local", "custom", "simulated"])
async def test_b_an_allowed_client_provider_reaches_it_without_any_key(
    kind: str, server_secrets: dict[str, str]
) -> None:
    async with canary() as server:
        adapter = build_adapter("mine", client(kind, server.url), network_policy=LOOPBACK)
        assert isinstance(adapter, HttpAdapter)
        assert isinstance(adapter.transport, AiohttpTransport) and adapter.transport.confined
        try:
            completion = await adapter.complete(ask())
        finally:
            await adapter.aclose()
    assert completion.text == "canary"
    [request] = server.requests
    for name in KEY_HEADERS:
        assert name not in request["headers"] or kind == "simulated"
    assert_no_secret(repr(request))


async def test_b_the_allow_list_travels_inside_the_config(server_secrets: dict[str, str]) -> None:
    # What a Ray actor gets: the pickled config, whose client_networks the service set.
    config = client("local", "http://127.0.0.1:9").model_copy(
        update={"client_networks": ["127.0.0.1/32"]}
    )
    async with canary() as server:
        config = pickle.loads(pickle.dumps(config.model_copy(update={"base_url": server.url})))
        adapter = build_adapter("mine", config)
        try:
            assert (await adapter.complete(ask())).text == "canary"
        finally:
            await adapter.aclose()
        assert adapter.network_policy == LOOPBACK
    assert "authorization" not in server.requests[0]["headers"]


async def test_a_bad_client_network_names_the_field() -> None:
    config = client("local", "http://127.0.0.1:9").model_copy(
        update={"client_networks": ["not-a-network"]}
    )
    with pytest.raises(SpecError) as info:
        build_adapter("mine", config)
    assert info.value.field == "providers.mine.client_networks"


# --- (c) DNS rebinding: a public answer at build, loopback at connect ----------------------


class RebindingResolver(ThreadedResolver):
    """aiohttp's own resolver, with 'rebind.test' answering as the attacker's DNS does by the
    time the connection is made: 127.0.0.1 (resolved for real, through getaddrinfo)."""

    asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        results = await super().resolve("127.0.0.1" if host == "rebind.test" else host, port,
                                        family)  # fmt: skip
        return [{**r, "hostname": host} for r in results]  # type: ignore[typeddict-item]


def rebinding(policy: NetworkPolicy) -> AiohttpTransport:
    RebindingResolver.asked = []
    return AiohttpTransport(4, policy=policy, resolver_factory=RebindingResolver)


async def test_c_a_name_rebound_to_loopback_is_refused_at_connect() -> None:
    async with canary() as server:
        url = f"http://rebind.test:{server.port}/v1"
        # At build time the name answered with a public address, so the URL passed.
        NetworkPolicy().check_url(url, provider="mine", field="f",
                                  resolve=lambda host, port: ["93.184.216.34"])  # fmt: skip
        transport = rebinding(NetworkPolicy())
        config = ProviderConfig(kind="local", base_url=url, from_client=True)
        adapter = build_adapter("mine", config, transport=transport)
        try:
            with pytest.raises(ProviderConnectionError, match="rebind.test") as info:
                await adapter.complete(ask())
            # Each new connection asks the resolver again: no cached answer is trusted.
            with pytest.raises(ProviderConnectionError):
                await adapter.complete(ask())
        finally:
            await transport.aclose()
        assert "127.0.0.1" not in str(info.value)  # no internal address is shown
        assert RebindingResolver.asked == ["rebind.test", "rebind.test"]
    assert server.requests == []


async def test_c_the_same_resolver_path_reaches_an_allowed_network() -> None:
    # The control: with 127.0.0.1/32 allowed the very same resolution connects.
    async with canary() as server:
        transport = rebinding(LOOPBACK)
        try:
            response = await transport.get(f"http://rebind.test:{server.port}/x", {}, 5.0)
        finally:
            await transport.aclose()
        assert response.status == 200
        assert RebindingResolver.asked == ["rebind.test"]
    assert len(server.requests) == 1


async def test_the_resolver_keeps_only_allowed_addresses() -> None:
    class Fixed(ThreadedResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                {
                    "hostname": host,
                    "host": a,
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": 0,
                }
                for a in ("127.0.0.1", "8.8.8.8", "10.0.0.1")
            ]

    resolver = GuardedResolver(NetworkPolicy(), Fixed())
    assert [r["host"] for r in await resolver.resolve("mixed.test", 80)] == ["8.8.8.8"]
    with pytest.raises(BlockedAddressError, match="metadata"):
        await resolver.resolve("metadata.google.internal", 80)
    with pytest.raises(BlockedAddressError):  # what getaddrinfo would map onto 127.0.0.1
        await GuardedResolver(LOOPBACK, ThreadedResolver()).resolve("0x7f.1", 80)


async def test_the_socket_factory_is_the_last_gate() -> None:
    # Even behind an unguarded resolver, the connector's socket factory refuses the address.
    async with canary() as server:
        connector = aiohttp.TCPConnector(
            use_dns_cache=False, socket_factory=NetworkPolicy().socket_factory()
        )
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(f"http://localhost:{server.port}/x")
        assert "outside the allowed networks" in str(info.value)
    assert server.requests == []
    make = LOOPBACK.socket_factory()
    make((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))).close()


# --- (d) IP literals at connect time: aiohttp does not resolve them ------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "0x7f.1", "127.1",
     "0177.0.0.1", "0x7f000001", "localhost", "[::1]", "0.0.0.0"],
)  # fmt: skip
async def test_d_a_guarded_transport_refuses_loopback_spellings(host: str) -> None:
    async with canary() as server:
        transport = AiohttpTransport(4, policy=NetworkPolicy())
        try:
            with pytest.raises(ProviderConnectionError, match="refused"):
                await transport.get(f"http://{host}:{server.port}/x", {}, 5.0)
        finally:
            await transport.aclose()
    assert server.requests == []


@pytest.mark.parametrize("host", ["0x7f.1", "0x7f000001", "localhost"])
async def test_d_unguarded_aiohttp_would_reach_the_canary(host: str) -> None:
    # Why the spellings above matter: aiohttp hands them to getaddrinfo, which maps them onto
    # 127.0.0.1 (aiohttp itself refuses the all-digit ones: 2130706433, 127.1).
    async with canary() as server:
        transport = AiohttpTransport(4)
        try:
            assert (await transport.get(f"http://{host}:{server.port}/x", {}, 5.0)).status == 200
        finally:
            await transport.aclose()
    assert len(server.requests) == 1


async def test_d_legacy_spellings_stay_refused_even_when_loopback_is_allowed() -> None:
    async with canary() as server:
        transport = AiohttpTransport(4, policy=LOOPBACK)
        try:
            with pytest.raises(ProviderConnectionError):
                await transport.get(f"http://0x7f.1:{server.port}/x", {}, 5.0)
            ok = await transport.get(f"http://127.0.0.1:{server.port}/x", {}, 5.0)
        finally:
            await transport.aclose()
    assert ok.status == 200 and len(server.requests) == 1


# --- (e) server-held keys and private networks: refused, naming the field ------------------


@pytest.mark.parametrize("kind", ["openai", "local", "custom", "simulated"])
@pytest.mark.parametrize("key_field", ["api_key_env", "api_key_file"])
def test_e_a_server_held_key_is_refused(
    kind: str, key_field: str, server_secrets: dict[str, str], tmp_path
) -> None:
    secret_file = tmp_path / "aws"
    secret_file.write_text(SERVER_SECRETS["AWS_SECRET_ACCESS_KEY"])
    value = "AWS_SECRET_ACCESS_KEY" if key_field == "api_key_env" else str(secret_file)
    config = client(kind, "https://attacker.example", **{key_field: value})
    with pytest.raises(SpecError, match="server-held key") as info:
        build_adapter("mine", config)
    assert info.value.field == f"providers.mine.{key_field}"
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("kind", "field_name"),
    [("openai", "kind"), ("anthropic", "kind"), ("gemini", "kind"), ("openrouter", "kind")],
)
def test_e_a_kind_that_needs_a_key_is_refused_without_the_vendor_variable(
    kind: str, field_name: str, server_secrets: dict[str, str]
) -> None:
    # No api_key_env: an operator provider would read OPENAI_API_KEY & co.; a client one may not.
    with pytest.raises(SpecError, match="needs a key") as info:
        build_adapter("mine", ProviderConfig(kind=kind, from_client=True))
    assert info.value.field == f"providers.mine.{field_name}"
    assert_no_secret(str(info.value))


def test_e_custom_headers_with_the_key_placeholder_are_refused(
    server_secrets: dict[str, str],
) -> None:
    spec = CustomHttpConfig(url="https://attacker.example/x", text_path="t",
                            headers={"X-Key": "{api_key}"})  # fmt: skip
    config = ProviderConfig(kind="custom", custom=spec, from_client=True)
    with pytest.raises(SpecError, match="api_key") as info:
        check_client_provider("mine", config)
    assert info.value.field == "providers.mine.custom.headers"


def test_e_allow_private_network_is_refused() -> None:
    config = client("custom", "https://attacker.example", allow_private_network=True)
    with pytest.raises(SpecError) as info:
        build_adapter("mine", config)
    assert info.value.field == "providers.mine.allow_private_network"


def test_a_public_client_provider_builds_with_a_guarded_transport(
    server_secrets: dict[str, str],
) -> None:
    adapter = build_adapter("mine", client("local", "https://8.8.8.8"))
    assert isinstance(adapter, LocalAdapter) and adapter.api_key is None
    assert isinstance(adapter.transport, AiohttpTransport)
    assert adapter.transport.policy == NetworkPolicy()
    assert repr(adapter.transport) == "AiohttpTransport(max_connections=64, guarded)"


def test_a_client_provider_accepts_only_a_confined_transport() -> None:
    config = client("local", "https://8.8.8.8")
    with pytest.raises(ValueError, match="network policy"):
        build_adapter("mine", config, transport=PyreqwestTransport())
    with pytest.raises(ValueError, match="network policy"):
        build_adapter("mine", config, transport=AiohttpTransport())
    build_adapter("mine", config, transport=MockTransport(lambda r: None))  # type: ignore[arg-type, return-value]
    build_adapter("mine", config, transport=AiohttpTransport(policy=NetworkPolicy()))


# --- (f) operator providers keep today's behaviour -----------------------------------------


async def test_f_an_operator_provider_at_loopback_is_unchanged(
    server_secrets: dict[str, str],
) -> None:
    async with canary() as server:
        config = ProviderConfig(kind="openai", base_url=server.url + "/v1")
        adapter = build_adapter("ops", config)
        assert isinstance(adapter, OpenAIAdapter)
        assert isinstance(adapter.transport, PyreqwestTransport)
        assert adapter.network_policy is None
        try:
            assert (await adapter.complete(ask())).text == "canary"
        finally:
            await adapter.aclose()
    # The operator's provider is meant to carry the operator's key.
    assert (
        server.requests[0]["headers"]["authorization"]
        == "Bearer " + SERVER_SECRETS["OPENAI_API_KEY"]
    )


def test_from_client_survives_pickling() -> None:
    config = pickle.loads(pickle.dumps(client("local", "https://8.8.8.8")))
    assert config.from_client is True
    assert pickle.loads(pickle.dumps(LOOPBACK)) == LOOPBACK
