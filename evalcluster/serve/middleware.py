"""ASGI middleware: the request body size limit and the last-resort error guard."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalcluster.gateway.errors import GatewayError, error_shape
from evalcluster.serve.errors import RETRY_AFTER_S, error_body

log = logging.getLogger("evalcluster.serve")


class BodyTooLargeError(HTTPException):
    """The streamed body passed the limit although Content-Length did not say so.

    An HTTPException, so FastAPI's body parsing re-raises it as it is (it turns other errors
    from `receive` into 400) and the error handlers answer 413.
    """

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Send a whole JSON answer on a raw ASGI connection."""
    data = json.dumps(body, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class BodySizeLimit:
    """413 for bodies over the limit: by Content-Length up front, else while streaming.

    A chunked upload has no Content-Length, so the bytes received are counted too and the
    request is cut off as soon as it passes the limit, before the body is buffered whole.
    The limit is `max_bytes`, except for the requests named in `limits`: ``"METHOD /path"``
    (the exact path, without the app's root path) to its own limit, e.g. the dataset upload
    route, ``{"POST /v1/datasets": max_upload_bytes}``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, limits: Mapping[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.limits = {_limit_key(k): v for k, v in (limits or {}).items()}

    def limit_for(self, scope: Scope) -> int:
        """The body limit of the request `scope` describes."""
        if not self.limits:
            return self.max_bytes
        method = str(scope.get("method", "")).upper()
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", "") or "")
        found = self.limits.get(f"{method} {path}")
        if found is None and root and path.startswith(root):
            found = self.limits.get(f"{method} {path[len(root) :] or '/'}")
        return self.max_bytes if found is None else found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared == -1:
            await send_json(send, 400, error_body("bad_request", "invalid Content-Length header"))
            return
        if declared is not None and declared > limit:
            await send_json(send, 413, _too_large(limit, scope))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await send_json(send, 413, _too_large(limit, scope))


def _too_large(limit: int, scope: Scope) -> dict[str, Any]:
    message = f"request body is larger than {limit} bytes"
    return _shaped(scope, 413, "payload_too_large", message) or error_body(
        "payload_too_large", message
    )


def _shaped(scope: Scope, status: int, code: str, message: str) -> dict[str, Any] | None:
    """The error body in the shape of the gateway route `scope` asks for (OpenAI's or
    Anthropic's, so their SDKs read it), None for the service's other routes."""
    shape = error_shape(str(scope.get("path", "")), str(scope.get("root_path", "") or ""))
    if shape is None:
        return None
    error = GatewayError(status, message, code=code, type="server_error" if status >= 500 else None)
    return error.anthropic_body() if shape == "anthropic" else error.body()


def _limit_key(key: str) -> str:
    method, _, path = key.strip().partition(" ")
    if not method or not path.startswith("/"):
        raise ValueError(f"a body limit is keyed 'METHOD /path', not {key!r}")
    return f"{method.upper()} {path.strip()}"


class ErrorGuard:
    """Answers 503 (and logs the traceback) for any exception no handler turned into an answer.

    Starlette's own last resort answers 500 and re-raises; this sits inside it, so a bug in a
    route never reaches the client as a 500 or a dropped connection.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BodyTooLargeError:
            raise  # BodySizeLimit, outside this guard, answers it
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                message = "unexpected server error; it has been logged"
                await send_json(
                    send,
                    503,
                    _shaped(scope, 503, "unavailable", message)
                    or error_body("unavailable", message),
                    {"Retry-After": str(RETRY_AFTER_S)},
                )


def _content_length(scope: Scope) -> int | None:
    """The declared body size, None when absent, -1 when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None
