"""Anthropic's Message Batches (docs.anthropic.com/en/docs/build-with-claude/batch-processing).

``POST {base_url}/v1/messages/batches`` with ``{"requests": [{"custom_id", "params"}]}``, the
params being the sync adapter's Messages body; ``GET .../{id}`` while ``processing_status`` is
``in_progress`` or ``canceling``; once ``ended``, the JSONL results at ``.../{id}/results``, one
line per request: ``result.type`` succeeded (``message``), errored (``error``), canceled or
expired. Limits: 100,000 requests or 256 MB per batch. The results are fetched from the
configured base_url, never from the ``results_url`` the answer names, so a hostile answer
cannot send the key elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalcluster.providers.anthropic import AnthropicAdapter
from evalcluster.providers.batch.base import (
    BatchClient,
    BatchItem,
    BatchLimits,
    BatchResults,
    BatchStatus,
    ResultCollector,
    jsonl_lines,
    path_segment,
)
from evalcluster.providers.transport import encode_json

__all__ = ["AnthropicBatchClient"]

_UNFINISHED = {"canceled": "cancelled", "expired": "expired"}


class AnthropicBatchClient(BatchClient):
    vendor = "anthropic"
    limits = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)

    adapter: AnthropicAdapter
    _headers: dict[str, str] | None = None  # the sync adapter's, from its first call

    def _entry(self, item: BatchItem) -> dict[str, Any]:
        call = self.adapter.build_call(item.request)
        if self._headers is None:
            self._headers = dict(call.headers)
        return {"custom_id": item.custom_id, "params": call.body}

    def encoded_size(self, item: BatchItem) -> int:
        return len(encode_json(self._entry(item))) + 1

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            probe = self.adapter.build_call(_PROBE)
            self._headers = dict(probe.headers)
        return self._headers

    def _url(self, batch_id: str = "", tail: str = "") -> str:
        base = f"{self.adapter.base_url}/v1/messages/batches"
        return f"{base}/{path_segment(batch_id)}{tail}" if batch_id else base

    async def submit(self, items: Sequence[BatchItem]) -> str:
        self._check_items(items)
        entries = [self._entry(item) for item in items]
        batch = await self._call("POST", self._url(), self.headers(), {"requests": entries})
        missing = "no batch id in the answer to POST /v1/messages/batches"
        return self._submitted(batch, "id", missing)

    async def _batch(self, batch_id: str) -> dict[str, Any]:
        return await self._get_object(
            self._url(batch_id),
            self.headers(),
            "processing_status",
            str,
            "a message batch without processing_status",
        )

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._batch(batch_id)
        counts = {k: int(v or 0) for k, v in (batch.get("request_counts") or {}).items()}
        outcome = None
        if batch["processing_status"] == "ended":
            if batch.get("cancel_initiated_at"):
                outcome = "cancelled"
            elif counts.get("expired"):
                outcome = "expired"
            else:
                outcome = "completed"
        failed = counts.get("errored", 0) + counts.get("canceled", 0) + counts.get("expired", 0)
        return BatchStatus(batch_id, outcome, sum(counts.values()),  # type: ignore[arg-type]
                           counts.get("succeeded", 0), failed)  # fmt: skip

    async def results(self, batch_id: str, items: Sequence[BatchItem]) -> BatchResults:
        status = await self.poll(batch_id)
        collector = ResultCollector(self.adapter, items, self._latency_ms(batch_id))
        data = await self._download(self._url(batch_id, "/results"), self.headers())
        for line in jsonl_lines(data, collector):
            self._read_line(line, collector)
        return collector.finish(status.outcome)

    def _read_line(self, line: dict[str, Any], collector: ResultCollector) -> None:
        custom_id = line.get("custom_id")
        result = line.get("result")
        kind = result.get("type") if isinstance(result, dict) else None
        if kind == "succeeded":
            collector.answer(custom_id, result.get("message"))  # type: ignore[union-attr]
        elif kind == "errored":
            error = result.get("error")  # type: ignore[union-attr]
            collector.error(custom_id, _status(error), error)
        elif kind in _UNFINISHED:
            collector.unfinished(custom_id, _UNFINISHED[kind])
        else:
            collector.anomaly("malformed_line", str(custom_id)[:64], f"result type {kind!r}")

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", self._url(batch_id, "/cancel"), self.headers())


# Anthropic's error types and the HTTP status the sync API gives each (api/errors).
_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
           "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
           "api_error": 500, "overloaded_error": 529, "billing_error": 402}  # fmt: skip


def _status(error: Any) -> int:
    inner = error.get("error") if isinstance(error, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    return _STATUS.get(str(kind), 500)


def _probe() -> Any:
    from evalcluster.providers.base import CompletionRequest, Message

    return CompletionRequest(model="probe", messages=(Message("user", ""),))


_PROBE = _probe()
