"""The gateway's call rows: written by time, by count and on close, read back per tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evalcluster.errors import StoreError
from evalcluster.gateway.rows import RowBuffer, part_key, read_gateway_rows
from evalcluster.store.fs import open_store


def _row(request_id: str, when: datetime | None = None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "key_id": "abc123",
        "model": "sim/sim-1",
        "provider": "sim",
        "provider_model": "sim-1",
        "served_by": "sim",
        "stream": False,
        "status": 200,
        "input_tokens": 5,
        "output_tokens": 1,
        "cost_usd": 0.25,
        "latency_ms": 3.5,
        "attempts": 1,
        "cache_hit": False,
        "finish_reason": "stop",
        "tool_calls": 0,
        "error_kind": None,
        "error": None,
        "finished_at": when or datetime.now(UTC),
    }


def test_rows_are_written_by_count_and_on_close_per_tenant_and_day(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))

    async def main() -> RowBuffer:
        buffer = RowBuffer(store, flush_s=3600, flush_count=3)  # the timer never fires here
        for i in range(3):
            buffer.add("team-a", _row(f"a{i}"))
        for _ in range(100):  # the count flush runs in the background
            if buffer.written:
                break
            await asyncio.sleep(0.1)
        assert buffer.written == 3
        buffer.add("team-b", _row("b0", datetime(2026, 1, 2, 23, 59, tzinfo=UTC)))
        await buffer.close()  # what a replica does at shutdown
        return buffer

    buffer = asyncio.run(main())
    assert buffer.written == 4
    a = read_gateway_rows(store, tenant="team-a").to_pylist()
    assert sorted(r["request_id"] for r in a) == ["a0", "a1", "a2"]
    assert {r["tenant"] for r in a} == {"team-a"}
    (b,) = read_gateway_rows(store, tenant="team-b").to_pylist()
    assert b["day"] == "2026-01-02" and b["cost_usd"] == 0.25
    assert read_gateway_rows(store, day="2026-01-02").num_rows == 1
    keys = store.list("gateway/")
    assert any(k.startswith("gateway/tenant=team-b/day=2026-01-02/part-") for k in keys)


def test_rows_are_written_by_time(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))

    async def main() -> None:
        buffer = RowBuffer(store, flush_s=0.1, flush_count=1000)
        buffer.add("t", _row("x"))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if buffer.written:
                return
        raise AssertionError("the timer never wrote the row")

    asyncio.run(main())
    assert read_gateway_rows(store).num_rows == 1


def test_an_empty_lake_reads_as_no_rows_and_bad_tenants_are_refused(tmp_path: Path) -> None:
    assert read_gateway_rows(open_store(str(tmp_path))).num_rows == 0
    with pytest.raises(StoreError):
        part_key("../escape", "2026-01-01")
