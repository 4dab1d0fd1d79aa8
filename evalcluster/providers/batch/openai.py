"""OpenAI's Batch API (platform.openai.com/docs/guides/batch, /docs/api-reference/batch).

Requests go up as one JSONL file (``POST {base_url}/files``, multipart, ``purpose=batch``),
each line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` with the
body the sync adapter builds; ``POST {base_url}/batches`` creates the batch with a 24h window.
Results are two JSONL files: the output file (lines with ``response.status_code`` 200) and the
error file (non-200 responses, and ``error.code`` ``batch_expired`` / ``batch_cancelled`` for
requests never run). Limits: 50,000 requests and 200 MB per input file.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

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
from evalcluster.providers.openai import OpenAIAdapter
from evalcluster.providers.transport import HttpRequest, encode_json

__all__ = ["OpenAIBatchClient"]

ENDPOINT = "/v1/chat/completions"
_ENDED = {"completed": "completed", "expired": "expired", "cancelled": "cancelled",
          "failed": "failed"}  # fmt: skip
_UNFINISHED = {"batch_expired": "expired", "batch_cancelled": "cancelled"}


class OpenAIBatchClient(BatchClient):
    vendor = "openai"
    limits = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)

    adapter: OpenAIAdapter

    def _line(self, item: BatchItem) -> bytes:
        body = self.adapter.build_call(item.request).body
        line = {"custom_id": item.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return encode_json(line) + b"\n"

    def encoded_size(self, item: BatchItem) -> int:
        return len(self._line(item))

    async def submit(self, items: Sequence[BatchItem]) -> str:
        self._check_items(items)
        data = b"".join(self._line(item) for item in items)
        if len(data) > self.limits.max_bytes:
            raise ValueError("the input file is over OpenAI's 200 MB batch limit")
        file_id = await self._upload(data)
        batch = await self._call(
            "POST",
            f"{self.adapter.base_url}/batches",
            self.adapter.headers(),
            {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
        )
        return self._submitted(batch, "id", "no batch id in the answer to POST /batches")

    async def _upload(self, data: bytes) -> str:
        boundary = f"evalcluster-{uuid.uuid4().hex}"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="batch.jsonl"\r\n'
                "Content-Type: application/jsonl\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {
            **self.adapter.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        request = HttpRequest(
            "POST", f"{self.adapter.base_url}/files", headers, body, self.timeout_s
        )
        response = await self.adapter.transport.send(request)
        uploaded = self._decode(response)
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise self._shape_error("no file id in the answer to POST /files")
        return file_id

    async def _batch(self, batch_id: str) -> dict[str, Any]:
        url = f"{self.adapter.base_url}/batches/{path_segment(batch_id)}"
        return await self._get_object(
            url, self.adapter.headers(), "status", str, "a batch without a status"
        )

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._batch(batch_id)
        counts = batch.get("request_counts") or {}
        return BatchStatus(
            batch_id=batch_id,
            outcome=_ENDED.get(batch["status"]),  # type: ignore[arg-type]
            total=int(counts.get("total") or 0),
            succeeded=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
        )

    async def results(self, batch_id: str, items: Sequence[BatchItem]) -> BatchResults:
        batch = await self._batch(batch_id)
        outcome = _ENDED.get(batch["status"])
        collector = ResultCollector(self.adapter, items, self._latency_ms(batch_id))
        if outcome == "failed":
            errors = (batch.get("errors") or {}).get("data") or []
            detail = "; ".join(str(e.get("message", ""))[:80] for e in errors[:3]) or "no detail"
            collector.anomaly("batch_failed", None, f"the batch failed: {detail}")
        for field in ("output_file_id", "error_file_id"):
            file_id = batch.get(field)
            if isinstance(file_id, str) and file_id:
                data = await self._content(file_id)
                for line in jsonl_lines(data, collector):
                    self._read_line(line, collector)
        return collector.finish(outcome)  # type: ignore[arg-type]

    def _read_line(self, line: dict[str, Any], collector: ResultCollector) -> None:
        custom_id = line.get("custom_id")
        response = line.get("response")
        error = line.get("error")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status = response["status_code"]
            if status == 200:
                collector.answer(custom_id, response.get("body"))
            else:
                collector.error(custom_id, status, response.get("body"))
        elif isinstance(error, dict):
            reason = _UNFINISHED.get(str(error.get("code")))
            if reason is not None:
                collector.unfinished(custom_id, reason)
            else:
                collector.error(custom_id, 500, {"error": error})
        else:
            collector.anomaly("malformed_line", str(custom_id)[:64], "neither response nor error")

    async def _content(self, file_id: str) -> bytes:
        url = f"{self.adapter.base_url}/files/{path_segment(file_id)}/content"
        return await self._download(url, self.adapter.headers())

    async def cancel(self, batch_id: str) -> None:
        url = f"{self.adapter.base_url}/batches/{path_segment(batch_id)}/cancel"
        await self._call("POST", url, self.adapter.headers())
