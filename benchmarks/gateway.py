"""Gateway: its overhead against calling the simulator directly, and two tenants sharing one
rate-limited route.

    .venv/bin/python benchmarks/gateway.py [--requests 2000] [--in-flight 16 64]
                                           [--share-seconds 40] [--weights 3 1]

Starts the service in this process (local Ray, Serve on a free port, `build_app` over a
temporary store) with two simulators behind the operator's registry, and measures:

1. Overhead. The same OpenAI chat body sent `--requests` times at 16 and at 64 in flight by a
   bare aiohttp client, once to the simulator directly and once through the gateway
   (`POST /v1/chat/completions`: auth, route, budget check, provider actor, row, ledger).
   Prints requests per second and per-request latency p50/p99 for both, and the difference.
   The simulator answers after `--latency-ms` (10 ms).
2. Shared limit. Route ``shared/sim-1`` goes to a provider with ``rpm: 1200`` whose simulator
   enforces 1,200 rpm itself (answering 429 past it). Two tenants with gateway weights
   `--weights` each keep 32 requests in flight for `--share-seconds`. Prints the simulator's
   429s among all it received (the provider actor must keep them under 1%), the 429s the
   clients saw, and each tenant's share of the answers against its configured share.

Figures depend on the machine and what else runs on it; benchmarks/README.md records some.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from local_service import local_serve, percentile

KEYS = {"tenant-a": "bench-gw-key-a", "tenant-b": "bench-gw-key-b"}
BODY = {
    "model": "sim/sim-1",
    "messages": [{"role": "user", "content": "What is 17 + 25?"}],
    "max_tokens": 16,
}


def write_config(work: Path, fast_url: str, limited_url: str, weights: list[float]) -> Path:
    providers = {
        "bench-sim": {
            "kind": "simulated",
            "base_url": fast_url + "/v1",
            "simulator": {"format": "openai"},
            "max_concurrency": 256,
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        "bench-limited": {
            "kind": "simulated",
            "base_url": limited_url + "/v1",
            "simulator": {"format": "openai"},
            "rpm": 1200,
            "max_concurrency": 64,
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
    }
    (work / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
    tenants = {}
    for (tenant, key), weight in zip(KEYS.items(), weights, strict=True):
        os.environ[f"BENCH_GW_{tenant.upper().replace('-', '_')}"] = key
        tenants[tenant] = {
            "api_keys_env": f"BENCH_GW_{tenant.upper().replace('-', '_')}",
            "quotas": {"gateway_weight": weight},
        }
    config = {
        "tenants": tenants,
        "providers_file": "providers.yaml",
        "store_uri": str(work / "store"),
        "tracking_uri": "none",
        "gateway": {
            "routes": {
                "sim/sim-1": {"provider": "bench-sim", "model": "sim-1"},
                "shared/sim-1": {"provider": "bench-limited", "model": "sim-1"},
            }
        },
    }
    path = work / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def timed_requests(
    url: str, key: str, body: dict[str, Any] | None, count: int, in_flight: int
) -> tuple[float, list[float], int]:
    """(seconds, latencies in ms of the 200s, non-200 answers) for `count` posts."""
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    failed = 0
    remaining = iter(range(count))
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failed
            for _ in remaining:
                started = time.perf_counter()
                send = (
                    session.get(url)
                    if body is None
                    else session.post(url, json=body, headers=headers)
                )
                async with send as resp:
                    await resp.read()
                if resp.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started, latencies, failed


async def hammer(url: str, key: str, seconds: float, in_flight: int) -> dict[str, int]:
    """Keep `in_flight` requests going for `seconds`; count answers by status."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {**BODY, "model": "shared/sim-1"}
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                counts[str(resp.status)] = counts.get(str(resp.status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return counts


def overhead(gateway: str, direct: str, healthz: str, requests: int, levels: list[int]) -> None:
    print(f"overhead: {requests} requests per measurement, simulator latency as configured")
    print("(healthz: GET /healthz of the same Serve app, Serve's own floor; no provider call)")
    print(f"{'in flight':>9} {'path':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    paths = (
        ("direct", direct, "bench", BODY),
        ("healthz", healthz, "", None),
        ("gateway", gateway, KEYS["tenant-a"], BODY),
    )
    for in_flight in levels:
        results = {}
        for name, url, key, body in paths:
            asyncio.run(timed_requests(url, key, body, min(200, requests), in_flight))  # warm
            seconds, latencies, failed = asyncio.run(
                timed_requests(url, key, body, requests, in_flight)
            )
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            results[name] = (p50, p99)
            rate = len(latencies) / seconds
            print(f"{in_flight:>9} {name:>8} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f} {failed:>6}")
        added50 = results["gateway"][0] - results["direct"][0]
        added99 = results["gateway"][1] - results["direct"][1]
        print(f"{in_flight:>9} {'added':>8} {'':>8} {added50:>8.1f} {added99:>8.1f}")


def shared_limit(gateway: str, limited, seconds: float, weights: list[float]) -> None:
    limited.reset_stats()

    async def both() -> list[dict[str, int]]:
        return await asyncio.gather(*(hammer(gateway, key, seconds, 32) for key in KEYS.values()))

    started = time.perf_counter()
    counts = asyncio.run(both())
    elapsed = time.perf_counter() - started
    stats = limited.stats()
    received = stats["requests_total"]
    limited_429 = stats["by_outcome"].get("rate_limited", 0)
    print(f"\nshared limit: 1,200 rpm route, two tenants x 32 in flight, {elapsed:.0f} s")
    print(
        f"simulator: {received} requests received, {limited_429} answered 429 "
        f"({limited_429 / max(1, received):.2%})"
    )
    ok = [c.get("200", 0) for c in counts]
    total = sum(ok)
    for (tenant, weight), mine, c in zip(zip(KEYS, weights, strict=True), ok, counts, strict=True):
        share = mine / total if total else 0.0
        expected = weight / sum(weights)
        print(
            f"{tenant}: weight {weight:g}, {mine} answers = {share:.1%} "
            f"(configured {expected:.1%}, off by {abs(share - expected) * 100:.1f} points); "
            f"answers by status {c}"
        )
    print(f"throughput {total / elapsed * 60:.0f} answers per minute")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--in-flight", type=int, nargs="+", default=[16, 64])
    p.add_argument("--latency-ms", type=float, default=10.0)
    p.add_argument("--share-seconds", type=float, default=40.0)
    p.add_argument("--weights", type=float, nargs=2, default=[3.0, 1.0])
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-share", action="store_true")
    args = p.parse_args()

    from ray import serve

    from evalcluster.serve.app import build_app
    from evalcluster.simulator import SimulatorConfig, SimulatorProcess

    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorProcess(SimulatorConfig(latency_ms=args.latency_ms)) as fast,
        SimulatorProcess(SimulatorConfig(latency_ms=args.latency_ms, rpm=1200)) as limited,
        local_serve() as port,
    ):
        config = write_config(Path(tmp), fast.url, limited.url, args.weights)
        serve.run(build_app({"config": str(config)}), name="evalcluster", route_prefix="/")
        gateway = f"http://127.0.0.1:{port}/v1/chat/completions"
        if not args.skip_overhead:
            overhead(
                gateway,
                fast.url + "/v1/chat/completions",
                f"http://127.0.0.1:{port}/healthz",
                args.requests,
                args.in_flight,
            )
        if not args.skip_share:
            shared_limit(gateway, limited, args.share_seconds, args.weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
