"""The simulator's aiohttp application and the order in which a request is judged.

A provider request goes through, in order: API key (checked only when the config lists
``api_keys``; without a list any key, or none, is accepted) -> required headers -> JSON body ->
``x-sim-*`` and ``x-evalcluster-reference`` headers -> body validation -> forced outcome (skips
limits and faults) -> context window -> rpm/tpm limiter (answers 429 at once) -> injected
fault -> latency -> answer. Admin routes: ``GET /healthz``, ``GET /stats``,
``POST /stats/reset``, ``GET|POST /admin/config``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from evalcluster.simulator.batch import BatchService
from evalcluster.simulator.config import FORCE_KINDS, SimulatorConfig
from evalcluster.simulator.forcing import Drop, Forced, Hang, forced, retry_headers
from evalcluster.simulator.formats import FORMATS
from evalcluster.simulator.formats.base import (
    ErrorContext,
    HttpReply,
    RequestInvalid,
    SimRequest,
    WireFormat,
)
from evalcluster.simulator.generation import generate, token_charge
from evalcluster.simulator.ratelimit import Admission, RateLimiter
from evalcluster.simulator.reference import REFERENCE_HEADER, decode_reference
from evalcluster.simulator.stats import Stats

MAX_BODY_BYTES = 64 * 1024 * 1024


class _HeaderInvalid(Exception):
    """An ``x-sim-*`` header has a value the simulator does not understand."""


@dataclass(frozen=True, slots=True)
class _Directives:
    """The ``x-sim-*`` request headers, parsed."""

    force: str | None
    retry_after_s: float | None
    thinking_tokens: int
    reference: str | None = None  # x-evalcluster-reference, decoded


class SimulatorServer:
    """Live state of one simulator: its config, limiter, counters and random source."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.stats = Stats()
        self.limiter = RateLimiter(
            config.rpm, config.tpm, config.rate_window_s, mode=config.rate_limiter
        )
        self._rng = random.Random(config.seed)
        self.batches = BatchService(self)

    def reconfigure(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """Apply a partial update. Limits restart only when rpm, tpm or the window change."""
        old, new = self.config, self.config.updated(changes)
        limits = ("rpm", "tpm", "rate_window_s", "rate_limiter")
        if any(getattr(old, k) != getattr(new, k) for k in limits):
            self.limiter = RateLimiter(new.rpm, new.tpm, new.rate_window_s, mode=new.rate_limiter)
        if old.seed != new.seed:
            self._rng = random.Random(new.seed)
        self.config = new
        return new

    def app(self) -> web.Application:
        """The aiohttp application serving every route."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        openai, anthropic, gemini = FORMATS["openai"], FORMATS["anthropic"], FORMATS["gemini"]
        app.router.add_post("/v1/chat/completions", self._route(openai))
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/messages", self._route(anthropic))
        for version in ("v1beta", "v1"):
            app.router.add_post(f"/{version}/models/{{model}}:generateContent", self._route(gemini))
        self.batches.register(app)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset_stats)
        app.router.add_get("/admin/config", self._get_config)
        app.router.add_post("/admin/config", self._post_config)
        return app

    # --- provider routes -------------------------------------------------------------------

    def _route(self, fmt: WireFormat):
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, fmt)

        return handler

    async def _serve(self, request: web.Request, fmt: WireFormat) -> web.StreamResponse:
        self.stats.in_flight += 1
        try:
            action = await self._decide(request, fmt)
            if isinstance(action, Hang):
                await asyncio.sleep(action.seconds)
                action = Drop()
        finally:
            self.stats.in_flight -= 1
        if isinstance(action, Drop):
            return _drop(request)
        headers = fmt.limit_headers(self.limiter.requests_state(), self.limiter.tokens_state())
        headers.update(action.headers)
        should_retry = request.headers.get("x-sim-should-retry")
        if should_retry is not None:
            headers["x-should-retry"] = should_retry.strip().lower()
        return web.Response(
            status=action.status,
            body=action.body,
            headers=headers,
            content_type=action.content_type,
        )

    async def _decide(self, request: web.Request, fmt: WireFormat) -> HttpReply | Hang | Drop:
        """Everything but sending: the reply, or how to not reply. Records the outcome."""
        config = self.config
        record = self.stats.record
        raw = await request.read()
        auth = self._check_auth(request, fmt, config)
        if auth is not None:
            record(fmt.name, "auth")
            return auth
        missing = fmt.header_error(request)
        if missing is not None:
            record(fmt.name, "bad_request")
            return missing
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            record(fmt.name, "bad_request")
            message = "We could not parse the JSON body of your request."
            return fmt.error("bad_request", ErrorContext(message=message))
        try:
            directives = _directives(request, config)
        except _HeaderInvalid as exc:
            record(fmt.name, "bad_request")
            return fmt.error("bad_request", ErrorContext(message=str(exc)))
        try:
            sim = fmt.parse(body, request)
        except RequestInvalid as exc:
            record(fmt.name, "bad_request")
            return fmt.error("bad_request", ErrorContext(message=exc.message, param=exc.param))
        if directives.reference is not None:
            sim = replace(sim, reference=directives.reference)
        result = generate(sim, config, directives.thinking_tokens)
        if directives.force is not None:
            outcome = forced(directives.force, fmt, sim, result, config, directives.retry_after_s)
            return await self._carry_out(fmt, f"forced_{directives.force}", outcome, config)
        if config.context_window is not None and sim.input_tokens > config.context_window:
            record(fmt.name, "context_length")
            ctx = ErrorContext(
                model=sim.model,
                input_tokens=sim.input_tokens,
                context_window=config.context_window,
            )
            return fmt.error("context_length", ctx)
        charge = token_charge(sim, result)
        admission = self.limiter.try_acquire(charge)
        if not admission.admitted:
            record(fmt.name, "rate_limited")
            return _rate_limited(fmt, sim, admission, config, charge)
        fault = self._draw_fault(config)
        ctx = ErrorContext(model=sim.model, input_tokens=sim.input_tokens)
        if fault == "error_500":
            outcome = Forced(fmt.error("server_error", ctx))
        elif fault == "error_503":
            outcome = Forced(fmt.error("unavailable", ctx))
        elif fault == "timeout":
            outcome = Forced(Hang(config.hang_s))
        elif fault == "dropped":
            outcome = Forced(Drop())
        else:
            answer = fmt.success(sim, result)
            # The vendors' prompt caches, shared with the batch routes as the vendors' are.
            use = self.batches.cache.annotate(
                fmt.name, body, sim.model, answer, config.cache_ttl_s, config.cache_min_tokens
            )
            self.stats.cached_tokens += use.read
            reply = HttpReply.json(200, answer)
            outcome = Forced(reply, result.input_tokens, result.output_tokens)
            fault = "ok"
        return await self._carry_out(fmt, fault, outcome, config)

    async def _carry_out(
        self, fmt: WireFormat, name: str, outcome: Forced, config: SimulatorConfig
    ) -> HttpReply | Hang | Drop:
        """Record `outcome` under `name`, then wait the configured latency unless it hangs."""
        self.stats.record(fmt.name, name, outcome.tokens_in, outcome.tokens_out)
        if not isinstance(outcome.action, Hang):
            delay_ms = config.latency_ms
            if config.jitter_ms:
                delay_ms += self._rng.uniform(0.0, config.jitter_ms)
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
        return outcome.action

    def _check_auth(
        self, request: web.Request, fmt: WireFormat, config: SimulatorConfig
    ) -> HttpReply | None:
        """An error reply when `config.api_keys` is set and the request carries none of them.
        Without a key list the simulator is open: any key, or none (a `kind: local` provider
        sends no Authorization header unless it has a key), is accepted."""
        if config.api_keys is None:
            return None
        key = fmt.api_key(request)
        if key is None:
            return fmt.error("auth_missing", ErrorContext())
        # Compare every key in constant time so timing reveals nothing about them.
        matches = [hmac.compare_digest(key.encode(), k.encode()) for k in config.api_keys]
        if not any(matches):
            return fmt.error("auth_invalid", ErrorContext())
        return None

    def _draw_fault(self, config: SimulatorConfig) -> str | None:
        rates = config.fault_rates()
        if not any(rates):
            return None
        u = self._rng.random()
        for name, rate in zip(("error_500", "error_503", "timeout", "dropped"), rates, strict=True):
            if u < rate:
                return name
            u -= rate
        return None

    async def _models(self, request: web.Request) -> web.Response:
        fmt = FORMATS["openai"]
        auth = self._check_auth(request, fmt, self.config)
        if auth is not None:
            return web.Response(status=auth.status, body=auth.body, content_type="application/json")
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "evalcluster-sim"}
            for m in self.config.models
        ]
        return web.json_response({"object": "list", "data": data})

    # --- admin routes ----------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats.snapshot(), "batches": self.batches.snapshot()})

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.stats.reset()
        self.batches.reset()
        return web.json_response(self.stats.snapshot())

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config.public_dump())

    async def _post_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            config = self.reconfigure(changes)
        except ValidationError as exc:
            # include_input=False: a rejected api_keys value must not be echoed back.
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            ]
            return web.json_response({"error": "; ".join(problems)}, status=400)
        return web.json_response(config.public_dump())


def _directives(request: web.Request, config: SimulatorConfig) -> _Directives:
    force = request.headers.get("x-sim-force")
    if force is not None:
        force = force.strip().lower()
        if force not in FORCE_KINDS:
            raise _HeaderInvalid(f"x-sim-force must be one of {', '.join(FORCE_KINDS)}")
    retry_after = _number_header(request, "x-sim-retry-after", float)
    thinking = _number_header(request, "x-sim-thinking-tokens", int)
    reference = request.headers.get(REFERENCE_HEADER)
    if reference is not None:
        try:
            reference = decode_reference(reference)
        except ValueError:
            raise _HeaderInvalid(f"{REFERENCE_HEADER} must be percent-encoded UTF-8") from None
    return _Directives(
        force=force if force is not None else config.force,
        retry_after_s=retry_after,
        thinking_tokens=int(thinking or 0),
        reference=reference,
    )


def _number_header(request: web.Request, name: str, kind: type) -> float | int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = kind(raw.strip())
    except ValueError:
        raise _HeaderInvalid(f"{name} must be a non-negative number") from None
    if not math.isfinite(value) or value < 0:
        raise _HeaderInvalid(f"{name} must be a non-negative number")
    return value


def _rate_limited(
    fmt: WireFormat,
    sim: SimRequest,
    admission: Admission,
    config: SimulatorConfig,
    charge: int,
) -> HttpReply:
    limit = config.tpm if admission.limited_by == "tokens" else config.rpm
    ctx = ErrorContext(
        model=sim.model,
        retry_after_s=admission.retry_after_s,
        limited_by=admission.limited_by,
        limit=limit,
        requested=charge if admission.too_large else None,
        input_tokens=sim.input_tokens,
    )
    reply = fmt.error("rate_limit", ctx)
    reply.headers.update(retry_headers(admission.retry_after_s))
    return reply


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with nothing sent; aiohttp then ignores the unsent response."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)
