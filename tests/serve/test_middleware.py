"""Body size limit and the last-resort error guard, over real HTTP against uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from evalcluster.serve.errors import install_error_handlers
from evalcluster.serve.middleware import BodySizeLimit, ErrorGuard

from .conftest import free_port

LIMIT = 1000
UPLOAD_LIMIT = 3000


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(ErrorGuard)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT, limits={"post /upload": UPLOAD_LIMIT})

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.api_route("/upload", methods=["POST", "PUT"])
    async def upload(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("a bug, with a secret sk-abc in its message")

    return app


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(), host="127.0.0.1", port=port, log_level="critical", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_body_at_the_limit_passes(url):
    response = httpx.post(f"{url}/echo", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


def test_a_declared_length_over_the_limit_is_refused_before_reading(url):
    response = httpx.post(f"{url}/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert str(LIMIT) in response.json()["detail"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(url):
    def chunks():
        for _ in range(5):
            yield b"y" * 300

    response = httpx.post(f"{url}/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_small_chunked_body_passes(url):
    response = httpx.post(f"{url}/echo", content=iter([b"a" * 100, b"b" * 100]))
    assert response.json() == {"size": 200}


def test_an_unexpected_exception_is_a_logged_503_without_its_message(url, caplog):
    with caplog.at_level("ERROR", logger="evalcluster.serve"):
        response = httpx.get(f"{url}/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "sk-abc" not in response.text
    assert any("unexpected error on GET /boom" in r.getMessage() for r in caplog.records)


def test_unknown_routes_and_methods_keep_the_error_shape(url):
    missing = httpx.get(f"{url}/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = httpx.get(f"{url}/echo")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_a_path_with_its_own_limit_takes_bodies_up_to_it(url):
    response = httpx.post(f"{url}/upload", content=b"x" * UPLOAD_LIMIT)
    assert response.json() == {"size": UPLOAD_LIMIT}
    chunked = httpx.post(f"{url}/upload", content=iter([b"y" * 1000] * 3))
    assert chunked.json() == {"size": UPLOAD_LIMIT}


def test_a_path_with_its_own_limit_refuses_bodies_over_it_naming_it(url):
    declared = httpx.post(f"{url}/upload", content=b"x" * (UPLOAD_LIMIT + 1))
    assert declared.status_code == 413
    assert str(UPLOAD_LIMIT) in declared.json()["detail"]
    chunked = httpx.post(f"{url}/upload", content=iter([b"y" * 1000] * 4))
    assert chunked.status_code == 413
    assert str(UPLOAD_LIMIT) in chunked.json()["detail"]


def test_the_override_is_per_method_and_exact_path(url):
    other_method = httpx.put(f"{url}/upload", content=b"x" * (LIMIT + 1))
    assert other_method.status_code == 413
    assert str(LIMIT) in other_method.json()["detail"]
    elsewhere = httpx.post(f"{url}/echo", content=b"x" * (LIMIT + 1))
    assert elsewhere.status_code == 413


def test_limit_for_strips_the_root_path():
    limiter = BodySizeLimit(None, max_bytes=10, limits={"POST /v1/datasets": 99})  # type: ignore[arg-type]
    scope = {"method": "POST", "path": "/api/v1/datasets", "root_path": "/api"}
    assert limiter.limit_for(scope) == 99
    assert limiter.limit_for({"method": "POST", "path": "/v1/datasets"}) == 99
    assert limiter.limit_for({"method": "GET", "path": "/v1/datasets"}) == 10
    assert limiter.limit_for({"method": "POST", "path": "/v1/datasets/x"}) == 10
    with pytest.raises(ValueError):
        BodySizeLimit(None, max_bytes=10, limits={"/v1/datasets": 99})  # type: ignore[arg-type]
