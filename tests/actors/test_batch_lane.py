"""The batch lane against the simulator over real HTTP, with a ledger in a local store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from evalcluster.actors.batch_lane import BatchLane, BatchLaneConfig, custom_id_for
from evalcluster.providers import build_adapter
from evalcluster.providers.batch import batch_client
from evalcluster.simulator import answer
from evalcluster.store.batch_ledger import BatchIntent, BatchLedger, LedgerRequest
from evalcluster.store.fs import open_store
from evalcluster.suite.models import ProviderConfig
from tests.actors.conftest import requests
from tests.store.conftest import s3_endpoint, s3_store  # noqa: F401 - fixtures for the S3 case

pytestmark = pytest.mark.anyio
RUN = "run-lane"
FAST = BatchLaneConfig(max_wait_s=0.01, poll_initial_s=0.02, poll_max_s=0.1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ledger(tmp_path) -> BatchLedger:
    return BatchLedger(open_store(str(tmp_path / "store")))


@contextlib.asynccontextmanager
async def lane_for(
    sim, ledger, kind: str = "openai", config: BatchLaneConfig = FAST, drain: bool = True
) -> AsyncIterator[BatchLane]:
    base = sim.url + ("/v1" if kind == "openai" else "")
    adapter = build_adapter(
        "sim", ProviderConfig(kind=kind, base_url=base, api_key_env="EVALCLUSTER_TEST_KEY")
    )
    lane = BatchLane(batch_client(adapter), ledger, run_id=RUN, endpoint="sim", config=config)
    try:
        yield lane
        if drain:  # a lane killed mid-batch (drain=False) leaves its batches live
            await lane.drain()
    finally:
        await lane.close()
        await adapter.aclose()


def hashes(n: int, start: int = 0) -> list[str]:
    return [f"hash-{i}" for i in range(start, start + n)]


async def until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
async def test_results_come_back_to_their_callers_and_the_ledger_records_them(sim, ledger, kind):
    sim.reconfigure(batch_turnaround_s=0.05)
    reqs = requests(5)
    async with lane_for(sim, ledger, kind) as lane:
        assert await lane.start() == 0
        outcomes = await asyncio.gather(
            *(lane.submit(r, h) for r, h in zip(reqs, hashes(5), strict=True))
        )
    for request, outcome in zip(reqs, outcomes, strict=True):
        assert not outcome.retry
        assert outcome.completion.text == answer(request.messages[-1].content, model="sim-1")
    [entry] = ledger.entries(RUN)
    assert entry.state == "done" and entry.outcome.outcome == "completed"
    assert entry.outcome.answered == 5 and entry.claim.provider_batch_id
    assert sorted(r.request_hash for r in entry.intent.requests) == sorted(hashes(5))
    stats = sim.stats()
    assert stats["batches"]["requests_submitted"] == 5 and stats["by_outcome"]["ok"] == 0


async def test_identical_requests_are_sent_once_and_limits_split_batches(sim, ledger):
    sim.reconfigure(batch_turnaround_s=0)
    config = FAST.model_copy(update={"max_batch_requests": 3})
    reqs = requests(7)
    async with lane_for(sim, ledger, config=config) as lane:
        futures = [lane.submit(r, h) for r, h in zip(reqs, hashes(7), strict=True)]
        twin = lane.submit(reqs[0], "hash-0")
        outcomes = await asyncio.gather(*futures, twin)
    assert outcomes[-1] == outcomes[0] and not any(o.retry for o in outcomes)
    stats = sim.stats()["batches"]
    assert stats["created"] == 3 and stats["requests_submitted"] == 7


async def test_per_line_errors_come_back_as_retries(sim, ledger):
    sim.reconfigure(batch_turnaround_s=0, batch_line_error_rate=0.5)
    async with lane_for(sim, ledger) as lane:
        outcomes = await asyncio.gather(
            *(lane.submit(r, h) for r, h in zip(requests(10), hashes(10), strict=True))
        )
    retried = [o for o in outcomes if o.retry]
    assert 0 < len(retried) < 10
    assert {o.reason for o in retried} == {"errored"}
    assert {o.error.kind for o in retried} == {"server_error"}
    [entry] = ledger.entries(RUN)
    assert (entry.outcome.answered, entry.outcome.retried) == (10 - len(retried), len(retried))
    assert entry.outcome.anomalies == ["completed_with_errors"]
    assert lane.snapshot()["retried"] == len(retried)


async def test_an_expired_batch_sends_its_requests_back(sim, ledger):
    sim.reconfigure(batch_turnaround_s=30, batch_expire_after_s=0.2)
    async with lane_for(sim, ledger) as lane:
        outcomes = await asyncio.gather(
            *(lane.submit(r, h) for r, h in zip(requests(3), hashes(3), strict=True))
        )
    assert [o.reason for o in outcomes] == ["expired"] * 3
    assert ledger.entries(RUN)[0].outcome.outcome == "expired"


async def test_a_cancel_cancels_the_batch_at_the_vendor(sim, ledger):
    sim.reconfigure(batch_turnaround_s=60)
    async with lane_for(sim, ledger) as lane:
        futures = [lane.submit(r, h) for r, h in zip(requests(3), hashes(3), strict=True)]
        await until(lambda: len(ledger.live_batches(RUN)) == 1)
        await lane.cancel()
        outcomes = await asyncio.gather(*futures)
        late = await lane.submit(requests(1, start=9)[0], "hash-late")
    assert [o.reason for o in outcomes] == ["cancelled"] * 3
    assert late.retry and late.reason == "cancelled"
    assert ledger.entries(RUN)[0].outcome.outcome == "cancelled"
    assert sim.stats()["batches"]["by_state"] == {"cancelled": 1}


@pytest.fixture(params=["local", "s3"])
def any_ledger(request, tmp_path) -> BatchLedger:
    """The ledger on a local folder, then on S3 (moto's server over HTTP)."""
    if request.param == "s3":
        return BatchLedger(request.getfixturevalue("s3_store"))
    return BatchLedger(open_store(str(tmp_path / "store")))


async def test_a_new_lane_reattaches_to_a_live_batch_and_resends_nothing(sim, any_ledger):
    ledger = any_ledger
    sim.reconfigure(batch_turnaround_s=1.0)
    reqs = requests(4)
    async with lane_for(sim, ledger, drain=False) as first:
        for r, h in zip(reqs, hashes(4), strict=True):
            first.submit(r, h)
        await until(lambda: len(ledger.live_batches(RUN)) == 1)
    # `first` is gone (closed without cancelling, as a killed driver leaves it).
    assert ledger.live_request_hashes(RUN) == set(hashes(4))
    async with lane_for(sim, ledger) as second:
        assert await second.start() == 1
        outcomes = await asyncio.gather(
            *(second.submit(r, h) for r, h in zip(reqs, hashes(4), strict=True))
        )
    assert [o.retry for o in outcomes] == [False] * 4
    assert [o.completion.text for o in outcomes] == [
        answer(r.messages[-1].content, model="sim-1") for r in reqs
    ]
    stats = sim.stats()
    assert stats["batches"]["created"] == 1 and stats["batches"]["requests_submitted"] == 4
    assert stats["batches"]["requests_resubmitted"] == 0 and stats["by_outcome"]["ok"] == 0
    assert ledger.live_batches(RUN) == [] and ledger.entries(RUN)[0].outcome.answered == 4


async def test_a_reattached_batch_that_ends_before_anyone_asks_keeps_its_answers(sim, ledger):
    sim.reconfigure(batch_turnaround_s=0.3)
    reqs = requests(2)
    async with lane_for(sim, ledger, drain=False) as first:
        for r, h in zip(reqs, hashes(2), strict=True):
            first.submit(r, h)
        await until(lambda: len(ledger.live_batches(RUN)) == 1)
    async with lane_for(sim, ledger) as second:
        await second.start()
        await second.drain()
        outcomes = await asyncio.gather(
            *(second.submit(r, h) for r, h in zip(reqs, hashes(2), strict=True))
        )
    assert [o.retry for o in outcomes] == [False, False]
    assert sim.stats()["batches"]["requests_submitted"] == 2


async def test_an_intent_never_claimed_is_abandoned_on_start(sim, ledger):
    ledger.write_intent(
        BatchIntent(
            batch_key="b-orphan",
            run_id=RUN,
            endpoint="sim",
            vendor="openai",
            requests=[LedgerRequest(custom_id=custom_id_for("hash-0"), request_hash="hash-0")],
        )
    )
    sim.reconfigure(batch_turnaround_s=0)
    async with lane_for(sim, ledger) as lane:
        assert await lane.start() == 0
        outcome = await lane.submit(requests(1)[0], "hash-0")
    assert not outcome.retry
    assert ledger.entry(RUN, "b-orphan").outcome.outcome == "abandoned"


async def test_a_refused_submit_sends_everything_to_the_normal_path(sim, ledger):
    sim.reconfigure(api_keys=["sk-only-this-one"])
    async with lane_for(sim, ledger) as lane:
        outcomes = await asyncio.gather(
            *(lane.submit(r, h) for r, h in zip(requests(2), hashes(2), strict=True))
        )
    assert [o.reason for o in outcomes] == ["failed", "failed"]
    assert [a.kind for _, a in lane.anomalies] == ["batch_failed"]
    assert ledger.entries(RUN)[0].outcome.outcome == "failed"
