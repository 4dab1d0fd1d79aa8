"""The response cache: finished answers reused across runs, kept in the store beside the lake.

Layout: ``cache/<target identity>/<dataset>-<shard size>-<shard index>.parquet``, the target
identity naming the provider endpoint (`endpoint_identity`), the model and its parameters, so
each endpoint's answers are filed apart. A shard reads its one part file, so a re-run of the same
suite costs one read per shard and no provider call.
Entries are matched by request hash (which covers everything that decides the answer), so a part
file shared by suites that differ only in, say, scorers serves both, and a changed prompt simply
misses. Only successful answers are written; failures are never cached.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, fields

import pyarrow as pa
import pyarrow.parquet as pq

from evalcluster.providers.calls import CallResult
from evalcluster.store.fs import Store
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.models import TargetSpec

_SCHEMA = pa.schema(
    [
        ("request_hash", pa.string()),
        ("text", pa.string()),
        ("finish_reason", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("usage_estimated", pa.bool_()),
        ("cost_usd", pa.float64()),
        ("latency_ms", pa.float64()),
        ("served_by", pa.string()),
        ("cached_input_tokens", pa.int64()),  # null in entries written before it existed
    ]
)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    request_hash: str
    text: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    usage_estimated: bool
    cost_usd: float  # what the answer cost when it was bought
    latency_ms: float
    served_by: str
    cached_input_tokens: int | None = 0

    def to_call_result(self) -> CallResult:
        """A reused answer: the original usage, no attempt made and nothing spent (or saved)
        now, and not a batch answer."""
        return CallResult(
            served_by=self.served_by,
            attempts=0,
            latency_ms=self.latency_ms,
            text=self.text,
            finish_reason=self.finish_reason,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            usage_estimated=self.usage_estimated,
            cost_usd=0.0,
            cached_input_tokens=self.cached_input_tokens or 0,
        )


_FIELDS = [f.name for f in fields(CacheEntry)]


def cache_entry_from_call(result: CallResult, request_hash: str = "") -> CacheEntry:
    return CacheEntry(
        request_hash=request_hash,
        text=result.text,
        finish_reason=result.finish_reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        usage_estimated=result.usage_estimated,
        cost_usd=result.cost_usd,
        latency_ms=result.latency_ms,
        served_by=result.served_by,
        cached_input_tokens=result.cached_input_tokens,
    )


class ResponseCache:
    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def part_key(suite: LoadedSuite, target: TargetSpec, endpoint: str, index: int) -> str:
        """The part file of shard `index` of `target`, whose provider's identity (from
        `evalcluster.jobs.samples.endpoint_identity`) is `endpoint`."""
        identity = json.dumps(
            {"endpoint": endpoint, "model": target.model, "params": target.params.as_dict()},
            sort_keys=True,
        )
        namespace = hashlib.sha256(identity.encode()).hexdigest()[:16]
        dataset = suite.dataset_sha256[:16]
        return f"cache/{namespace}/{dataset}-{suite.spec.shard_size}-{index}.parquet"

    def load(self, key: str) -> dict[str, CacheEntry]:
        if not self.store.exists(key):
            return {}
        table = pq.read_table(io.BytesIO(self.store.get(key)), schema=_SCHEMA)
        columns = table.to_pydict()
        rows = zip(*(columns[name] for name in _FIELDS), strict=True)  # by name, not position
        entries = (CacheEntry(*values) for values in rows)
        return {entry.request_hash: entry for entry in entries}

    def save(self, key: str, entries: dict[str, CacheEntry]) -> None:
        # Column by column: building rows as dicts (dataclasses.asdict) took a third of a shard
        # task's time.
        values = list(entries.values())
        columns = {name: [getattr(e, name) for e in values] for name in _FIELDS}
        columns["request_hash"] = list(entries)  # the key it is filed under
        table = pa.table(columns, schema=_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self.store.put(key, buffer.getvalue())
