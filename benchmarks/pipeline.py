"""What does the endpoint pipeline cost per request, without any network?

    .venv/bin/python benchmarks/pipeline.py [--requests 20000] [--rounds 5]

In this process, on one asyncio loop, with a send that answers at once (no HTTP):

1. pipeline: `EndpointPipeline.call` (fair queue, breaker, bucket, window, slot, retries'
   fast path) with no rate limits, N requests 64 at a time;
2. pipeline + limits: the same with `rpm`/`tpm` far above what is sent, so the token bucket
   and the send window do their bookkeeping but never wait;
3. actor class: the provider actor's own class (as the in-process executor runs it) with its
   adapter replaced by the same instant send: `complete_batch` of 64 requests, which adds
   token estimates, pricing, `CallResult`s and metrics to the pipeline.

Prints microseconds per request (median and best of the rounds). Not a test: the figures depend
on the machine and on what else runs on it; compare within one run of the script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from evalcluster.limits.pipeline import EndpointPipeline
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Usage,
)
from evalcluster.suite.models import ProviderConfig

KEY_ENV = "EVALCLUSTER_BENCH_KEY"
CHUNK = 64
ANSWER = Completion("4", FinishReason.STOP, Usage(20, 2), 1.0)


def config(**extra: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {
            "kind": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": KEY_ENV,
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "max_concurrency": 1000,
            **extra,
        }
    )


async def instant(*_: object) -> Completion:
    return ANSWER


class InstantAdapter:
    complete = staticmethod(instant)

    async def aclose(self) -> None:
        return None


async def timed(batch: Callable[[], Awaitable[object]], requests: int) -> float:
    """Microseconds per request of `batch` (CHUNK requests each) run requests/CHUNK times."""
    await batch()  # warm up
    started = time.perf_counter()
    for _ in range(requests // CHUNK):
        await batch()
    return (time.perf_counter() - started) / (requests // CHUNK * CHUNK) * 1e6


async def pipeline_only(requests: int, **limits: object) -> float:
    pipe = EndpointPipeline("bench", config(**limits))

    def batch() -> Awaitable[object]:
        return asyncio.gather(*(pipe.call("r", instant, tokens=30) for _ in range(CHUNK)))

    return await timed(batch, requests)


async def actor_class(requests: int) -> float:
    from evalcluster.jobs.local_executor import _provider_class

    actor = _provider_class()("bench", config(), {"bench": config()})
    actor.adapter = InstantAdapter()
    chunk = [
        CompletionRequest("sim-1", (Message("user", f"What is {i} + {i}?"),), {"max_tokens": 16})
        for i in range(CHUNK)
    ]
    return await timed(lambda: actor.complete_batch("r", chunk), requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    cases = {
        "pipeline": lambda: pipeline_only(args.requests),
        "pipeline + limits": lambda: pipeline_only(args.requests, rpm=10**8, tpm=10**10),
        "actor class": lambda: actor_class(args.requests),
    }
    print(f"{args.requests} requests, {CHUNK} at a time, {args.rounds} rounds (us/request)")
    for name, case in cases.items():
        figures = [asyncio.run(case()) for _ in range(args.rounds)]
        print(f"  {name:<18} median {statistics.median(figures):6.1f}  best {min(figures):6.1f}")


if __name__ == "__main__":
    main()
