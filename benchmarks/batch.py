"""Cost per sample: sync against the batch lane, and the batch lane with a cached prefix.

One suite of N samples (default 5,000), each request a shared system prompt of 2,000 tokens
(few-shot examples and a rubric stand-in) and a short arithmetic question, sent three ways to
the simulator (OpenAI format, automatic prompt caching from 1,024 tokens):

1. sync: one Chat Completions call per sample (`adapter.complete`, 64 in flight);
2. batch, cache off: through `BatchLane` (batches of 1,000), the simulator's caching disabled;
3. batch, cache on: the same, with the simulator caching prefixes as OpenAI does.

Cost is priced from the usage the simulator reported, with `providers.pricing.cost_breakdown`
at gpt-4.1-mini's table prices (input 0.40, cached input 0.10, output 1.60 USD per Mtok; batch
x0.5). "HTTP calls" counts every request the client sent (uploads, polls and downloads
included). The simulator's sync route does not report cached tokens (only its batch routes
do), so the sync figure is the uncached price, as a provider without caching would bill it.

    python benchmarks/batch.py [--samples 5000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass

from evalcluster.actors.batch_lane import BatchLane, BatchLaneConfig
from evalcluster.providers import build_adapter
from evalcluster.providers.base import Completion, CompletionRequest, Message, Usage
from evalcluster.providers.batch import batch_client
from evalcluster.providers.pricing import cost_breakdown
from evalcluster.providers.transport import HttpRequest, HttpResponse, PyreqwestTransport
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.batch_ledger import BatchLedger
from evalcluster.store.fs import open_store
from evalcluster.suite.models import ProviderConfig

MODEL = "gpt-4.1-mini"
PREFIX = " ".join(f"rule{i}" for i in range(2000))  # 2,000 simulator tokens


class CountingTransport(PyreqwestTransport):
    def __init__(self) -> None:
        super().__init__(64)
        self.calls = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        return await super().send(request)


@dataclass
class Tally:
    name: str
    samples: int = 0
    retried: int = 0
    calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    paid: float = 0.0
    input_paid: float = 0.0
    seconds: float = 0.0

    def add(self, completion: Completion, *, batch: bool) -> None:
        usage = completion.usage
        self.samples += 1
        self.input_tokens += usage.input_tokens
        self.cached_tokens += usage.cache_read_tokens
        self.paid += cost_breakdown(MODEL, usage, batch=batch).paid
        input_only = Usage(usage.input_tokens, 0, cache_read_tokens=usage.cache_read_tokens)
        self.input_paid += cost_breakdown(MODEL, input_only, batch=batch).paid


def requests(n: int) -> list[CompletionRequest]:
    return [
        CompletionRequest(
            MODEL,
            (Message("system", PREFIX), Message("user", f"What is {i} + {i % 97}?")),
            {"max_tokens": 16},
        )  # fmt: skip
        for i in range(n)
    ]


def adapter_for(sim: SimulatorThread, transport: CountingTransport):
    config = ProviderConfig(kind="openai", base_url=sim.url + "/v1", api_key_env="BENCH_KEY",
                            max_concurrency=64, timeout_s=120)  # fmt: skip
    return build_adapter("bench", config, transport=transport)


async def sync_run(sim: SimulatorThread, reqs: list[CompletionRequest]) -> Tally:
    transport = CountingTransport()
    adapter = adapter_for(sim, transport)
    tally = Tally("sync")
    gate = asyncio.Semaphore(64)

    async def one(request: CompletionRequest) -> Completion:
        async with gate:
            return await adapter.complete(request)

    started = time.perf_counter()
    for completion in await asyncio.gather(*(one(r) for r in reqs)):
        tally.add(completion, batch=False)
    tally.seconds = time.perf_counter() - started
    tally.calls = transport.calls
    await adapter.aclose()
    return tally


async def batch_run(sim: SimulatorThread, reqs: list[CompletionRequest], name: str,
                    run_id: str, batch_size: int) -> Tally:  # fmt: skip
    transport = CountingTransport()
    adapter = adapter_for(sim, transport)
    tally = Tally(name)
    config = BatchLaneConfig(max_batch_requests=batch_size, max_wait_s=0.05,
                             poll_initial_s=0.2, poll_max_s=1.0)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        ledger = BatchLedger(open_store(folder))
        lane = BatchLane(batch_client(adapter), ledger, run_id=run_id, endpoint="bench",
                         config=config)  # fmt: skip
        started = time.perf_counter()
        futures = [lane.submit(r, f"{name}-{i}") for i, r in enumerate(reqs)]
        for outcome in await asyncio.gather(*futures):
            if outcome.retry:
                tally.retried += 1
            else:
                tally.add(outcome.completion, batch=True)
        tally.seconds = time.perf_counter() - started
        await lane.drain()
        await lane.close()
    tally.calls = transport.calls
    await adapter.aclose()
    return tally


async def main(samples: int, batch_size: int) -> None:
    reqs = requests(samples)
    with SimulatorThread(SimulatorConfig(seed=0, accuracy=1.0, batch_turnaround_s=0.5)) as sim:
        sync = await sync_run(sim, reqs)
        sim.reconfigure(cache_min_tokens=10**9)
        uncached = await batch_run(sim, reqs, "batch", "run-bench-a", batch_size)
        sim.reconfigure(cache_min_tokens=1024)
        cached = await batch_run(sim, reqs, "batch-cached", "run-bench-b", batch_size)
        stats = sim.stats()
    print(f"{samples} samples, {MODEL} prices, 2,000-token shared prefix, batches of {batch_size}")
    print("| mode | answered | HTTP calls | input tokens | cached | USD / 1k samples | "
          "x sync | input USD x sync | s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for t in (sync, uncached, cached):
        per_k = t.paid / max(t.samples, 1) * 1000
        print(f"| {t.name} | {t.samples} | {t.calls} | {t.input_tokens} | {t.cached_tokens} | "
              f"{per_k:.4f} | {t.paid / sync.paid:.3f} | {t.input_paid / sync.input_paid:.3f} | "
              f"{t.seconds:.1f} |")  # fmt: skip
    print(f"provider calls saved by batching: {sync.calls - cached.calls} of {sync.calls}")
    print(f"simulator: sync ok {stats['by_outcome']['ok']}, batched ok "
          f"{stats['by_outcome'].get('batch_ok', 0)}, batches {stats['batches']['created']}, "
          f"re-sent {stats['batches']['requests_resubmitted']} (the two batch runs send the "
          f"same bodies on purpose)")  # fmt: skip


if __name__ == "__main__":
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("BENCH_KEY", "sk-bench")
    asyncio.run(main(args.samples, args.batch_size))
