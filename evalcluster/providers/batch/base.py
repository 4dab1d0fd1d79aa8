"""The contract of a vendor batch client, and the values it trades in.

A `BatchClient` wraps the vendor's sync adapter (`providers/openai.py`, `anthropic.py`,
`gemini.py`) and reuses its request builder, response parser and error mapping, so a batched
request is the same request and its answer the same `Completion` as on the sync path:

    batch_id = await client.submit(items)          # items: BatchItem(custom_id, request)
    status = await client.poll(batch_id)           # BatchStatus: ended? counts
    results = await client.results(batch_id, items)  # BatchResults: one outcome per item
    await client.cancel(batch_id)

`results` never raises for what is in the results, whatever their state: each submitted
custom_id gets exactly one `LineOutcome`, an answer or "retry through the normal path" (a
per-line error, an expired or cancelled request, a missing line, a line that does not parse),
and everything odd (unknown or repeated custom_ids, malformed lines, a batch that failed or
reports errors) is listed in `anomalies`. A transport failure or an HTTP error on the batch
endpoints themselves raises the sync adapter's `ProviderError`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from evalcluster.errors import ProtocolError, ProviderError
from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.base import Completion, CompletionRequest
from evalcluster.providers.error_mapping import NOT_JSON, decode_json
from evalcluster.providers.transport import HttpResponse, encode_json

__all__ = [
    "Anomaly",
    "BatchClient",
    "BatchItem",
    "BatchLimits",
    "BatchResults",
    "BatchStatus",
    "LineOutcome",
    "split_batches",
]

Outcome = Literal["completed", "expired", "cancelled", "failed"]
AnomalyKind = Literal[
    "malformed_line",  # a results line that is not JSON, or not the promised shape
    "unknown_id",  # a line for a custom_id that was not submitted in this batch
    "duplicate_id",  # a second line for one custom_id (the first one is kept)
    "missing_line",  # a submitted custom_id with no line at all
    "batch_failed",  # the vendor failed the whole batch (validation)
    "completed_with_errors",  # ended "completed" yet some lines failed
]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most one vendor batch may hold: requests, and bytes of the encoded requests."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a batch. `custom_id` is unique within the batch (1-64 characters of
    ``[A-Za-z0-9_-]``, Anthropic's rule, which the other vendors accept too)."""

    custom_id: str
    request: CompletionRequest


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """Where a batch stands. `outcome` is None while it runs."""

    batch_id: str
    outcome: Outcome | None
    total: int
    succeeded: int
    failed: int  # errored, expired and cancelled requests together

    @property
    def ended(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """What became of one submitted request: an answer, or go through the normal path
    (`retry` true; `error` is the per-line error when the vendor gave one)."""

    custom_id: str
    completion: Completion | None = None
    error: ProviderError | None = None
    reason: str | None = None  # why it must be retried: "errored", "expired", "missing_line"...

    @property
    def retry(self) -> bool:
        return self.completion is None


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    custom_id: str | None
    detail: str


@dataclass(slots=True)
class BatchResults:
    """Exactly one outcome per submitted custom_id, and what was odd about the results."""

    outcomes: dict[str, LineOutcome] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def answered(self) -> list[LineOutcome]:
        return [o for o in self.outcomes.values() if not o.retry]

    @property
    def to_retry(self) -> list[LineOutcome]:
        return [o for o in self.outcomes.values() if o.retry]


class ResultCollector:
    """Turns result lines, in any order and of any quality, into `BatchResults`."""

    def __init__(self, adapter: HttpAdapter, items: Sequence[BatchItem], latency_ms: float):
        self._adapter = adapter
        self._requests = {item.custom_id: item.request for item in items}
        self._latency_ms = latency_ms
        self.results = BatchResults()

    def anomaly(self, kind: AnomalyKind, custom_id: str | None, detail: str) -> None:
        self.results.anomalies.append(Anomaly(kind, custom_id, detail[:300]))

    def _claim(self, custom_id: Any) -> CompletionRequest | None:
        """The request `custom_id` names if it is new here, recording why not otherwise."""
        if not isinstance(custom_id, str) or custom_id not in self._requests:
            self.anomaly("unknown_id", str(custom_id)[:64], "a result for a request not sent")
            return None
        if custom_id in self.results.outcomes:
            self.anomaly("duplicate_id", custom_id, "a second result line; the first is kept")
            return None
        return self._requests[custom_id]

    def answer(self, custom_id: Any, payload: Any) -> None:
        """A successful line: `payload` is the sync endpoint's response body."""
        request = self._claim(custom_id)
        if request is None:
            return
        response = HttpResponse(200, {}, b"")
        if isinstance(payload, dict) and payload.get("error"):  # an error inside a 200 line
            error = self._adapter.embedded_error(payload["error"], response, payload)
            self._retry(custom_id, "errored", error)
            return
        try:
            completion = self._adapter.parse_completion(
                request, payload, response, self._latency_ms
            )
        except ProviderError as exc:
            self._retry(custom_id, "malformed_line", exc)
            self.anomaly("malformed_line", custom_id, f"answer not readable: {exc.message}")
            return
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            self._retry(custom_id, "malformed_line", None)
            self.anomaly("malformed_line", custom_id, f"answer not readable ({type(exc).__name__})")
            return
        self.results.outcomes[custom_id] = LineOutcome(custom_id, completion=completion)

    def error(self, custom_id: Any, status: int, payload: Any, reason: str = "errored") -> None:
        """A failed line: `payload` is the sync endpoint's error body for HTTP `status`."""
        if self._claim(custom_id) is None:
            return
        self._retry(custom_id, reason, self._error_for(status, payload))

    def unfinished(self, custom_id: Any, reason: str) -> None:
        """A request the vendor never ran (expired, cancelled)."""
        if self._claim(custom_id) is not None:
            self._retry(custom_id, reason, None)

    def _retry(self, custom_id: str, reason: str, error: ProviderError | None) -> None:
        self.results.outcomes[custom_id] = LineOutcome(custom_id, error=error, reason=reason)

    def _error_for(self, status: int, payload: Any) -> ProviderError:
        body = encode_json(payload) if payload is not None else b""
        response = HttpResponse(status, {}, body)
        return self._adapter.error_for(response, payload if payload is not None else NOT_JSON)

    def finish(self, outcome: Outcome | None = None) -> BatchResults:
        """Every submitted request without a line goes back to the normal path."""
        for custom_id in self._requests:
            if custom_id not in self.results.outcomes:
                self._retry(custom_id, "missing_line", None)
                if outcome == "completed":
                    self.anomaly("missing_line", custom_id, "no result line for this request")
        if outcome == "completed" and any(o.reason == "errored" for o in self.results.to_retry):
            errored = sum(o.reason == "errored" for o in self.results.to_retry)
            self.anomaly("completed_with_errors", None, f"{errored} lines errored")
        return self.results


def jsonl_lines(data: bytes, collector: ResultCollector) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSONL body; a line that is not one is recorded and skipped."""
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        value = decode_json(raw)
        if not isinstance(value, dict):
            collector.anomaly("malformed_line", None, f"line {number} is not a JSON object")
            continue
        yield value


def split_batches(
    items: Sequence[BatchItem], limits: BatchLimits, size_of: Callable[[BatchItem], int]
) -> list[list[BatchItem]]:
    """`items` cut, in order, into batches within `limits`. A single item larger than the
    byte limit raises `ValueError` (it can only go through the normal path)."""
    batches: list[list[BatchItem]] = []
    current: list[BatchItem] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if item_size > limits.max_bytes:
            raise ValueError(f"request {item.custom_id!r} alone is over the batch byte limit")
        if current and (len(current) >= limits.max_requests or size + item_size > limits.max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        batches.append(current)
    return batches


class BatchClient(ABC):
    """One vendor's batch API, over the sync adapter's transport, key and error mapping."""

    vendor: ClassVar[str]
    limits: ClassVar[BatchLimits]

    def __init__(self, adapter: HttpAdapter, *, timeout_s: float | None = None):
        self.adapter = adapter
        self.timeout_s = timeout_s or adapter.config.timeout_s
        self._submitted_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.adapter!r})"

    @abstractmethod
    def encoded_size(self, item: BatchItem) -> int:
        """Bytes `item` adds to a batch, as the vendor counts them for its limit."""

    def split(self, items: Sequence[BatchItem]) -> list[list[BatchItem]]:
        """`items` cut into batches within this vendor's limits."""
        return split_batches(items, self.limits, self.encoded_size)

    @abstractmethod
    async def submit(self, items: Sequence[BatchItem]) -> str:
        """Create one batch of `items` (within `limits`: see `split`); its vendor id."""

    @abstractmethod
    async def poll(self, batch_id: str) -> BatchStatus:
        """The batch's state now."""

    @abstractmethod
    async def results(self, batch_id: str, items: Sequence[BatchItem]) -> BatchResults:
        """One outcome per item of an ended batch."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the vendor to stop the batch (it ends `cancelled` a little later)."""

    # --- shared helpers ---------------------------------------------------------------------

    def _latency_ms(self, batch_id: str) -> float:
        started = self._submitted_at.get(batch_id)
        return (time.monotonic() - started) * 1000 if started is not None else 0.0

    def _check_items(self, items: Sequence[BatchItem]) -> None:
        if not items:
            raise ValueError("a batch needs at least one request")
        if len(items) > self.limits.max_requests:
            raise ValueError(f"{len(items)} requests: over {self.vendor}'s batch limit")
        ids = [item.custom_id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("custom_ids must be unique within a batch")

    async def _call(self, method: str, url: str, headers: dict[str, str], body: Any = None):
        """A JSON call to a batch endpoint: its decoded body, or the adapter's error."""
        try:
            response = await self.adapter.transport.request(
                method, url, headers, body, self.timeout_s
            )
        except ProviderError as exc:
            exc.provider = exc.provider or self.adapter.name
            raise
        return self._decode(response)

    def _decode(self, response: HttpResponse) -> Any:
        if not 200 <= response.status < 300:
            raise self.adapter.error_for(response)
        payload = decode_json(response.body)
        if payload is NOT_JSON:
            raise self.adapter.protocol_error("invalid JSON from the batch API", response)
        return payload

    def _shape_error(self, what: str) -> ProtocolError:
        return ProtocolError(f"batch API: {what}", provider=self.adapter.name)

    def _submitted(self, answer: Any, field: str, missing: str, prefix: str = "") -> str:
        """The batch id the vendor's answer to a submit names in `field` (a string starting
        with `prefix`), its clock started for the lines' latency; else a `ProtocolError`
        saying `missing`."""
        batch_id = answer.get(field) if isinstance(answer, dict) else None
        if not isinstance(batch_id, str) or not batch_id or not batch_id.startswith(prefix):
            raise self._shape_error(missing)
        self._submitted_at[batch_id] = time.monotonic()
        return batch_id

    async def _get_object(
        self, url: str, headers: dict[str, str], field: str, kind: type, missing: str
    ) -> dict[str, Any]:
        """GET a batch (or operation) object, which must hold `field` of type `kind`; else a
        `ProtocolError` saying `missing`."""
        found = await self._call("GET", url, headers)
        if not isinstance(found, dict) or not isinstance(found.get(field), kind):
            raise self._shape_error(missing)
        return found

    async def _download(self, url: str, headers: dict[str, str]) -> bytes:
        """The raw body of a results file (JSONL), or the adapter's error for its status."""
        response = await self.adapter.transport.request("GET", url, headers, None, self.timeout_s)
        if not 200 <= response.status < 300:
            raise self.adapter.error_for(response)
        return response.body


def path_segment(value: str) -> str:
    """An id from the vendor, checked before it goes into a URL path."""
    if not value or any(c in value for c in "/?#%\\") or value in (".", ".."):
        raise ValueError(f"not a valid batch or file id: {value[:40]!r}")
    return value
