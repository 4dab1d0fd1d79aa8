"""Both HTTP transports over real HTTP to a local aiohttp server; MockTransport as a seam."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from evalcluster.errors import ProviderConnectionError, ProviderTimeoutError
from evalcluster.providers.transport import (
    AiohttpTransport,
    HttpRequest,
    HttpResponse,
    MockTransport,
    PyreqwestTransport,
    Transport,
)

pytestmark = pytest.mark.anyio

CLIENTS = [PyreqwestTransport, AiohttpTransport]
each_client = pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {"method": request.method, "headers": dict(request.headers), "body": body.decode()},
        headers={"X-Mixed-Case": "yes"},
    )


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response({})


async def _drop(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(1)
    return web.json_response({})


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/echo")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/drop", _drop)
    app.router.add_get("/redirect", _redirect)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@each_client
async def test_post_json_round_trip(server: str, client: type[Transport]) -> None:
    transport = client(max_connections=4)
    try:
        response = await transport.post_json(
            f"{server}/echo", {"Authorization": "Bearer k"}, {"a": [1, 2]}, timeout_s=5
        )
    finally:
        await transport.aclose()
    assert response.status == 200
    echoed = json.loads(response.body)
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"a": [1, 2]}
    assert echoed["headers"]["Content-Type"] == "application/json"
    assert echoed["headers"]["Authorization"] == "Bearer k"
    # Header names come back lower-cased, whatever the server's spelling.
    assert response.header("X-Mixed-Case") == "yes" and "x-mixed-case" in response.headers


@each_client
async def test_get_sends_no_body(server: str, client: type[Transport]) -> None:
    transport = client()
    try:
        response = await transport.get(f"{server}/echo", {}, timeout_s=5)
    finally:
        await transport.aclose()
    assert json.loads(response.body)["method"] == "GET"
    assert json.loads(response.body)["body"] == ""


@each_client
async def test_timeout_maps_to_provider_timeout_error(server: str, client: type[Transport]) -> None:
    transport = client()
    try:
        with pytest.raises(ProviderTimeoutError, match="0.2s"):
            await transport.get(f"{server}/slow", {}, timeout_s=0.2)
    finally:
        await transport.aclose()


@each_client
async def test_dropped_connection_maps_to_connection_error(
    server: str, client: type[Transport]
) -> None:
    transport = client()
    try:
        with pytest.raises(ProviderConnectionError):
            await transport.get(f"{server}/drop", {}, timeout_s=5)
    finally:
        await transport.aclose()


@each_client
async def test_refused_connection_maps_to_connection_error(client: type[Transport]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = client()
    try:
        with pytest.raises(ProviderConnectionError, match="connection failed"):
            await transport.get(f"http://127.0.0.1:{port}/", {}, timeout_s=5)
    finally:
        await transport.aclose()


@each_client
async def test_redirects_are_not_followed(server: str, client: type[Transport]) -> None:
    transport = client()
    try:
        response = await transport.get(f"{server}/redirect", {}, timeout_s=5)
    finally:
        await transport.aclose()
    assert response.status == 302
    assert response.header("location") == "/echo"


async def test_session_is_pooled_and_reopens_after_close(server: str) -> None:
    transport = AiohttpTransport(max_connections=2)
    assert transport._session is None  # created lazily, inside the running loop
    try:
        await asyncio.gather(*(transport.get(f"{server}/echo", {}, 5) for _ in range(10)))
        session = transport._session
        assert session is not None and session.connector is not None
        assert session.connector.limit == 2
        await transport.aclose()
        assert session.closed
        assert (await transport.get(f"{server}/echo", {}, 5)).status == 200
    finally:
        await transport.aclose()


async def test_mock_transport_records_requests_and_accepts_async_handlers() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(201, {}, json.dumps(request.json()).encode())

    transport = MockTransport(handler)
    response = await transport.post_json("http://x/y", {"h": "v"}, {"q": 1}, timeout_s=3)
    assert response.status == 201 and json.loads(response.body) == {"q": 1}
    (request,) = transport.requests
    assert (request.method, request.url, request.timeout_s) == ("POST", "http://x/y", 3)
    assert request.headers["h"] == "v"


async def test_mock_transport_handler_can_act_out_network_failures() -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        raise ProviderTimeoutError("simulated")

    with pytest.raises(ProviderTimeoutError):
        await MockTransport(handler).get("http://x/", {}, timeout_s=1)


async def test_many_requests_through_a_small_pool_to_the_simulator(sim, api_key: str) -> None:
    """200 concurrent calls through an adapter whose pool holds 8 connections all succeed."""
    from evalcluster.providers import build_adapter
    from evalcluster.suite.models import ProviderConfig

    from .conftest import ask

    config = ProviderConfig(kind="openai", base_url=sim.url + "/v1",
                            api_key_env="EVALCLUSTER_TEST_KEY", max_concurrency=8)  # fmt: skip
    adapter = build_adapter("pool", config)
    try:
        results = await asyncio.gather(
            *(adapter.complete(ask(f"What is {i} + 1?")) for i in range(200))
        )
    finally:
        await adapter.aclose()
    assert [r.text for r in results] == [str(i + 1) for i in range(200)]


@each_client
async def test_connection_errors_never_repeat_the_url(client: type[Transport]) -> None:
    # A custom endpoint may carry its key in the query string; error text reaches Parquet.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = client()
    try:
        with pytest.raises(ProviderConnectionError) as caught:
            await transport.get(f"http://127.0.0.1:{port}/v1?key=sk-secret-123", {}, timeout_s=5)
    finally:
        await transport.aclose()
    assert "sk-secret-123" not in str(caught.value)


async def test_pyreqwest_client_is_made_lazily_and_reopens_after_close(server: str) -> None:
    transport = PyreqwestTransport(max_connections=2)
    assert transport._client is None  # created lazily, inside the running loop
    try:
        responses = await asyncio.gather(
            *(transport.get(f"{server}/echo", {}, 5) for _ in range(10))
        )
        assert {r.status for r in responses} == {200}
        await transport.aclose()
        assert transport._client is None
        assert (await transport.get(f"{server}/echo", {}, 5)).status == 200
    finally:
        await transport.aclose()
