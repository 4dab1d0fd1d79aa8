"""The durable record of provider batches, so a resumed driver reattaches instead of re-sending.

Keys, one folder per batch (the folder starts with ``_`` so dataset discovery skips it)::

    runs/run_id=<id>/_batches/<batch_key>/intent.json    written before the batch is created
    runs/run_id=<id>/_batches/<batch_key>/claim.json     the vendor's batch id, once created
    runs/run_id=<id>/_batches/<batch_key>/outcome.json   how it ended, once its rows are routed

All three are written once, with `Store.put_if_absent` (a rename-free link locally, a
conditional ``If-None-Match: *`` put on S3), so two drivers cannot both create a batch under
one key nor both claim it. A batch's state is read from which files exist:

- ``intent`` only: *pending*. Its owner was about to submit it, or died between submitting and
  claiming: the vendor may hold a batch nobody can find. A resumed driver marks it
  ``abandoned`` and sends its requests again (the one window where a request can be paid
  twice; it is as short as one HTTP call).
- ``intent`` + ``claim``: *live*. A resumed driver polls it again and takes its results; none
  of its requests is sent elsewhere (`live_request_hashes`).
- ``outcome``: *done* (completed, expired, cancelled, failed or abandoned).

The ledger is sync, like the store: call it from a thread inside an event loop.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import Store
from evalcluster.store.layout import check_name, run_prefix

__all__ = [
    "BatchClaim",
    "BatchIntent",
    "BatchLedger",
    "BatchOutcome",
    "LedgerEntry",
    "LedgerRequest",
    "batches_prefix",
]

BATCHES_DIR = "_batches"
Outcome = Literal["completed", "expired", "cancelled", "failed", "abandoned"]


def batches_prefix(run_id: str) -> str:
    """``runs/run_id=<id>/_batches/``: the ledger of one run."""
    return f"{run_prefix(run_id)}{BATCHES_DIR}/"


def _now() -> datetime:
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerRequest(_Record):
    """One request of a batch: its id in the batch and its cache identity (`request_hash`)."""

    custom_id: str = Field(min_length=1, max_length=64)
    request_hash: str = Field(min_length=1, max_length=128)


class BatchIntent(_Record):
    """What is about to be submitted. Written before the vendor hears of it."""

    batch_key: str
    run_id: str
    endpoint: str  # the provider endpoint (its actor's name)
    vendor: str
    targets: list[str] = Field(default_factory=list)
    shards: list[int] = Field(default_factory=list)
    requests: list[LedgerRequest]
    created_at: datetime = Field(default_factory=_now)


class BatchClaim(_Record):
    """The vendor's id for the batch, recorded right after it was created."""

    provider_batch_id: str = Field(min_length=1, max_length=256)
    owner: str = ""  # who submitted it (a driver or actor id), for the operator
    claimed_at: datetime = Field(default_factory=_now)


class BatchOutcome(_Record):
    outcome: Outcome
    answered: int = 0
    retried: int = 0
    anomalies: list[str] = Field(default_factory=list)
    finished_at: datetime = Field(default_factory=_now)


class LedgerEntry(NamedTuple):
    intent: BatchIntent
    claim: BatchClaim | None
    outcome: BatchOutcome | None

    @property
    def state(self) -> Literal["pending", "live", "done"]:
        if self.outcome is not None:
            return "done"
        return "live" if self.claim is not None else "pending"


class BatchLedger:
    """The batch records of one store."""

    def __init__(self, store: Store):
        self.store = store

    def _key(self, run_id: str, batch_key: str, name: str) -> str:
        return f"{batches_prefix(run_id)}{check_name('batch key', batch_key)}/{name}.json"

    def write_intent(self, intent: BatchIntent) -> bool:
        """Record `intent`; False when a batch of that key was already recorded (by another
        driver, or by this one before a restart): then it must not be submitted."""
        ids = [r.custom_id for r in intent.requests]
        if not ids or len(set(ids)) != len(ids):
            raise StoreError("a batch intent needs requests with unique custom_ids")
        key = self._key(intent.run_id, intent.batch_key, "intent")
        return self.store.put_if_absent(key, intent.model_dump_json().encode())

    def claim(self, run_id: str, batch_key: str, claim: BatchClaim) -> bool:
        """Record the vendor's id; False if the batch was already claimed (keep the first)."""
        if not self.store.exists(self._key(run_id, batch_key, "intent")):
            raise StoreError(f"batch {batch_key!r} of run {run_id!r} has no intent to claim")
        key = self._key(run_id, batch_key, "claim")
        return self.store.put_if_absent(key, claim.model_dump_json().encode())

    def finish(self, run_id: str, batch_key: str, outcome: BatchOutcome) -> bool:
        """Record how the batch ended; False if an outcome was already recorded."""
        key = self._key(run_id, batch_key, "outcome")
        return self.store.put_if_absent(key, outcome.model_dump_json().encode())

    def entry(self, run_id: str, batch_key: str) -> LedgerEntry | None:
        """The records of one batch, or None if it has no intent."""
        intent = self._read(run_id, batch_key, "intent", BatchIntent)
        if intent is None:
            return None
        return LedgerEntry(
            intent,
            self._read(run_id, batch_key, "claim", BatchClaim),
            self._read(run_id, batch_key, "outcome", BatchOutcome),
        )

    def entries(self, run_id: str) -> list[LedgerEntry]:
        """Every batch of the run, in key order."""
        out = []
        for batch_key in self.store.list_dirs(batches_prefix(run_id)):
            entry = self.entry(run_id, batch_key)
            if entry is not None:
                out.append(entry)
        return out

    def live_batches(self, run_id: str) -> list[LedgerEntry]:
        """Claimed batches without an outcome: those a resumed driver reattaches to."""
        return [e for e in self.entries(run_id) if e.state == "live"]

    def pending_batches(self, run_id: str) -> list[LedgerEntry]:
        """Intents never claimed nor finished (see the module docstring)."""
        return [e for e in self.entries(run_id) if e.state == "pending"]

    def live_request_hashes(self, run_id: str) -> set[str]:
        """The request hashes of every live batch: requests that must not be sent again."""
        return {r.request_hash for e in self.live_batches(run_id) for r in e.intent.requests}

    def in_live_batch(self, run_id: str, request_hash: str) -> bool:
        """Whether `request_hash` is in a live batch of the run (one listing: for many hashes,
        use `live_request_hashes` once)."""
        return request_hash in self.live_request_hashes(run_id)

    def _read(self, run_id: str, batch_key: str, name: str, model: type[_Record]):
        key = self._key(run_id, batch_key, name)
        try:
            data = self.store.get(key)
        except NotFoundError:
            return None
        try:
            return model.model_validate_json(data)
        except (ValidationError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.store.full_uri(key)} is not a valid batch {name}: "
                             f"{str(exc).splitlines()[0]}") from None  # fmt: skip
