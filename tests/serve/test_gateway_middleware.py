"""The service middleware's own answers (413 from BodySizeLimit, 503 from ErrorGuard) in the
error shape of the gateway route asked for: OpenAI's, Anthropic's, or the service's own. (A
chunked body that passes the limit is tested on the real service, test_gateway_anthropic.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from evalcluster.serve.middleware import BodySizeLimit, ErrorGuard

PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/suites")


async def _broken(request: Request) -> Any:
    await request.body()
    raise RuntimeError("a bug in a route")


def _app() -> Any:
    """The two middlewares in the service's order (`serve/app.py`): the size limit outermost,
    the guard inside Starlette's own last resort."""
    routes = [Route(p, _broken, methods=["POST"]) for p in PATHS]
    middleware = [Middleware(BodySizeLimit, max_bytes=1000), Middleware(ErrorGuard)]
    return Starlette(routes=routes, middleware=middleware)


def _post(path: str, content: Any, root_path: str = "") -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app(), root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post(root_path + path, content=content)

    return asyncio.run(main())


def _shape(answer: httpx.Response) -> str:
    body = answer.json()
    if body.get("type") == "error":
        assert set(body["error"]) == {"type", "message"}
        return "anthropic"
    if isinstance(body.get("error"), dict):
        assert set(body["error"]) == {"message", "type", "code", "param"}
        return "openai"
    assert isinstance(body["error"], str) and "detail" in body
    return "service"


SHAPES = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/v1/suites": "service"}


@pytest.mark.parametrize("path", PATHS)
def test_unexpected_error_is_503_in_the_routes_shape(path: str) -> None:
    answer = _post(path, b"{}")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert _shape(answer) == SHAPES[path]
    body = answer.json()
    if SHAPES[path] == "openai":
        assert body["error"]["type"] == "server_error" and body["error"]["code"] == "unavailable"
    if SHAPES[path] == "anthropic":
        assert body["error"]["type"] == "api_error"


@pytest.mark.parametrize("path", PATHS)
def test_declared_too_large_body_is_413_in_the_routes_shape(path: str) -> None:
    answer = _post(path, b"x" * 2000)
    assert answer.status_code == 413
    assert _shape(answer) == SHAPES[path]
    if SHAPES[path] == "anthropic":
        assert answer.json()["error"]["type"] == "request_too_large"
    if SHAPES[path] == "openai":
        assert answer.json()["error"]["code"] == "payload_too_large"


def test_the_shape_follows_the_path_below_the_root_path() -> None:
    answer = _post("/v1/messages", b"x" * 2000, root_path="/gw")
    assert answer.status_code == 413 and _shape(answer) == "anthropic"
