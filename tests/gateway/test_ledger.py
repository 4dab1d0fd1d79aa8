"""The spend ledger: counts per day, tenant and route, and a restarted one starts from the
day's rows in the lake (real Ray)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evalcluster.gateway.ledger import CallRecord, SpendLedger
from evalcluster.gateway.rows import day_of, write_rows
from evalcluster.store.fs import open_store
from tests.gateway.test_rows import _row

pytestmark = pytest.mark.timeout(120)


def test_a_new_ledger_reads_todays_spend_back_and_counts_new_calls(
    local_ray, tmp_path: Path
) -> None:
    store = open_store(str(tmp_path))
    now = datetime.now(UTC)
    today, yesterday = day_of(now), day_of(now - timedelta(days=1))
    write_rows(store, "team-a", today, [_row("a", now), _row("b", now)])  # 0.25 USD each
    write_rows(store, "team-a", yesterday, [_row("old", now - timedelta(days=1))])
    failed = {**_row("c", now), "error_kind": "timeout", "cost_usd": 0.0}
    write_rows(store, "team-b", today, [failed])

    ledger = SpendLedger.remote(str(tmp_path))
    assert local_ray.get(ledger.spent.remote("team-a", today)) == pytest.approx(0.5)
    assert local_ray.get(ledger.spent.remote("team-a", yesterday)) == 0.0  # only today is read
    totals = local_ray.get(
        ledger.add.remote([CallRecord("team-a", "sim/sim-1", today, "cached", 3, 1, 0.0),
                           CallRecord("team-a", "other", today, "ok", 3, 1, 1.0)])
    )  # fmt: skip
    assert totals == {("team-a", today): pytest.approx(1.5)}
    usage = {(u["tenant"], u["model"]): u for u in local_ray.get(ledger.usage.remote(None, today))}
    assert usage[("team-a", "sim/sim-1")]["requests"] == 3
    assert usage[("team-a", "sim/sim-1")]["cache_hits"] == 1
    assert usage[("team-b", "sim/sim-1")]["errors"] == 1
    mine = local_ray.get(ledger.usage.remote("team-b", None))
    assert {u["tenant"] for u in mine} == {"team-b"}
    local_ray.kill(ledger)
