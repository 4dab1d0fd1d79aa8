"""A batch lane: one provider endpoint's requests gathered into vendor batches. Plain asyncio.

    lane = BatchLane(client, ledger, run_id="run-1", endpoint="sim-openai")
    await lane.start()                       # reattach to the run's live batches, if any
    outcome = await lane.submit(request, request_hash)
    if outcome.retry: ...                    # send it through the normal (sync) path

`submit` queues the request; the queue becomes a batch when it holds `max_batch_requests` or
its oldest request has waited `max_wait_s` (or on `flush`). For each batch, in order: its
intent goes to the ledger (`store/batch_ledger.py`), the vendor client submits it, its vendor id
is claimed in the ledger, it is polled with exponential backoff until it ends, and each result
goes back to the caller awaiting it by custom_id. Per-line errors, expired and cancelled
requests, missing or unreadable lines come back as `retry` outcomes (never as answers), and
every oddity is kept in `anomalies`. A request whose `request_hash` is already queued, in a live
batch or answered by this lane shares that outcome: nothing is sent twice.

On `start`, the ledger's live batches of this run and endpoint are polled again, so a lane that
replaces a killed one reattaches instead of re-sending; intents that were never claimed (the
lane died between writing one and recording the vendor's id) are finished as ``abandoned`` and
their requests are sent again when asked for. `cancel` cancels every batch at the vendor (their
unfinished requests come back as `retry`, reason ``cancelled``); `close` stops polling and
leaves the batches at the vendor for a later lane.

Store calls run in a thread: the store is sync and may be S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from evalcluster.errors import ProviderError
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.providers.batch import BatchClient, BatchItem, LineOutcome
from evalcluster.providers.batch.base import Anomaly, BatchResults
from evalcluster.store.batch_ledger import (
    BatchClaim,
    BatchIntent,
    BatchLedger,
    BatchOutcome,
    LedgerEntry,
    LedgerRequest,
)

__all__ = ["BatchLane", "BatchLaneConfig", "custom_id_for"]

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]


class BatchLaneConfig(BaseModel):
    """How a lane gathers and watches batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_requests: int = Field(
        1000, ge=1, description="A batch is sent once it holds this many requests "
        "(the vendor's own limit applies on top: see providers/batch)."
    )  # fmt: skip
    max_wait_s: float = Field(
        5.0, ge=0, description="...or once its oldest request has waited this long."
    )
    poll_initial_s: float = Field(1.0, gt=0, description="First delay between two polls.")
    poll_max_s: float = Field(60.0, gt=0, description="Longest delay between two polls.")
    poll_factor: float = Field(2.0, ge=1, description="Each delay is the last times this.")
    max_poll_errors: int = Field(
        20, ge=1, description="Transient poll failures in a row before the batch's requests "
        "are sent back to the normal path (the batch is left at the vendor)."
    )  # fmt: skip


@dataclass(slots=True)
class _Waiting:
    request_hash: str
    custom_id: str
    request: CompletionRequest | None
    future: asyncio.Future[LineOutcome]
    target: str = ""
    shard: int | None = None


@dataclass(slots=True)
class _Batch:
    key: str
    hashes: list[str]
    provider_id: str | None = None
    ended: bool = False
    waiting: set[str] = field(default_factory=set)


def custom_id_for(request_hash: str) -> str:
    """A request's custom_id: within every vendor's rule (1-64 of ``[A-Za-z0-9_-]``) whatever
    the hash looks like, and the same on every run."""
    return "r" + hashlib.blake2b(request_hash.encode(), digest_size=16).hexdigest()


class BatchLane:
    """Batches for one endpoint of one run."""

    def __init__(
        self,
        client: BatchClient,
        ledger: BatchLedger,
        *,
        run_id: str,
        endpoint: str,
        config: BatchLaneConfig | None = None,
        owner: str = "",
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.ledger = ledger
        self.run_id = run_id
        self.endpoint = endpoint
        self.config = config or BatchLaneConfig()
        self.owner = owner
        self._sleep = sleep
        self._clock = clock
        self._queue: dict[str, _Waiting] = {}  # request_hash -> not yet in a batch
        self._inflight: dict[str, _Waiting] = {}  # request_hash -> in a batch at the vendor
        self._done: dict[str, LineOutcome] = {}  # answered by a batch nobody was waiting on
        self._batches: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._queued_since: float | None = None
        self._cancelled = False
        self.anomalies: list[tuple[str, Anomaly]] = []
        self.answered = 0
        self.retried = 0

    # --- the caller's side ------------------------------------------------------------------

    async def start(self) -> int:
        """Reattach to this run's live batches of this endpoint; the number reattached."""
        entries = await asyncio.to_thread(self.ledger.entries, self.run_id)
        reattached = 0
        for entry in entries:
            if entry.intent.endpoint != self.endpoint or entry.state == "done":
                continue
            if entry.state == "pending":
                await self._finish_ledger(entry.intent.batch_key, "abandoned", None)
                continue
            self._reattach(entry)
            reattached += 1
        return reattached

    def submit(
        self,
        request: CompletionRequest,
        request_hash: str,
        *,
        target: str = "",
        shard: int | None = None,
    ) -> asyncio.Future[LineOutcome]:
        """The outcome of `request` by batch (await it). Shared with any identical request
        (same `request_hash`) this lane already holds."""
        loop = asyncio.get_running_loop()
        if request_hash in self._done:
            future: asyncio.Future[LineOutcome] = loop.create_future()
            future.set_result(self._done.pop(request_hash))
            return future
        for pool in (self._inflight, self._queue):
            known = pool.get(request_hash)
            if known is not None:
                if known.request is None:
                    known.request = request  # a reattached one: now its request is known
                return known.future
        if self._cancelled:
            future = loop.create_future()
            future.set_result(LineOutcome(custom_id_for(request_hash), reason="cancelled"))
            return future
        waiting = _Waiting(request_hash, custom_id_for(request_hash), request,
                           loop.create_future(), target, shard)  # fmt: skip
        self._queue[request_hash] = waiting
        if len(self._queue) >= self.config.max_batch_requests:
            self.flush()
        elif self._timer is None:
            self._queued_since = self._clock()
            self._timer = self._spawn(self._flush_later())
        return waiting.future

    def flush(self) -> None:
        """Send what is queued now, as one batch or more (the vendor's limits)."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
        self._queued_since = None
        waiting = list(self._queue.values())
        self._queue.clear()
        while waiting:
            chunk, waiting = (waiting[: self.config.max_batch_requests],
                              waiting[self.config.max_batch_requests :])  # fmt: skip
            items = [BatchItem(w.custom_id, w.request) for w in chunk if w.request is not None]
            try:
                parts = self.client.split(items)
            except ValueError as exc:  # one request over the vendor's byte limit
                for w in chunk:
                    self._resolve(w, LineOutcome(w.custom_id, reason=f"not batchable: {exc}"))
                continue
            by_id = {w.custom_id: w for w in chunk}
            for part in parts:
                group = [by_id[item.custom_id] for item in part]
                for w in group:
                    self._inflight[w.request_hash] = w
                self._spawn(self._run_batch(group))

    async def cancel(self) -> None:
        """Cancel every batch at the vendor and end what is queued; polling goes on, so the
        requests a batch finished before the cancel still come back answered."""
        self._cancelled = True
        for w in list(self._queue.values()):
            self._resolve(w, LineOutcome(w.custom_id, reason="cancelled"))
        self._queue.clear()
        for batch in list(self._batches.values()):
            if batch.provider_id is not None and not batch.ended:
                try:
                    await self.client.cancel(batch.provider_id)
                except ProviderError as exc:
                    log.warning("cancelling batch %s failed: %s", batch.key, exc)

    async def drain(self) -> None:
        """Wait until every batch this lane started or reattached has ended and been routed."""
        self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop gathering and polling; batches stay at the vendor for a later lane."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._tasks.clear()

    def snapshot(self) -> dict[str, int]:
        """Progress, for the CLI, events and metrics."""
        live = [b for b in self._batches.values() if not b.ended]
        return {
            "queued": len(self._queue),
            "batches_in_progress": len(live),
            "requests_in_progress": len(self._inflight),
            "answered": self.answered,
            "retried": self.retried,
            "anomalies": len(self.anomalies),
        }

    # --- batches ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _flush_later(self) -> None:
        await self._sleep(self.config.max_wait_s)
        self._timer = None
        self.flush()

    async def _run_batch(self, group: Sequence[_Waiting]) -> None:
        key = f"b-{uuid.uuid4().hex[:20]}"
        batch = _Batch(key, [w.request_hash for w in group])
        self._batches[key] = batch
        intent = BatchIntent(
            batch_key=key, run_id=self.run_id, endpoint=self.endpoint, vendor=self.client.vendor,
            targets=sorted({w.target for w in group if w.target}),
            shards=sorted({w.shard for w in group if w.shard is not None}),
            requests=[LedgerRequest(custom_id=w.custom_id, request_hash=w.request_hash)
                      for w in group],
        )  # fmt: skip
        items = [BatchItem(w.custom_id, w.request) for w in group if w.request is not None]
        try:
            await asyncio.to_thread(self.ledger.write_intent, intent)
            batch.provider_id = await self.client.submit(items)
        except (ProviderError, ValueError) as exc:
            await self._give_back(batch, "failed", f"submit failed: {exc}")
            return
        claimed = await asyncio.to_thread(self.ledger.claim, self.run_id, key,
                                          BatchClaim(provider_batch_id=batch.provider_id,
                                                     owner=self.owner))  # fmt: skip
        if not claimed:  # cannot happen with fresh keys; recorded rather than trusted
            self.anomalies.append((key, Anomaly("duplicate_id", None, "batch already claimed")))
        await self._track(batch)

    def _reattach(self, entry: LedgerEntry) -> None:
        assert entry.claim is not None
        loop = asyncio.get_running_loop()
        key = entry.intent.batch_key
        batch = _Batch(key, [r.request_hash for r in entry.intent.requests],
                       provider_id=entry.claim.provider_batch_id)  # fmt: skip
        self._batches[key] = batch
        for r in entry.intent.requests:
            self._inflight.setdefault(
                r.request_hash, _Waiting(r.request_hash, r.custom_id, None, loop.create_future())
            )
        self._spawn(self._track(batch))

    async def _track(self, batch: _Batch) -> None:
        assert batch.provider_id is not None
        delay = self.config.poll_initial_s
        errors = 0
        while True:
            await self._sleep(delay)
            try:
                status = await self.client.poll(batch.provider_id)
            except ProviderError as exc:
                errors += 1
                if not exc.retryable or errors >= self.config.max_poll_errors:
                    await self._give_back(batch, "failed", f"polling failed: {exc}")
                    return
                continue
            errors = 0
            if status.ended:
                break
            delay = min(self.config.poll_max_s, delay * self.config.poll_factor)
        waiting = [self._inflight[h] for h in batch.hashes if h in self._inflight]
        items = [BatchItem(w.custom_id, w.request or _unknown_request()) for w in waiting]
        for attempt in range(1, self.config.max_poll_errors + 1):
            try:
                results = await self.client.results(batch.provider_id, items)
                break
            except ProviderError as exc:
                if not exc.retryable or attempt == self.config.max_poll_errors:
                    await self._give_back(batch, "failed", f"results failed: {exc}")
                    return
                await self._sleep(min(self.config.poll_max_s, delay))
        self._route(batch, waiting, results)
        kinds = [a.kind for a in results.anomalies]
        await self._finish_ledger(batch.key, status.outcome or "completed", results, kinds)

    def _route(self, batch: _Batch, waiting: list[_Waiting], results: BatchResults) -> None:
        batch.ended = True
        for anomaly in results.anomalies:
            self.anomalies.append((batch.key, anomaly))
            log.warning("batch %s: %s %s: %s", batch.key, anomaly.kind, anomaly.custom_id,
                        anomaly.detail)  # fmt: skip
        for w in waiting:
            outcome = results.outcomes.get(w.custom_id) or LineOutcome(
                w.custom_id, reason="missing_line"
            )
            self._resolve(w, outcome)

    async def _give_back(self, batch: _Batch, outcome: str, why: str) -> None:
        """Send the batch's requests back to the normal path and record it ended."""
        batch.ended = True
        self.anomalies.append((batch.key, Anomaly("batch_failed", None, why[:300])))
        for h in batch.hashes:
            w = self._inflight.get(h)
            if w is not None:
                self._resolve(w, LineOutcome(w.custom_id, reason=outcome))
        await self._finish_ledger(batch.key, "failed", None, ["batch_failed"])

    def _resolve(self, w: _Waiting, outcome: LineOutcome) -> None:
        self._inflight.pop(w.request_hash, None)
        self._queue.pop(w.request_hash, None)
        if outcome.retry:
            self.retried += 1
        else:
            self.answered += 1
        if w.future.done():
            return
        w.future.set_result(outcome)
        if w.request is None:
            self._done[w.request_hash] = outcome  # reattached, nobody has asked for it yet

    async def _finish_ledger(self, key: str, outcome: str, results: BatchResults | None,
                             kinds: list[str] | None = None) -> None:  # fmt: skip
        record = BatchOutcome(
            outcome=outcome,  # type: ignore[arg-type]
            answered=len(results.answered) if results else 0,
            retried=len(results.to_retry) if results else 0,
            anomalies=kinds or [],
        )
        await asyncio.to_thread(self.ledger.finish, self.run_id, key, record)


def _unknown_request() -> CompletionRequest:
    """Stands for a reattached request nobody has asked for again: only used to estimate
    usage when the vendor reports none."""
    return CompletionRequest(model="", messages=(Message("user", ""),))
