"""The gateway's call log: one row per call, in the lake beside the runs.

Keys: ``gateway/tenant=<tenant>/day=<yyyy-mm-dd>/part-<uuid>.parquet``. Each replica keeps its
rows in a `RowBuffer` and writes them every `rows_flush_s` seconds, when `rows_flush_count`
are waiting, and when the replica shuts down; a file holds one tenant's rows of one UTC day.
Rows never hold prompt or answer text (they may be anyone's data); `request_id` matches the
``x-request-id`` header of the answer. `tenant` and `day` live only in the path, as `run_id`
and `target` do for runs; `read_gateway_rows` (or DuckDB, see the README) gives them back as
string columns.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import Store
from evalcluster.store.lake import hive_dataset
from evalcluster.store.layout import check_name

log = logging.getLogger("evalcluster.gateway")

GATEWAY_PREFIX = "gateway/"
_UTC_MICROS = pa.timestamp("us", tz="UTC")

ROW_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("key_id", pa.string(), nullable=False),  # a digest prefix, never the key
        pa.field("model", pa.string(), nullable=False),  # the route the client named
        pa.field("provider", pa.string()),  # the route's provider (null: no such route)
        pa.field("provider_model", pa.string()),
        pa.field("served_by", pa.string()),  # who answered (differs on fallback)
        pa.field("stream", pa.bool_(), nullable=False),
        pa.field("status", pa.int32(), nullable=False),  # the HTTP status the client got
        pa.field("input_tokens", pa.int64(), nullable=False),
        pa.field("output_tokens", pa.int64(), nullable=False),
        pa.field("cost_usd", pa.float64(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),  # in the gateway, end to end
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("cache_hit", pa.bool_(), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("tool_calls", pa.int32(), nullable=False),
        pa.field("error_kind", pa.string()),
        pa.field("error", pa.string()),
        pa.field("finished_at", _UTC_MICROS, nullable=False),
    ]
)
PARTITIONS = pa.schema([("tenant", pa.string()), ("day", pa.string())])


def day_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def part_key(tenant: str, day: str) -> str:
    """A new file's key for `tenant`'s rows of `day`."""
    check_name("tenant name", tenant)
    return f"{GATEWAY_PREFIX}tenant={tenant}/day={day}/part-{uuid.uuid4().hex}.parquet"


def rows_to_parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """One zstd Parquet file of `rows` (each with every `ROW_SCHEMA` column)."""
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=ROW_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_rows(store: Store, tenant: str, day: str, rows: Sequence[Mapping[str, Any]]) -> str:
    key = part_key(tenant, day)
    store.put(key, rows_to_parquet(rows))
    return key


class RowBuffer:
    """One replica's rows waiting to be written, flushed by time, by count and on close."""

    def __init__(self, store: Store, flush_s: float, flush_count: int) -> None:
        self.store = store
        self.flush_s = flush_s
        self.flush_count = flush_count
        self._rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self.written = 0

    def add(self, tenant: str, row: dict[str, Any]) -> None:
        """Keep `row` of `tenant` (its day is that of `finished_at`)."""
        day = day_of(row["finished_at"])
        self._rows.setdefault((tenant, day), []).append(row)
        self._count += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tick())
        if self._count >= self.flush_count:
            task = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _tick(self) -> None:
        while self._count:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Write every waiting row now (in a worker thread: the store may be S3)."""
        batches, self._rows, self._count = self._rows, {}, 0
        for (tenant, day), rows in batches.items():
            try:
                await asyncio.to_thread(write_rows, self.store, tenant, day, rows)
                self.written += len(rows)
            except (StoreError, OSError, pa.ArrowException) as exc:
                # The call log must not take the gateway down with the store; the rows are
                # lost and the loss is logged (the spend ledger still counted them).
                log.warning("gateway: %d call rows of %s lost: %s", len(rows), tenant, exc)

    async def close(self) -> None:
        """Flush what is left and stop the timer (the replica is shutting down)."""
        if self._task is not None:
            self._task.cancel()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()


def gateway_dataset(store: Store) -> Any:
    """Every gateway row as one hive-partitioned pyarrow dataset (`tenant` and `day` strings)."""
    schema = pa.unify_schemas([ROW_SCHEMA, PARTITIONS])
    return hive_dataset(store, GATEWAY_PREFIX, PARTITIONS, schema, what="gateway rows")


def read_gateway_rows(
    store: Store, *, tenant: str | None = None, day: str | None = None
) -> pa.Table:
    """The gateway's rows, of one tenant and/or day if given (an empty table if none)."""
    import pyarrow.dataset as ds

    try:
        dataset = gateway_dataset(store)
    except NotFoundError:
        return pa.unify_schemas([ROW_SCHEMA, PARTITIONS]).empty_table()
    wanted = None
    if tenant is not None:
        wanted = ds.field("tenant") == tenant
    if day is not None:
        same_day = ds.field("day") == day
        wanted = same_day if wanted is None else wanted & same_day
    try:
        return dataset.to_table(filter=wanted)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read the gateway rows in {store.uri}: {e}") from e


def now() -> datetime:
    return datetime.now(UTC)
