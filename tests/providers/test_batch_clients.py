"""The vendor batch clients against the simulator's batch APIs, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from evalcluster.errors import AuthError, ProtocolError, ProviderError
from evalcluster.providers import build_adapter
from evalcluster.providers.batch import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchLimits,
    BatchResults,
    BatchStatus,
    GeminiBatchClient,
    OpenAIBatchClient,
    batch_client,
    split_batches,
)
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.suite.models import ProviderConfig
from tests.providers.conftest import (
    KEY,
    SIM_BASE,
    ask,
    mocked,
    reply,
    sim_answer,
    sim_input_tokens,
)

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
async def client_for(sim: SimulatorThread, kind: str) -> AsyncIterator[BatchClient]:
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


async def run_batch(
    sim: SimulatorThread,
    kind: str,
    batch: list[BatchItem],
    after_submit: Callable[[BatchClient, str], Awaitable[object]] | None = None,
) -> tuple[BatchStatus, BatchResults]:
    """Submit `batch` to the simulator's `kind` batch API (then `after_submit`), wait for it to
    end, and read its results."""
    async with client_for(sim, kind) as client:
        batch_id = await client.submit(batch)
        if after_submit is not None:
            await after_submit(client, batch_id)
        status = await until_ended(client, batch_id)
        return status, await client.results(batch_id, batch)


@pytest.mark.parametrize("kind", VENDORS)
async def test_a_batch_round_trip_gives_the_sync_answers(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=0.1)
    batch = items(3)
    status, results = await run_batch(bsim, kind, batch)
    assert status.outcome == "completed" and status.succeeded == 3 and status.failed == 0
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
    _, results = await run_batch(bsim, kind, batch)
    assert sorted(results.outcomes) == sorted(i.custom_id for i in batch)
    assert 0 < len(results.to_retry) < 12
    assert all(o.reason == "errored" and o.error.kind == "server_error" for o in results.to_retry)
    assert [a.kind for a in results.anomalies] == ["completed_with_errors"]


@pytest.mark.parametrize("kind", VENDORS)
async def test_an_expired_batch_sends_its_unfinished_requests_back(bsim, kind, api_key):
    bsim.reconfigure(batch_turnaround_s=0.8, batch_expire_after_s=0.3)
    batch = items(4)
    status, results = await run_batch(bsim, kind, batch, lambda _c, _id: asyncio.sleep(0.35))
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
    status, results = await run_batch(bsim, kind, batch, lambda c, batch_id: c.cancel(batch_id))
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
    _, results = await run_batch(bsim, kind, batch)
    assert sorted(results.outcomes) == [f"id-{i}" for i in range(4)]  # one each, no duplicate
    assert [o.custom_id for o in results.to_retry] == ["id-3"]  # the missing line
    assert results.to_retry[0].reason == "missing_line"
    kinds = sorted(a.kind for a in results.anomalies)
    assert kinds == ["duplicate_id", "malformed_line", "missing_line", "unknown_id"]


async def test_a_bad_key_on_the_batch_api_is_an_auth_error_without_the_key(bsim, api_key):
    bsim.reconfigure(api_keys=["sk-the-right-one"])
    async with client_for(bsim, "anthropic") as client:
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


# --- answers the batch endpoints should never give: a protocol error, never a crash ---------

SUBMIT_FIELD = {"openai": "id", "anthropic": "id", "gemini": "name"}
POLL_FIELD = {"openai": "status", "anthropic": "processing_status", "gemini": "metadata"}


def hostile_client(kind: str, answer) -> tuple[BatchClient, list]:
    adapter, transport = mocked(kind, answer, base_url=f"https://{kind}.example")
    return batch_client(adapter), transport.requests


@pytest.mark.parametrize("kind", VENDORS)
async def test_a_submit_answer_without_the_batch_id_is_a_protocol_error(kind, api_key):
    # OpenAI's upload answers with a file id first; then the batch answer lacks its own id.
    answers = iter([{"id": "file-1"}, {"object": "batch"}] if kind == "openai" else [{}])
    client, _ = hostile_client(kind, lambda request: reply(200, next(answers)))
    with pytest.raises(ProtocolError, match="batch API: no "):
        await client.submit(items(1))


async def test_a_gemini_operation_name_outside_batches_is_a_protocol_error(api_key):
    client, _ = hostile_client("gemini", reply(200, {"name": "operations/elsewhere"}))
    with pytest.raises(ProtocolError, match=r"no batches/\.\.\. name"):
        await client.submit(items(1))


@pytest.mark.parametrize("kind", VENDORS)
async def test_a_polled_batch_without_its_state_field_is_a_protocol_error(kind, api_key):
    client, _ = hostile_client(kind, reply(200, {"id": "b", POLL_FIELD[kind]: None}))
    batch_id = "batches/b1" if kind == "gemini" else "b1"
    with pytest.raises(ProtocolError, match="batch API: "):
        await client.poll(batch_id)


@pytest.mark.parametrize("kind", VENDORS)
@pytest.mark.parametrize("bad", ["../x", "a/b", "a?b", "%2e", ".."])
async def test_an_id_that_would_change_the_url_path_is_refused_before_sending(kind, bad, api_key):
    client, sent_requests = hostile_client(kind, reply(200, {}))
    batch_id = f"batches/{bad}" if kind == "gemini" else bad
    with pytest.raises(ValueError, match="not a valid batch or file id"):
        await client.cancel(batch_id)
    assert sent_requests == []


async def test_a_results_file_the_vendor_refuses_raises_the_adapters_error(api_key):
    def answer(request):
        if request.url.endswith("/results"):
            return reply(500, {"type": "error", "error": {"type": "api_error", "message": "x"}})
        return reply(200, {"id": "b1", "processing_status": "ended", "request_counts": {}})

    client, _ = hostile_client("anthropic", answer)
    with pytest.raises(ProviderError) as caught:
        await client.results("b1", items(1))
    assert caught.value.kind == "server_error"
