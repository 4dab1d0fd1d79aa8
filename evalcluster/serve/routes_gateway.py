"""The OpenAI-compatible gateway's routes: ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /v1/gateway/usage``, and ``POST /v1/messages`` (Anthropic's Messages format, its errors
in Anthropic's shape).

Callers authenticate with their tenant's API key as the bearer token, as on every `/v1` route,
but every error of these routes is in OpenAI's shape (`evalcluster.gateway.errors`), so the
official SDKs raise their own exception types. Calling a model needs the runner role. The call
itself is `evalcluster.gateway.calls.Gateway`'s; this module reads the body, answers, and logs
one row per call.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from evalcluster.gateway.anthropic_wire import (
    message_body,
    message_events,
    new_message_id,
    parse_messages_request,
)
from evalcluster.gateway.calls import DISCONNECTED, Caller, Gateway, Outcome
from evalcluster.gateway.errors import GatewayError
from evalcluster.gateway.rows import day_of, now
from evalcluster.gateway.wire import (
    ChatRequest,
    completion_body,
    completion_chunks,
    new_completion_id,
    parse_chat_request,
)
from evalcluster.serve.auth import AuthResult, Principal, bearer_token
from evalcluster.serve.context import ServiceContext
from evalcluster.serve.middleware import BodyTooLargeError

CACHE_HEADER = "x-evalcluster-cache"
router = APIRouter(tags=["gateway"])


def install_gateway(app: FastAPI) -> None:
    """Add the routes, the OpenAI-shaped error answers and the row flush at shutdown."""
    app.include_router(router)
    app.add_exception_handler(GatewayError, _gateway_error)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            yield state
        gateway = getattr(app_.state, "gateway", None)
        if gateway is not None:
            await gateway.close()

    app.router.lifespan_context = lifespan


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return exc.response()


def _gateway(request: Request) -> Gateway:
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        context: ServiceContext = request.app.state.context
        settings = context.settings
        gateway = Gateway(
            settings.gateway,
            settings.registry,
            context.store,
            settings.store_uri,
            settings.endpoint_url,
        )
        request.app.state.gateway = gateway
    return gateway


def _principal(request: Request, token: str | None = None) -> Principal:
    """The caller (by `token`, else the bearer token), or a 401 (a missing and a wrong key
    alike)."""
    keys = request.app.state.context.settings.api_keys
    found = keys.identify(token or bearer_token(request.headers.get("authorization")))
    if found is AuthResult.MISSING:
        raise GatewayError(
            401,
            "You didn't provide an API key. Send 'Authorization: Bearer <key>' "
            "(or, on /v1/messages, 'x-api-key: <key>').",
            code="missing_api_key",
        )
    if found is AuthResult.WRONG:
        raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    assert isinstance(found, Principal)
    request.state.principal = found
    return found


def _caller(principal: Principal) -> Caller:
    quotas = principal.quotas
    return Caller(
        tenant=principal.tenant,
        key_id=principal.key_id,
        weight=quotas.gateway_weight,
        budget_usd_per_day=quotas.gateway_budget_usd_per_day,
        routes=quotas.gateway_routes,
    )


@router.get("/v1/models", summary="The gateway's routes this tenant may call")
async def list_models(request: Request) -> dict[str, Any]:
    """OpenAI's model list: one entry per route (`id` is what to send as `model`)."""
    caller = _caller(_principal(request))
    routes = _gateway(request).routes_for(caller)
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": route.provider}
            for name, route in routes.items()
        ],
    }


@router.post("/v1/chat/completions", summary="OpenAI Chat Completions through the gateway")
async def chat_completions(request: Request) -> Any:
    """A chat completion through the route's provider actor, streamed as server-sent events
    when the body says `"stream": true`."""
    principal = _runner(_principal(request))
    chat = parse_chat_request(await _json_body(request))
    return await _answer(request, principal, chat, "openai")


@router.post("/v1/messages", summary="Anthropic Messages through the gateway")
async def messages(request: Request) -> Any:
    """The same call as `/v1/chat/completions` in Anthropic's Messages format (the key in
    ``x-api-key`` or as the bearer token); every error in Anthropic's shape."""
    try:
        token = request.headers.get("x-api-key", "").strip() or None
        principal = _runner(_principal(request, token))
        chat = parse_messages_request(await _json_body(request))
    except GatewayError as exc:
        return exc.response("anthropic")
    return await _answer(request, principal, chat, "anthropic")


async def _answer(
    request: Request, principal: Principal, chat: ChatRequest, shape: Literal["openai", "anthropic"]
) -> Response:
    """Make the call and answer it in `shape`'s wire format: its error (with the call's
    headers), its body, or (`"stream": true`) its server-sent events."""
    outcome, headers = await _complete(request, principal, chat)
    if outcome.error is not None:
        response = outcome.error.response(shape)
        response.headers.update(headers)
        return response
    completion, model = outcome.completion, chat.model
    assert completion is not None
    if shape == "anthropic":
        message_id = new_message_id()
        if not chat.stream:
            return JSONResponse(message_body(completion, model, message_id), headers=headers)
        events = _named_events(message_events(completion, model, message_id))
    else:
        completion_id = new_completion_id()
        if not chat.stream:
            return JSONResponse(completion_body(completion, model, completion_id), headers=headers)
        events = _events(completion_chunks(completion, model, completion_id, chat.include_usage))
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def _runner(principal: Principal) -> Principal:
    if not principal.can("runner"):
        raise GatewayError(
            403,
            f"calling a model needs the runner role; tenant {principal.tenant!r} is "
            f"{principal.role}",
            code="insufficient_role",
        )
    return principal


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except BodyTooLargeError as exc:  # a chunked body past the limit: answered in our shape
        raise GatewayError(413, str(exc.detail), code="payload_too_large") from None
    except ValueError:
        raise GatewayError(400, "the request body is not valid JSON", param=None) from None


async def _complete(
    request: Request, principal: Principal, chat: ChatRequest
) -> tuple[Outcome, dict[str, str]]:
    """Make the call, log its row, and give the outcome with the answer's headers."""
    caller = _caller(principal)
    gateway = _gateway(request)
    use_cache = request.headers.get(CACHE_HEADER, "").strip().lower() == "use"
    request_id, from_serve = _request_id()
    started = time.perf_counter()
    outcome = Outcome(chat.model)
    try:
        await gateway.complete(caller, chat, use_cache=use_cache, outcome=outcome)
    except asyncio.CancelledError:
        gateway.record(caller, _row(outcome, request_id, caller, chat.stream, started, 499))
        raise
    status = outcome.error.status if outcome.error else 200
    gateway.record(caller, _row(outcome, request_id, caller, chat.stream, started, status))
    headers: dict[str, str] = (
        {} if from_serve else {"x-request-id": request_id}
    )  # Serve sends its own
    if use_cache and outcome.error is None:
        headers[CACHE_HEADER] = "hit" if outcome.cache_hit else "miss"
    return outcome, headers


def _request_id() -> tuple[str, bool]:
    """Serve's id of this request (the ``x-request-id`` Serve puts on the answer, which a
    client may have chosen) and True, else a new one and False."""
    try:
        from ray.serve.context import _get_serve_request_context

        found = _get_serve_request_context().request_id
    except Exception:  # noqa: BLE001 - outside Serve (the app alone, in tests)
        found = ""
    if found and len(found) <= 128 and found.isprintable():
        return found, True
    return uuid.uuid4().hex, False


async def _events(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _named_events(events: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
    for name, data in events:
        payload = json.dumps(data, separators=(",", ":")).encode()
        yield b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def _row(
    outcome: Outcome, request_id: str, caller: Caller, stream: bool, started: float, status: int
) -> dict[str, Any]:
    completion = outcome.completion
    error = outcome.error
    return {
        "request_id": request_id,
        "key_id": caller.key_id,
        "model": outcome.route,
        "provider": outcome.provider,
        "provider_model": outcome.provider_model,
        "served_by": outcome.served_by,
        "stream": stream,
        "status": status,
        "input_tokens": completion.usage.input_tokens if completion else 0,
        "output_tokens": completion.usage.output_tokens if completion else 0,
        "cost_usd": outcome.cost_usd,
        "latency_ms": (time.perf_counter() - started) * 1000,
        "attempts": outcome.attempts,
        "cache_hit": outcome.cache_hit,
        "finish_reason": str(completion.finish_reason) if completion else None,
        "tool_calls": len(completion.tool_calls) if completion else 0,
        "error_kind": error.error_kind if error else (DISCONNECTED if status == 499 else None),
        "error": error.message[:500] if error else None,
        "finished_at": now(),
    }


@router.get("/v1/gateway/usage", summary="Spend through the gateway per tenant and route")
async def gateway_usage(
    request: Request,
    tenant: str | None = Query(None, description="Admins: one tenant (default: all)."),
    day: str | None = Query(None, description="A UTC day, yyyy-mm-dd (default: every day)."),
) -> dict[str, Any]:
    """A tenant sees its own spend; an admin every tenant's (or `?tenant=`)."""
    principal = _principal(request)
    if not principal.is_admin:
        if tenant not in (None, principal.tenant):
            raise GatewayError(404, f"no tenant {tenant!r}", param="tenant")
        tenant = principal.tenant
    gateway = _gateway(request)
    entries = await gateway.spend.ledger.usage.remote(tenant, day)
    today = day_of(now())
    body: dict[str, Any] = {"object": "list", "data": entries, "day": today}
    if not principal.is_admin:
        quotas = principal.quotas
        body["budget_usd_per_day"] = quotas.gateway_budget_usd_per_day
        body["spent_today_usd"] = round(sum(e["cost_usd"] for e in entries if e["day"] == today), 9)
    return body
