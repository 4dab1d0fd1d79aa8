"""The vendor batch clients against the simulator's batch APIs, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from evalcluster.errors import AuthError
from evalcluster.providers import build_adapter
from evalcluster.providers.batch import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchLimits,
    GeminiBatchClient,
    OpenAIBatchClient,
    batch_client,
    split_batches,
)
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.spec.models import ProviderConfig
from tests.providers.conftest import KEY, SIM_BASE, ask, sim_answer, sim_input_tokens

pytestmark = pytest.mark.anyio
VENDORS = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="module")
def module_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(seed=0, accuracy=1.0)) as server:
        yield server


@pytest.fixture
def bsim(module_sim: SimulatorThread) -> Iterator[SimulatorThread]:
    module_sim.reconfigure(**SimulatorConfig(seed=0, accuracy=1.0).model_dump())
    module_sim.reset_stats()
    yield module_sim


@contextlib.asynccontextmanager
async def client_for(sim: SimulatorThread, kind: str, api_key) -> AsyncIterator[BatchClient]:
    config = ProviderConfig(
        kind=kind, base_url=sim.url + SIM_BASE[kind], api_key_env="EVALCLUSTER_TEST_KEY"
    )
    adapter = build_adapter("sim", config)
    try:
        yield batch_client(adapter)
    finally:
        await adapter.aclose()


def items(n: int, start: int = 0) -> list[BatchItem]:
    return [
        BatchItem(f"id-{i}", ask(f"What is {i} + 4?", model="sim-1", max_tokens=16))
        for i in range(start, start + n)
    ]


async def until_ended(client: BatchClient, batch_id: str):
    for _ in range(400):
        status = await client.poll(batch_id)
        if status.ended:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(status)


@pytest.mark.parametrize("kind", VENDORS)
async def test_a_batch_round_trip_gives_the_sync_answers(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=0.1)
    batch = items(3)
    async with client_for(bsim, kind, api_key) as client:
        batch_id = await client.submit(batch)
        status = await until_ended(client, batch_id)
        assert status.outcome == "completed" and status.succeeded == 3 and status.failed == 0
        results = await client.results(batch_id, batch)
    assert results.anomalies == [] and len(results.answered) == 3
    for item in batch:
        completion = results.outcomes[item.custom_id].completion
        assert completion.text == sim_answer(item.request)
        assert completion.usage.input_tokens == sim_input_tokens(item.request)
    stats = bsim.stats()
    assert stats["by_format_outcome"][kind] == {"batch_ok": 3}
    assert stats["batches"]["requests_submitted"] == 3


@pytest.mark.parametrize("kind", VENDORS)
async def test_per_line_errors_come_back_to_be_retried(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=0, batch_line_error_rate=0.5)
    batch = items(12)
    async with client_for(bsim, kind, api_key) as client:
        batch_id = await client.submit(batch)
        await until_ended(client, batch_id)
        results = await client.results(batch_id, batch)
    assert sorted(results.outcomes) == sorted(i.custom_id for i in batch)
    assert 0 < len(results.to_retry) < 12
    assert all(o.reason == "errored" and o.error.kind == "server_error" for o in results.to_retry)
    assert [a.kind for a in results.anomalies] == ["completed_with_errors"]


@pytest.mark.parametrize("kind", VENDORS)
async def test_an_expired_batch_sends_its_unfinished_requests_back(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=0.8, batch_expire_after_s=0.3)
    batch = items(4)
    async with client_for(bsim, kind, api_key) as client:
        batch_id = await client.submit(batch)
        await asyncio.sleep(0.35)
        status = await until_ended(client, batch_id)
        results = await client.results(batch_id, batch)
    assert status.outcome == "expired"
    assert [o.custom_id for o in results.answered] == ["id-0"]
    assert {o.custom_id: o.reason for o in results.to_retry} == {
        "id-1": "expired",
        "id-2": "expired",
        "id-3": "expired",
    }


@pytest.mark.parametrize("kind", VENDORS)
async def test_a_cancelled_batch_sends_everything_back(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=60)
    batch = items(3)
    async with client_for(bsim, kind, api_key) as client:
        batch_id = await client.submit(batch)
        await client.cancel(batch_id)
        status = await until_ended(client, batch_id)
        results = await client.results(batch_id, batch)
    assert status.outcome == "cancelled"
    assert {o.reason for o in results.to_retry} == {"cancelled"} and len(results.to_retry) == 3
    assert bsim.stats()["batches"]["tokens_in"] == 0


@pytest.mark.parametrize("kind", VENDORS)
async def test_hostile_results_become_anomalies_and_retries_never_a_crash(bsim, kind, api_key):
    bsim.reconfigure(
        batch_turnaround_s=0,
        batch_corrupt=["malformed_line", "unknown_id", "duplicate_line", "missing_line"],
    )
    batch = items(4)
    async with client_for(bsim, kind, api_key) as client:
        batch_id = await client.submit(batch)
        await until_ended(client, batch_id)
        results = await client.results(batch_id, batch)
    assert sorted(results.outcomes) == [f"id-{i}" for i in range(4)]  # one each, no duplicate
    assert [o.custom_id for o in results.to_retry] == ["id-3"]  # the missing line
    assert results.to_retry[0].reason == "missing_line"
    kinds = sorted(a.kind for a in results.anomalies)
    assert kinds == ["duplicate_id", "malformed_line", "missing_line", "unknown_id"]


async def test_a_bad_key_on_the_batch_api_is_an_auth_error_without_the_key(bsim, api_key):
    bsim.reconfigure(api_keys=["sk-the-right-one"])
    async with client_for(bsim, "anthropic", api_key) as client:
        with pytest.raises(AuthError) as caught:
            await client.submit(items(1))
    assert KEY not in str(caught.value)


def test_split_respects_the_count_and_byte_limits():
    batch = items(7)
    cut = split_batches(batch, BatchLimits(max_requests=3, max_bytes=10**9), lambda i: 10)
    assert [len(b) for b in cut] == [3, 3, 1]
    cut = split_batches(batch, BatchLimits(max_requests=100, max_bytes=25), lambda i: 10)
    assert [len(b) for b in cut] == [2, 2, 2, 1]
    assert [i.custom_id for b in cut for i in b] == [i.custom_id for i in batch]
    with pytest.raises(ValueError, match="alone is over"):
        split_batches(batch, BatchLimits(max_requests=100, max_bytes=5), lambda i: 10)


def test_vendor_limits_are_the_documented_ones():
    assert OpenAIBatchClient.limits == BatchLimits(50_000, 200 * 1024 * 1024)
    assert AnthropicBatchClient.limits == BatchLimits(100_000, 256 * 1024 * 1024)
    assert GeminiBatchClient.limits.max_bytes == 20 * 1024 * 1024


async def test_formats_without_a_batch_api_are_refused(api_key):
    adapter = build_adapter(
        "r", ProviderConfig(kind="openrouter", api_key_env="EVALCLUSTER_TEST_KEY")
    )
    with pytest.raises(ValueError, match="no batch API"):
        batch_client(adapter)
    await adapter.aclose()


def test_an_error_inside_a_success_line_is_a_retry_not_an_answer(api_key):
    from evalcluster.providers.batch.base import ResultCollector

    adapter = build_adapter("o", ProviderConfig(kind="openai", api_key_env="EVALCLUSTER_TEST_KEY"))
    collector = ResultCollector(adapter, items(1), latency_ms=0.0)
    collector.answer("id-0", {"error": {"message": "upstream failed", "code": 502}})
    [outcome] = collector.finish("completed").to_retry
    assert outcome.reason == "errored" and outcome.error.kind == "server_error"
