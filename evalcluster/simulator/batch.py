"""The three vendors' batch APIs, answered with the same generation as the sync routes.

- OpenAI (platform.openai.com/docs/guides/batch): ``POST /v1/files`` (multipart, purpose
  ``batch``), ``GET /v1/files/{id}[/content]``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``. Results are an output file and an error file of JSONL lines
  ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
- Anthropic (docs.anthropic.com/en/api/creating-message-batches): ``POST /v1/messages/batches``
  ``{"requests": [{"custom_id", "params"}]}``, ``GET .../{id}``, ``GET .../{id}/results``
  (JSONL, ``result.type`` succeeded | errored | canceled | expired), ``POST .../{id}/cancel``.
- Gemini (ai.google.dev/api/batch-mode): ``POST /v1beta/models/{model}:batchGenerateContent``
  with inline requests, ``GET /v1beta/batches/{id}`` (a long-running operation whose
  ``response.inlinedResponses`` holds the results when ``done``), ``POST
  /v1beta/batches/{id}:cancel``.

Time: request i of n finishes at ``created + batch_turnaround_s * (i + 1) / n``; a batch still
unfinished ``batch_expire_after_s`` after creation ends expired, its unfinished requests
expired; a cancel ends the unfinished ones as cancelled. Progress is computed when a batch is
read, so nothing runs in the background. Every finished batched request is counted in the
server's stats under ``batch_ok`` / ``batch_error`` (never under ``ok``), and GET /stats has a
``batches`` section: batches created, requests submitted and how many of them had been
submitted before (same format, model and body: a re-sent request), and cost at the discount.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from evalcluster.simulator.formats import FORMATS
from evalcluster.simulator.formats.base import (
    ErrorContext,
    HttpReply,
    RequestInvalid,
    WireFormat,
    dumps,
    new_id,
)
from evalcluster.simulator.generation import generate
from evalcluster.simulator.prompt_cache import PromptCache

if TYPE_CHECKING:
    from evalcluster.simulator.server import SimulatorServer

Vendor = Literal["openai", "anthropic", "gemini"]
LineState = Literal["succeeded", "errored", "expired", "canceled"]
OPENAI_ENDPOINT = "/v1/chat/completions"
GEMINI_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
GEMINI_OUTPUT_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"
)


@dataclass(slots=True)
class Line:
    """One request of a batch and, once finished, its outcome."""

    custom_id: str
    body: Any
    model: str
    state: LineState | None = None
    status: int = 200
    reply: dict[str, Any] | None = None  # the success body, or the format's error body


@dataclass(slots=True)
class Job:
    vendor: Vendor
    id: str
    lines: list[Line]
    created: float  # monotonic
    created_at: int  # unix seconds
    turnaround_s: float
    expire_after_s: float
    input_file_id: str | None = None
    cancelled_at: float | None = None
    ended: Literal["completed", "expired", "cancelled", "failed"] | None = None
    ended_at: int | None = None
    next_line: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # OpenAI validation errors
    output_file_id: str | None = None
    error_file_id: str | None = None

    def due(self, i: int) -> float:
        return self.created + self.turnaround_s * (i + 1) / len(self.lines)

    def counts(self) -> Counter[str]:
        return Counter(line.state or "processing" for line in self.lines)


@dataclass(slots=True)
class StoredFile:
    id: str
    purpose: str
    filename: str
    data: bytes
    created_at: int


class _ModelRequest:
    """What a format's `parse` reads from an aiohttp request: Gemini takes the model from the
    path."""

    def __init__(self, model: str):
        self.match_info = {"model": model}


class BatchService:
    """Files and batches of one simulator, in memory."""

    def __init__(self, server: SimulatorServer, clock: Callable[[], float] = time.monotonic):
        self._server = server
        self._clock = clock
        self.cache = PromptCache(clock)
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, Job] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the counters (batches and files are kept)."""
        self.batches_created = 0
        self.requests_submitted = 0
        self.requests_resubmitted = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cached_tokens = 0
        self._seen: set[str] = set()

    def snapshot(self) -> dict[str, Any]:
        config = self._server.config
        full = (
            self.tokens_in * config.price_input_per_mtok
            + self.tokens_out * config.price_output_per_mtok
        ) / 1_000_000
        states = Counter(j.ended or "in_progress" for j in self.jobs.values())
        return {
            "created": self.batches_created,
            "requests_submitted": self.requests_submitted,
            "requests_resubmitted": self.requests_resubmitted,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cached_tokens": self.cached_tokens,
            "cost_usd_sync_rate": round(full, 12),
            "cost_usd": round(full * config.batch_discount, 12),
            "by_state": dict(states),
        }

    def register(self, app: web.Application) -> None:
        add = app.router
        add.add_post("/v1/files", self._guard("openai", self._openai_upload))
        add.add_get("/v1/files/{file_id}", self._on_file(_file_response))
        add.add_get("/v1/files/{file_id}/content", self._on_file(_file_content))
        add.add_post("/v1/batches", self._guard("openai", self._openai_create))
        add.add_get("/v1/batches/{batch_id}", self._on_batch("openai", self._openai_reply))
        add.add_post(
            "/v1/batches/{batch_id}/cancel",
            self._on_batch("openai", self._openai_reply, cancel=True),
        )
        add.add_post("/v1/messages/batches", self._guard("anthropic", self._anthropic_create))
        add.add_get(
            "/v1/messages/batches/{batch_id}", self._on_batch("anthropic", self._anthropic_reply)
        )
        add.add_get(
            "/v1/messages/batches/{batch_id}/results",
            self._on_batch("anthropic", self._anthropic_results),
        )
        add.add_post(
            "/v1/messages/batches/{batch_id}/cancel",
            self._on_batch("anthropic", self._anthropic_reply, cancel=True),
        )
        add.add_post(
            "/v1beta/models/{model}:batchGenerateContent",
            self._guard("gemini", self._gemini_create),
        )
        add.add_get("/v1beta/batches/{batch_id}", self._on_batch("gemini", self._gemini_reply))
        add.add_post(
            "/v1beta/batches/{batch_id}:cancel",
            self._on_batch("gemini", _empty_reply, cancel=True),
        )

    # --- the shared machinery ------------------------------------------------------------------

    def _guard(self, vendor: Vendor, handler: _Guarded) -> _Handler:
        """`handler` behind the format's refusal of a bad key or a missing header."""
        fmt = FORMATS[vendor]

        async def guarded(request: web.Request) -> web.Response:
            reply = self._server._check_auth(request, fmt, self._server.config)
            if reply is None:
                reply = fmt.header_error(request)
            return await handler(request, fmt) if reply is None else _send(reply)

        return guarded

    def _on_batch(self, vendor: Vendor, reply: _OnBatch, cancel: bool = False) -> _Handler:
        """A guarded handler answering with `reply` for the vendor's batch named in the path
        (advanced to now, cancelled first when `cancel`), or the vendor's 404."""

        async def on_batch(request: web.Request, fmt: WireFormat) -> web.Response:
            job = self._job(request, vendor)
            if job is None:
                return _not_found(fmt, _NO_BATCH[vendor])
            if cancel:
                self._cancel(job)
            return reply(job, request)

        return self._guard(vendor, on_batch)

    def _on_file(self, reply: Callable[[StoredFile], web.Response]) -> _Handler:
        """A guarded OpenAI handler answering with `reply` for the file named in the path."""

        async def on_file(request: web.Request, fmt: WireFormat) -> web.Response:
            stored = self.files.get(request.match_info["file_id"])
            return _not_found(fmt, "No such File object") if stored is None else reply(stored)

        return self._guard("openai", on_file)

    def _new_job(self, vendor: Vendor, job_id: str, lines: list[Line]) -> Job:
        config = self._server.config
        job = Job(
            vendor=vendor,
            id=job_id,
            lines=lines,
            created=self._clock(),
            created_at=int(time.time()),
            turnaround_s=config.batch_turnaround_s,
            expire_after_s=config.batch_expire_after_s,
        )
        self.jobs[job_id] = job
        self.batches_created += 1
        for line in lines:
            self.requests_submitted += 1
            digest = hashlib.blake2b(
                dumps([vendor, line.model, line.body]), digest_size=16
            ).hexdigest()
            if digest in self._seen:
                self.requests_resubmitted += 1
            self._seen.add(digest)
        return job

    def _advance(self, job: Job) -> Job:
        """Finish every request due by now, then end the batch if it is over."""
        if job.ended is not None:
            return job
        now = self._clock()
        limit = min(now, job.created + job.expire_after_s)
        if job.cancelled_at is not None:
            limit = min(limit, job.cancelled_at)
        while job.next_line < len(job.lines) and job.due(job.next_line) <= limit:
            self._answer(job, job.lines[job.next_line])
            job.next_line += 1
        if job.next_line == len(job.lines):
            job.ended = "completed"
        elif job.cancelled_at is not None:
            self._close(job, "canceled", "cancelled")
        elif now >= job.created + job.expire_after_s:
            self._close(job, "expired", "expired")
        if job.ended is not None:
            job.ended_at = int(time.time())
            if job.vendor == "openai":
                self._write_openai_files(job)
        return job

    def _close(self, job: Job, state: LineState, ended: Any) -> None:
        for line in job.lines[job.next_line :]:
            line.state = state
            self._server.stats.record(job.vendor, f"batch_{state}")
        job.next_line = len(job.lines)
        job.ended = ended

    def _answer(self, job: Job, line: Line) -> None:
        """Generate one request's answer (or its per-line error) and count it."""
        config = self._server.config
        fmt = FORMATS[job.vendor]
        try:
            sim = fmt.parse(line.body, _ModelRequest(line.model))  # type: ignore[arg-type]
        except RequestInvalid as exc:
            reply = fmt.error("bad_request", ErrorContext(message=exc.message, param=exc.param))
            self._fail(job, line, reply)
            return
        if _drawn(config.seed, line.custom_id, config.batch_line_error_rate):
            self._fail(job, line, fmt.error("server_error", ErrorContext(model=sim.model)))
            return
        result = generate(sim, config)
        body = fmt.success(sim, result)
        use = self.cache.annotate(
            job.vendor, line.body, line.model, body, config.cache_ttl_s, config.cache_min_tokens
        )
        line.state, line.reply = "succeeded", body
        self.tokens_in += result.input_tokens
        self.tokens_out += result.output_tokens
        self.cached_tokens += use.read
        self._server.stats.record(job.vendor, "batch_ok", result.input_tokens, result.output_tokens)

    def _fail(self, job: Job, line: Line, reply: HttpReply) -> None:
        line.state, line.status, line.reply = "errored", reply.status, json.loads(reply.body)
        self._server.stats.record(job.vendor, "batch_error")

    def _job(self, request: web.Request, vendor: Vendor) -> Job | None:
        # A Gemini batch's name is "batches/<id>"; its routes carry only the <id>.
        prefix = "batches/" if vendor == "gemini" else ""
        job = self.jobs.get(prefix + request.match_info["batch_id"])
        if job is None or job.vendor != vendor:
            return None
        return self._advance(job)

    def _cancel(self, job: Job) -> None:
        if job.ended is None and job.cancelled_at is None:
            job.cancelled_at = self._clock()

    def _damaged(self, lines: list[Any]) -> list[Any]:
        """`lines` (result entries, encoded or not) with the configured damage done."""
        damage = self._server.config.batch_corrupt
        out = list(lines)
        if not out:
            return out
        if "missing_line" in damage:
            out.pop()
        if "duplicate_line" in damage and out:
            out.append(out[0])
        if "unknown_id" in damage:
            out.append(_UNKNOWN)
        if "malformed_line" in damage:
            out.insert(0, _MALFORMED)
        return out

    # --- OpenAI ----------------------------------------------------------------------------------

    async def _openai_upload(self, request: web.Request, fmt: WireFormat) -> web.Response:
        try:
            form = await request.post()
        except ValueError:
            return _bad(fmt, "The body must be multipart/form-data.")
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            return _bad(fmt, "purpose: only 'batch' is supported by the simulator", "purpose")
        if upload is None or isinstance(upload, str | bytes | bytearray):
            return _bad(fmt, "file: a file part is required", "file")
        data = upload.file.read()
        stored = StoredFile(new_id("file-"), "batch", upload.filename, data, int(time.time()))
        self.files[stored.id] = stored
        return web.json_response(_file_object(stored))

    async def _openai_create(self, request: web.Request, fmt: WireFormat) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            return _bad(fmt, "The request body must be a JSON object.")
        if body.get("endpoint") != OPENAI_ENDPOINT:
            return _bad(fmt, f"endpoint: the simulator supports only {OPENAI_ENDPOINT}", "endpoint")
        if body.get("completion_window") != "24h":
            return _bad(fmt, "completion_window: must be '24h'", "completion_window")
        stored = self.files.get(str(body.get("input_file_id")))
        if stored is None or stored.purpose != "batch":
            return _bad(fmt, "input_file_id: no such batch input file", "input_file_id")
        lines, errors = _openai_lines(stored.data)
        job = self._new_job("openai", new_id("batch_"), lines)
        job.input_file_id = stored.id
        if errors:
            job.errors, job.ended, job.ended_at = errors, "failed", int(time.time())
        return web.json_response(self._openai_batch(job, creating=True))

    def _openai_reply(self, job: Job, request: web.Request) -> web.Response:
        return web.json_response(self._openai_batch(job))

    def _openai_batch(self, job: Job, creating: bool = False) -> dict[str, Any]:
        counts = job.counts()
        if job.ended is not None:
            status = job.ended
        elif creating:
            status = "validating"
        else:
            status = "cancelling" if job.cancelled_at is not None else "in_progress"
        ended_field = {"completed": "completed_at", "expired": "expired_at",
                       "cancelled": "cancelled_at", "failed": "failed_at"}  # fmt: skip
        batch: dict[str, Any] = {
            "id": job.id,
            "object": "batch",
            "endpoint": OPENAI_ENDPOINT,
            "errors": {"object": "list", "data": job.errors} if job.errors else None,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": job.created_at,
            "in_progress_at": None if creating else job.created_at,
            "expires_at": job.created_at + int(job.expire_after_s),
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {
                "total": len(job.lines),
                "completed": counts["succeeded"],
                "failed": len(job.lines) - counts["succeeded"] - counts["processing"],
            },
            "metadata": None,
        }
        if job.ended is not None:
            batch[ended_field[job.ended]] = job.ended_at
        return batch

    def _write_openai_files(self, job: Job) -> None:
        out, err = [], []
        for line in job.lines:
            entry: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": line.custom_id}
            if line.state in ("succeeded", "errored"):
                entry["response"] = {
                    "status_code": line.status,
                    "request_id": new_id("req_"),
                    "body": line.reply,
                }
                entry["error"] = None
            else:
                code = "batch_expired" if line.state == "expired" else "batch_cancelled"
                entry["response"] = None
                entry["error"] = {"code": code, "message": _UNFINISHED[line.state or "expired"]}
            (out if line.state == "succeeded" else err).append(entry)
        for entries, attr in ((out, "output_file_id"), (err, "error_file_id")):
            if entries:
                lines = self._damaged(entries) if attr == "output_file_id" else entries
                data = b"".join(_jsonl(e) for e in lines)
                stored = StoredFile(new_id("file-"), "batch_output", f"{job.id}_{attr}.jsonl",
                                    data, int(time.time()))  # fmt: skip
                self.files[stored.id] = stored
                setattr(job, attr, stored.id)

    # --- Anthropic -------------------------------------------------------------------------------

    async def _anthropic_create(self, request: web.Request, fmt: WireFormat) -> web.Response:
        body = await _json(request)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _bad(fmt, "requests: Field required (a non-empty list)")
        lines, seen = [], set()
        for i, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 64:
                return _bad(fmt, f"requests.{i}.custom_id: 1 to 64 characters required")
            if custom_id in seen:
                return _bad(fmt, f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}")
            if not isinstance(params, dict):
                return _bad(fmt, f"requests.{i}.params: Field required")
            seen.add(custom_id)
            lines.append(Line(custom_id, params, str(params.get("model", ""))))
        job = self._new_job("anthropic", new_id("msgbatch_"), lines)
        return web.json_response(self._anthropic_batch(job, str(request.url.origin())))

    def _anthropic_reply(self, job: Job, request: web.Request) -> web.Response:
        return web.json_response(self._anthropic_batch(job, str(request.url.origin())))

    def _anthropic_results(self, job: Job, request: web.Request) -> web.Response:
        if job.ended is None:
            return _bad(
                FORMATS["anthropic"], "results are not available until processing has ended"
            )
        entries = []
        for line in job.lines:
            result: dict[str, Any] = {"type": line.state}
            if line.state == "succeeded":
                result["message"] = line.reply
            elif line.state == "errored":
                result["error"] = line.reply
            entries.append({"custom_id": line.custom_id, "result": result})
        data = b"".join(_jsonl(e) for e in self._damaged(entries))
        return web.Response(body=data, content_type="application/binary")

    def _anthropic_batch(self, job: Job, origin: str) -> dict[str, Any]:
        counts = job.counts()
        ended = job.ended is not None
        iso = _iso
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": "ended"
            if ended
            else ("canceling" if job.cancelled_at is not None else "in_progress"),
            "request_counts": {
                "processing": counts["processing"],
                "succeeded": counts["succeeded"],
                "errored": counts["errored"],
                "canceled": counts["canceled"],
                "expired": counts["expired"],
            },
            "ended_at": iso(job.ended_at) if ended else None,
            "created_at": iso(job.created_at),
            "expires_at": iso(job.created_at + int(job.expire_after_s)),
            "archived_at": None,
            "cancel_initiated_at": iso(job.created_at) if job.cancelled_at is not None else None,
            "results_url": f"{origin}/v1/messages/batches/{job.id}/results" if ended else None,
        }

    # --- Gemini ----------------------------------------------------------------------------------

    async def _gemini_create(self, request: web.Request, fmt: WireFormat) -> web.Response:
        model = request.match_info["model"]
        body = await _json(request)
        batch = body.get("batch") if isinstance(body, dict) else None
        config = _either(batch, "inputConfig", "input_config")
        holder = _either(config, "requests", "requests")
        items = holder.get("requests") if isinstance(holder, dict) else None
        if not isinstance(items, list) or not items:
            return _bad(fmt, "* batch.input_config.requests.requests: must be a non-empty list")
        lines = []
        for i, item in enumerate(items):
            inner = item.get("request") if isinstance(item, dict) else None
            if not isinstance(inner, dict):
                return _bad(fmt, f"* batch.input_config.requests.requests[{i}].request: required")
            metadata = item.get("metadata") or {}
            key = metadata.get("key") if isinstance(metadata, dict) else None
            lines.append(Line(str(key) if key is not None else str(i), inner, model))
        job = self._new_job("gemini", new_id("batches/", 20), lines)
        job.input_file_id = str(_either(batch, "displayName", "display_name") or "")
        return web.json_response(self._gemini_operation(job, model))

    def _gemini_reply(self, job: Job, request: web.Request) -> web.Response:
        return web.json_response(self._gemini_operation(job, job.lines[0].model))

    def _gemini_operation(self, job: Job, model: str) -> dict[str, Any]:
        counts = job.counts()
        states = {None: "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED",
                  "expired": "BATCH_STATE_EXPIRED", "cancelled": "BATCH_STATE_CANCELLED",
                  "failed": "BATCH_STATE_FAILED"}  # fmt: skip
        metadata: dict[str, Any] = {
            "@type": GEMINI_BATCH_TYPE,
            "model": f"models/{model}",
            "displayName": job.input_file_id or job.id,
            "createTime": _iso(job.created_at),
            "state": states[job.ended],
            "name": job.id,
            "batchStats": {
                "requestCount": str(len(job.lines)),
                "successfulRequestCount": str(counts["succeeded"]),
                "failedRequestCount": str(counts["errored"]),
                "pendingRequestCount": str(counts["processing"]),
            },
        }
        operation: dict[str, Any] = {"name": job.id, "metadata": metadata, "done": False}
        if job.ended is None:
            return operation
        operation["done"] = True
        metadata["endTime"] = _iso(job.ended_at or job.created_at)
        responses = []
        for line in job.lines:
            entry: dict[str, Any] = {"metadata": {"key": line.custom_id}}
            if line.state == "succeeded":
                entry["response"] = line.reply
            elif line.state == "errored":
                error = (line.reply or {}).get("error") or {}
                entry["error"] = {"code": _RPC_CODES.get(error.get("status"), 13),
                                  "message": error.get("message", "")}  # fmt: skip
            else:
                # Unfinished requests of an expired or cancelled job have no entry.
                continue
            responses.append(entry)
        inlined = [_GEMINI_MALFORMED if e is _MALFORMED else e for e in self._damaged(responses)]
        inlined = [_unknown_gemini() if e is _UNKNOWN else e for e in inlined]
        operation["response"] = {
            "@type": GEMINI_OUTPUT_TYPE,
            "inlinedResponses": {"inlinedResponses": inlined},
        }
        return operation


# --- helpers -----------------------------------------------------------------------------------

_UNFINISHED = {
    "expired": "This request could not be executed before the completion window expired.",
    "canceled": "This request was not executed because the batch was cancelled.",
}
_RPC_CODES = {"INVALID_ARGUMENT": 3, "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13, "UNAVAILABLE": 14}
_MALFORMED = object()  # stands for a line that is not JSON
_UNKNOWN = object()  # stands for a line naming a custom_id that was never submitted
_GEMINI_MALFORMED = "not a response object"
_NO_BATCH: dict[Vendor, str] = {
    "openai": "No such Batch object",
    "anthropic": "message batch not found",
    "gemini": "Requested entity was not found.",
}
_Handler = Callable[[web.Request], Awaitable[web.Response]]
_Guarded = Callable[[web.Request, WireFormat], Awaitable[web.Response]]
_OnBatch = Callable[[Job, web.Request], web.Response]


def _file_response(stored: StoredFile) -> web.Response:
    return web.json_response(_file_object(stored))


def _file_content(stored: StoredFile) -> web.Response:
    return web.Response(body=stored.data, content_type="application/jsonl")


def _empty_reply(job: Job, request: web.Request) -> web.Response:
    return web.json_response({})


def _unknown_gemini() -> dict[str, Any]:
    return {"metadata": {"key": "unknown-" + new_id("", 8)}, "error": {"code": 13, "message": ""}}


def _jsonl(entry: Any) -> bytes:
    if entry is _MALFORMED:
        return b'{"custom_id": "truncated", "respo\n'
    if entry is _UNKNOWN:
        entry = {"custom_id": "unknown-" + new_id("", 8), "result": {"type": "errored"},
                 "response": None, "error": {"code": "server_error", "message": "?"}}  # fmt: skip
    return dumps(entry) + b"\n"


def _drawn(seed: int, custom_id: str, rate: float) -> bool:
    """Whether `custom_id` gets a per-line error: a hash, so the same on every run."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{custom_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < rate


def _openai_lines(data: bytes) -> tuple[list[Line], list[dict[str, Any]]]:
    """The requests of an input file, and its validation errors (OpenAI's `errors.data`)."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue

        def fail(code: str, message: str, param: str | None = None, n: int = number) -> None:
            errors.append({"code": code, "message": message, "param": param, "line": n})

        try:
            item = json.loads(raw)
        except ValueError:
            fail("invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(item, dict):
            fail("invalid_json_line", "Each line must be a JSON object.")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            fail("missing_required_parameter", "custom_id is required.", "custom_id")
        elif custom_id in seen:
            fail("duplicate_custom_id", f"The custom_id {custom_id!r} is not unique.", "custom_id")
        elif item.get("url") != OPENAI_ENDPOINT or item.get("method", "POST") != "POST":
            fail("invalid_url", f"url must be {OPENAI_ENDPOINT} with method POST.", "url")
        elif not isinstance(item.get("body"), dict):
            fail("missing_required_parameter", "body is required.", "body")
        else:
            seen.add(custom_id)
            lines.append(Line(custom_id, item["body"], str(item["body"].get("model", ""))))
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "The input file is empty.",
                       "param": None, "line": None})  # fmt: skip
    return lines, errors


def _file_object(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
    }


def _either(container: Any, camel: str, snake: str) -> Any:
    if not isinstance(container, dict):
        return None
    return container.get(camel, container.get(snake))


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _send(reply: HttpReply) -> web.Response:
    return web.Response(
        status=reply.status, body=reply.body, headers=reply.headers, content_type=reply.content_type
    )


def _bad(fmt: WireFormat, message: str, param: str | None = None) -> web.Response:
    return _send(fmt.error("bad_request", ErrorContext(message=message, param=param)))


def _not_found(fmt: WireFormat, message: str) -> web.Response:
    return _send(fmt.error("not_found", ErrorContext(message=message)))
