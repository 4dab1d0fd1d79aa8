"""Gemini's batch mode with inline requests (ai.google.dev/gemini-api/docs/batch-mode,
ai.google.dev/api/batch-mode).

``POST {base_url}/v1beta/models/{model}:batchGenerateContent`` with ``{"batch":
{"display_name", "input_config": {"requests": {"requests": [{"request", "metadata":
{"key"}}]}}}}``, each request the sync adapter's generateContent body; the answer is a
long-running operation named ``batches/{id}``, polled at ``GET {base_url}/v1beta/{name}``;
when ``done``, ``response.inlinedResponses.inlinedResponses`` holds one entry per request
(``response`` or ``error``, with the request's ``metadata.key``). One model per batch (it is in
the URL). Inline requests are limited to 20 MB in all; the request count is ours to bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from evalcluster.providers.batch.base import (
    BatchClient,
    BatchItem,
    BatchLimits,
    BatchResults,
    BatchStatus,
    ResultCollector,
    path_segment,
)
from evalcluster.providers.gemini import GeminiAdapter
from evalcluster.providers.transport import encode_json

__all__ = ["GeminiBatchClient"]

_ENDED = {"BATCH_STATE_SUCCEEDED": "completed", "BATCH_STATE_FAILED": "failed",
          "BATCH_STATE_CANCELLED": "cancelled", "BATCH_STATE_EXPIRED": "expired",
          "JOB_STATE_SUCCEEDED": "completed", "JOB_STATE_FAILED": "failed",
          "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_EXPIRED": "expired"}  # fmt: skip
# google.rpc.Code -> HTTP status, for a per-request error (cloud.google.com/apis/design/errors).
_HTTP = {3: 400, 4: 504, 7: 403, 8: 429, 13: 500, 14: 503, 16: 401}


class GeminiBatchClient(BatchClient):
    vendor = "gemini"
    limits = BatchLimits(max_requests=10_000, max_bytes=20 * 1024 * 1024)

    adapter: GeminiAdapter

    def _entry(self, item: BatchItem) -> dict[str, Any]:
        return {"request": self.adapter.body(item.request), "metadata": {"key": item.custom_id}}

    def encoded_size(self, item: BatchItem) -> int:
        return len(encode_json(self._entry(item))) + 1

    def _headers(self) -> dict[str, str]:
        headers = dict(self.adapter.config.headers)
        headers["x-goog-api-key"] = self.adapter.api_key or ""
        return headers

    async def submit(self, items: Sequence[BatchItem]) -> str:
        self._check_items(items)
        models = {item.request.model.removeprefix("models/") for item in items}
        if len(models) != 1:
            raise ValueError("a Gemini batch holds requests for one model")
        model = models.pop()
        entries = [self._entry(item) for item in items]
        body = {"batch": {"display_name": f"evalcluster-{items[0].custom_id}",
                          "input_config": {"requests": {"requests": entries}}}}  # fmt: skip
        if len(encode_json(body)) > self.limits.max_bytes:
            raise ValueError("the batch is over Gemini's 20 MB inline limit")
        path = f"/v1beta/models/{quote(model, safe='-._~')}:batchGenerateContent"
        url = self.adapter.base_url + path
        operation = await self._call("POST", url, self._headers(), body)
        return self._submitted(
            operation,
            "name",
            "no batches/... name in the answer to batchGenerateContent",
            prefix="batches/",
        )

    def _url(self, name: str, tail: str = "") -> str:
        if not name.startswith("batches/"):
            raise ValueError(f"not a Gemini batch name: {name[:40]!r}")
        segment = path_segment(name.removeprefix("batches/"))
        return f"{self.adapter.base_url}/v1beta/batches/{segment}{tail}"

    async def _operation(self, name: str) -> dict[str, Any]:
        return await self._get_object(
            self._url(name), self._headers(), "metadata", dict, "an operation without metadata"
        )

    async def poll(self, batch_id: str) -> BatchStatus:
        operation = await self._operation(batch_id)
        metadata = operation["metadata"]
        stats = metadata.get("batchStats") or {}
        outcome = _ENDED.get(str(metadata.get("state")))
        if outcome is None and operation.get("done"):
            outcome = "failed" if operation.get("error") else "completed"
        return BatchStatus(
            batch_id=batch_id,
            outcome=outcome,  # type: ignore[arg-type]
            total=int(stats.get("requestCount") or 0),
            succeeded=int(stats.get("successfulRequestCount") or 0),
            failed=int(stats.get("failedRequestCount") or 0),
        )

    async def results(self, batch_id: str, items: Sequence[BatchItem]) -> BatchResults:
        operation = await self._operation(batch_id)
        outcome = _ENDED.get(str(operation["metadata"].get("state")))
        collector = ResultCollector(self.adapter, items, self._latency_ms(batch_id))
        if outcome == "failed" or operation.get("error"):
            collector.anomaly("batch_failed", None, str(operation.get("error"))[:200])
        output = (operation.get("response") or {}).get("inlinedResponses") or {}
        entries = output.get("inlinedResponses") if isinstance(output, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            self._read_entry(entry, collector)
        reason = {"expired": "expired", "cancelled": "cancelled"}.get(str(outcome))
        if reason is not None:  # requests never run have no entry
            for item in items:
                if item.custom_id not in collector.results.outcomes:
                    collector.unfinished(item.custom_id, reason)
        return collector.finish(outcome)  # type: ignore[arg-type]

    def _read_entry(self, entry: Any, collector: ResultCollector) -> None:
        if not isinstance(entry, dict):
            collector.anomaly("malformed_line", None, "an inlined response that is not an object")
            return
        key = (
            (entry.get("metadata") or {}).get("key")
            if isinstance(entry.get("metadata"), dict)
            else None
        )
        if "response" in entry:
            collector.answer(key, entry["response"])
        elif isinstance(entry.get("error"), dict):
            error = entry["error"]
            status = (
                _HTTP.get(error.get("code"), 500) if isinstance(error.get("code"), int) else 500
            )
            collector.error(key, status, {"error": error})
        else:
            collector.anomaly("malformed_line", str(key)[:64], "neither response nor error")

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", self._url(batch_id, ":cancel"), self._headers())
