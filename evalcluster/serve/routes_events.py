"""``WS /v1/runs/{id}/events``: a run's progress, pushed as JSON messages until it ends.

Messages (each a JSON object with a ``type``)::

    {"type": "state", "run": {...}}      first, whatever the run's state (GET /v1/runs/{id})
    {"type": "progress", "run_id", "status", "done", "total", "errors", "cost_usd",
     "targets": {name: {"done", "total", "errors", "cost_usd"}},
     "batches": {"queued", "batches_in_progress", "requests_in_progress", "answered",
                 "retried", "anomalies"} or null}
                                         as samples finish, and as a batching run's batches
                                         move (null: the run batches nothing)
    {"type": "status", "run_id", "status", "message"}              when the status changes
    {"type": "comparison", "run_id", "verdict", "difference", "lower", "upper", ...}
                                         a `compare:` run's latest look (comparison_events.py)
    {"type": "end", "run": {...}}        last, with the final status and metrics; then close 1000

Credentials: ``Authorization: Bearer <key>`` like every ``/v1`` route, or ``?token=<key>`` for
browsers, whose WebSocket API cannot set headers. A refused handshake is an HTTP 401/403/404/429
answer when the server supports WebSocket denial responses (uvicorn and Ray Serve do), else
the socket closes with 4401/4403/4404/4429. 429: the replica's (``max_websockets``) or the
tenant's (``quotas.max_websockets``) event streams are all open; both caps keep streams from
taking every request slot of a replica, so ``/healthz`` and the API keep answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from evalcluster.actors.run import RunHandle, RunSnapshot, get_live_run
from evalcluster.serve.auth import AuthResult, Principal, check_credentials
from evalcluster.serve.comparison_events import ComparisonWatch
from evalcluster.serve.context import ServiceContext
from evalcluster.serve.errors import error_body
from evalcluster.serve.owners import RunOwner, read_owner
from evalcluster.serve.runstatus import (
    RunSources,
    compose_status,
    gather_sources,
    is_terminal,
    is_valid_run_id,
)
from evalcluster.serve.schemas import RunStatusResponse

log = logging.getLogger("evalcluster.serve")

router = APIRouter()
WAIT_FOR_CHANGE_S = 10.0  # the registry's long poll; bounds how late a lost registry is noticed
MIN_INTERVAL_S = 0.1  # at most ~10 progress messages a second, however fast shards report
NOT_LIVE_POLL_S = 0.3  # while the driver starts, before the run is open
_DENIALS = {
    AuthResult.MISSING: (401, 4401, "missing API key"),
    AuthResult.WRONG: (403, 4403, "invalid API key"),
}


@router.websocket("/v1/runs/{run_id}/events")
async def run_events(websocket: WebSocket, run_id: str) -> None:
    ctx: ServiceContext = websocket.app.state.context
    found = check_credentials(
        ctx.settings.api_keys,
        websocket.headers.get("authorization"),
        websocket.query_params.get("token"),
    )
    if isinstance(found, AuthResult):
        status, code, detail = _DENIALS[found]
        await _deny(websocket, status, code, detail)
        return
    principal: Principal = found
    with _stream_slot(ctx, principal) as refusal:
        if refusal is not None:
            await _deny(websocket, 429, 4429, refusal)
            return
        sources = await _visible_sources(ctx, principal, run_id)
        if sources is None:
            await _deny(websocket, 404, 4404, f"no run {run_id!r}")
            return
        await websocket.accept()
        await _serve(websocket, ctx, run_id, sources)


async def _visible_sources(
    ctx: ServiceContext, principal: Principal, run_id: str
) -> RunSources | None:
    if not is_valid_run_id(run_id):
        return None
    owner = await ctx.call(read_owner, ctx.store, run_id)
    if not principal.sees(owner.tenant if owner else None):
        return None
    sources = await gather_sources(ctx, run_id, owner)
    return sources if sources.known else None


@contextlib.contextmanager
def _stream_slot(ctx: ServiceContext, principal: Principal) -> Iterator[str | None]:
    """Holds one of the replica's and the tenant's event-stream slots while the body runs;
    yields why not (a message) when either is full. Counted on the event loop's thread only,
    so no lock is needed."""
    open_now = sum(ctx.websockets.values())
    mine = ctx.websockets.get(principal.tenant, 0)
    if open_now >= ctx.settings.max_websockets:
        yield f"the service has {open_now} event streams open, its limit: try again later"
        return
    if mine >= principal.quotas.max_websockets:
        yield (
            f"tenant {principal.tenant!r} has {mine} event streams open, its limit is "
            f"{principal.quotas.max_websockets}: close one first"
        )
        return
    ctx.websockets[principal.tenant] = mine + 1
    try:
        yield None
    finally:
        ctx.websockets[principal.tenant] -= 1


async def _serve(
    websocket: WebSocket, ctx: ServiceContext, run_id: str, sources: RunSources
) -> None:
    stream = asyncio.create_task(
        _stream(websocket, ctx, run_id, compose_status(sources), sources.owner)
    )
    listener = asyncio.create_task(_until_disconnect(websocket))
    done, pending = await asyncio.wait({stream, listener}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if stream in done and stream.exception() is not None:
        log.error("event stream of run %s failed", run_id, exc_info=stream.exception())
        await _close(websocket, 1011)


async def _stream(
    websocket: WebSocket,
    ctx: ServiceContext,
    run_id: str,
    state: RunStatusResponse,
    owner: RunOwner | None,
) -> None:
    await websocket.send_json({"type": "state", "run": state.model_dump()})
    status, version = state.status, -1
    last_progress: dict[str, Any] | None = None
    comparisons = ComparisonWatch(ctx, run_id)
    while not _ended(state):
        snapshot = await _watch_next(ctx, run_id, version)
        if snapshot is None:  # not started yet, or just ended: ask every source
            state = compose_status(await gather_sources(ctx, run_id, owner))
            if state.status != status:
                status = state.status
                await websocket.send_json(_status_event(run_id, status, state.message))
            if not _ended(state):
                await asyncio.sleep(NOT_LIVE_POLL_S)
            continue
        started = time.monotonic()
        if snapshot.version != version:
            version = snapshot.version
            progress = _progress_event(snapshot)
            if progress != last_progress:  # a version also moves on status-only changes
                last_progress = progress
                await websocket.send_json(progress)
            if (comparison := await comparisons.next_event()) is not None:
                await websocket.send_json(comparison)
        if snapshot.status != status:
            status = snapshot.status
            await websocket.send_json(_status_event(run_id, status, snapshot.message))
        if is_terminal(status):  # the manifest and summary are written before this status
            state = compose_status(await gather_sources(ctx, run_id, owner))
        await asyncio.sleep(max(0.0, MIN_INTERVAL_S - (time.monotonic() - started)))
    await websocket.send_json({"type": "end", "run": state.model_dump()})
    await _close(websocket, 1000)


def _ended(state: RunStatusResponse) -> bool:
    return is_terminal(state.status) or not state.live


class _RunWatch:
    """One long poll of a live run's snapshot per replica, shared by every stream following
    that run: with one poll per stream, 1,000 streams sent the registry (one actor for the
    whole cluster, also taking every shard's progress reports) ~10,000 calls a second and new
    streams waited minutes for their first message (benchmarks/service.py). The poll lasts
    until the run closes in the registry, followed or not: one call at a time per run."""

    def __init__(self, live: RunHandle):
        self.live = live
        self.snapshot: RunSnapshot | None = None
        self.version = -1
        self.closed = False
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        try:
            while True:
                snapshot = await _next_snapshot(self.live, self.version)
                async with self.changed:
                    if snapshot is None:
                        return
                    self.snapshot, self.version = snapshot, snapshot.version
                    self.changed.notify_all()
        finally:
            self.closed = True
            async with self.changed:
                self.changed.notify_all()

    async def next(self, version: int) -> RunSnapshot | None:
        """The first snapshot after `version` (the same one after a quiet spell); None once the
        run is closed or unreachable."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.closed or self.version != version),
                    WAIT_FOR_CHANGE_S,
                )
            return None if self.closed else self.snapshot


def _watches(ctx: ServiceContext) -> dict[str, _RunWatch]:
    watches = getattr(ctx, "_run_watches", None)
    if watches is None:
        watches = {}
        ctx._run_watches = watches  # type: ignore[attr-defined]
    return watches


async def _watch_next(ctx: ServiceContext, run_id: str, version: int) -> RunSnapshot | None:
    """The run's next snapshot through this replica's shared watch (made on first use)."""
    watches = _watches(ctx)
    watch = watches.get(run_id)
    if watch is None or watch.closed:
        live = await asyncio.to_thread(get_live_run, run_id)
        if live is None:
            return None
        watch = watches.get(run_id)  # another stream may have made one meanwhile
        if watch is None or watch.closed:
            watch = watches[run_id] = _RunWatch(live)
    snapshot = await watch.next(version)
    if watch.closed and watches.get(run_id) is watch:
        del watches[run_id]
    return snapshot


async def _next_snapshot(live: RunHandle, version: int) -> RunSnapshot | None:
    try:
        return await asyncio.wait_for(
            _await(live.wait_for_change(version, WAIT_FOR_CHANGE_S)),
            WAIT_FOR_CHANGE_S + 10,
        )
    except Exception:  # noqa: BLE001 - closed at the run's end, or unreachable
        return None


def _progress_event(snapshot: RunSnapshot) -> dict[str, Any]:
    targets = {
        name: {"done": t.done, "total": t.total, "errors": t.errors, "cost_usd": t.cost_usd}
        for name, t in snapshot.targets.items()
    }
    return {
        "type": "progress",
        "run_id": snapshot.run_id,
        "status": str(snapshot.status),
        "done": snapshot.done,
        "total": snapshot.total,
        "errors": snapshot.errors,
        "cost_usd": snapshot.cost_usd,
        "targets": targets,
        "batches": None if snapshot.batches is None else snapshot.batches.to_dict(),
    }


def _status_event(run_id: str, status: str, message: str | None) -> dict[str, Any]:
    return {"type": "status", "run_id": run_id, "status": status, "message": message}


async def _until_disconnect(websocket: WebSocket) -> None:
    """Returns when the client goes away; anything it sends is ignored."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _deny(websocket: WebSocket, status: int, close_code: int, detail: str) -> None:
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "too_many_requests"}[
        status
    ]
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        response = JSONResponse(error_body(code, detail), status_code=status, headers=headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=close_code, reason=detail)


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=code)


async def _await(ref: Any) -> Any:
    return await ref
