"""The batch ledger on a local folder and on S3 (moto's server, with its conditional puts)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow.dataset as ds
import pytest

from evalcluster.errors import StoreError
from evalcluster.store.batch_ledger import (
    BatchClaim,
    BatchIntent,
    BatchLedger,
    BatchOutcome,
    LedgerRequest,
    batches_prefix,
)

RUN = "run-ledger"


def intent(key: str = "b-0001", hashes: tuple[str, ...] = ("h1", "h2")) -> BatchIntent:
    return BatchIntent(
        batch_key=key,
        run_id=RUN,
        endpoint="sim-openai",
        vendor="openai",
        targets=["t"],
        shards=[0],
        requests=[LedgerRequest(custom_id=f"c-{h}", request_hash=h) for h in hashes],
    )


def test_a_batch_goes_from_pending_to_live_to_done(store):
    ledger = BatchLedger(store)
    assert ledger.write_intent(intent()) is True
    assert [e.state for e in ledger.entries(RUN)] == ["pending"]
    assert ledger.live_request_hashes(RUN) == set()
    assert ledger.claim(RUN, "b-0001", BatchClaim(provider_batch_id="batch_abc")) is True
    live = ledger.live_batches(RUN)
    assert [e.claim.provider_batch_id for e in live] == ["batch_abc"]
    assert ledger.in_live_batch(RUN, "h2") and not ledger.in_live_batch(RUN, "h3")
    assert ledger.finish(RUN, "b-0001", BatchOutcome(outcome="completed", answered=2)) is True
    assert ledger.live_batches(RUN) == [] and not ledger.in_live_batch(RUN, "h2")
    assert ledger.entry(RUN, "b-0001").outcome.answered == 2


def test_records_are_written_once_and_the_first_claim_wins(store):
    ledger = BatchLedger(store)
    assert ledger.write_intent(intent()) is True
    assert ledger.write_intent(intent(hashes=("h9",))) is False
    assert [r.request_hash for r in ledger.entry(RUN, "b-0001").intent.requests] == ["h1", "h2"]
    assert ledger.claim(RUN, "b-0001", BatchClaim(provider_batch_id="first")) is True
    assert ledger.claim(RUN, "b-0001", BatchClaim(provider_batch_id="second")) is False
    assert ledger.entry(RUN, "b-0001").claim.provider_batch_id == "first"
    assert ledger.finish(RUN, "b-0001", BatchOutcome(outcome="expired")) is True
    assert ledger.finish(RUN, "b-0001", BatchOutcome(outcome="completed")) is False


def test_two_drivers_claiming_at_once_get_one_winner(store):
    ledger = BatchLedger(store)
    ledger.write_intent(intent())
    with ThreadPoolExecutor(8) as pool:
        wins = list(
            pool.map(
                lambda i: ledger.claim(RUN, "b-0001", BatchClaim(provider_batch_id=f"id{i}")),
                range(8),
            )
        )
    assert wins.count(True) == 1


def test_bad_input_is_refused_with_a_clear_error(store):
    ledger = BatchLedger(store)
    with pytest.raises(StoreError, match="no intent"):
        ledger.claim(RUN, "b-none", BatchClaim(provider_batch_id="x"))
    with pytest.raises(StoreError, match="unique custom_ids"):
        ledger.write_intent(intent(hashes=("h1", "h1")))
    with pytest.raises(StoreError, match="invalid batch key"):
        ledger.write_intent(intent(key="../escape"))
    store.put(f"{batches_prefix(RUN)}b-bad/intent.json", b'{"nope": 1}')
    with pytest.raises(StoreError, match="not a valid batch intent"):
        ledger.entries(RUN)


def test_the_ledger_is_invisible_to_dataset_discovery(local_store):
    from evalcluster.store.lake import commit_shard
    from tests.store.conftest import result_row

    BatchLedger(local_store).write_intent(intent())
    commit_shard(local_store, RUN, "t", 0, [result_row(RUN, "t", 1)], ["exact", "numeric"])
    fs, path = local_store.arrow_filesystem_and_path("runs")
    table = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 1
