"""How long until requests at a dead endpoint end with a clear error?

    .venv/bin/python benchmarks/dead_endpoint.py [--requests 10] [--rounds 3]

Starts a local Ray and, each round, one provider actor of kind openai whose base_url is a
loopback port nothing listens on (connections are refused), with the default retry policy and
breaker. It sends N requests in one batch and prints the time until all of them have ended,
with their error kinds (`endpoint_down` expected) and attempts. Before the fail-fast rule
(breaker opened on connection failures + a probe that cannot connect either = endpoint down)
this took many minutes: each request retried through probes one `reset_timeout_s` (30 s) apart.

Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from collections import Counter
from typing import Any

import ray

from evalcluster.actors.provider import ProviderActor, provider_actor_name
from evalcluster.cluster import NAMESPACE
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.suite.models import ProviderConfig

KEY_ENV = "EVALCLUSTER_BENCH_KEY"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_round(index: int, n: int) -> tuple[float, Counter[str], int]:
    config = ProviderConfig.model_validate(
        {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{closed_port()}/v1",
            "api_key_env": KEY_ENV,
        }
    )
    name = f"dead-{index}"
    actor = ProviderActor.options(
        name=provider_actor_name(name, config), namespace=NAMESPACE
    ).remote(name, config, {name: config})
    ray.get(actor.ready.remote())
    batch = [
        CompletionRequest("m", (Message("user", f"What is {i} + 1?"),), {"max_tokens": 16})
        for i in range(n)
    ]
    try:
        started = time.monotonic()
        results: list[Any] = ray.get(actor.complete_batch.remote("bench", batch), timeout=900)
        elapsed = time.monotonic() - started
    finally:
        ray.kill(actor)
    return elapsed, Counter(r.error_kind for r in results), max(r.attempts for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key-0123456789")
    ray.init(
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {KEY_ENV: os.environ[KEY_ENV]}},
    )
    try:
        times = []
        for index in range(args.rounds):
            elapsed, kinds, attempts = one_round(index, args.requests)
            times.append(elapsed)
            print(
                f"round {index + 1}: {args.requests} requests ended in {elapsed:.2f}s "
                f"(error kinds {dict(kinds)}, at most {attempts} attempts)"
            )
        print(f"median {statistics.median(times):.2f}s, max {max(times):.2f}s")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
