"""Throughput check: ``python -m evalcluster.simulator.bench [--seconds 5] [--concurrency 64]``.

Starts the simulator as a subprocess (zero latency, no limits) and drives it with a bare
aiohttp client keeping `concurrency` OpenAI requests in flight; prints requests per second.
Not a test: the figure depends on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from evalcluster.simulator.config import SimulatorConfig
from evalcluster.simulator.runner import SimulatorProcess
from evalcluster.simulator.serving import new_event_loop


async def drive(url: str, seconds: float, concurrency: int) -> tuple[int, int]:
    """(successful requests, failed requests) sent in `seconds` at `concurrency` in flight."""
    body = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 17 + 25?"}]}
    headers = {"Authorization": "Bearer bench"}
    ok = failed = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < deadline:
                async with session.post(
                    url + "/v1/chat/completions", json=body, headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ok += 1
                    else:
                        failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed


async def send_all(url: str, bodies: Sequence[dict[str, Any]], in_flight: int) -> float:
    """Seconds for a bare aiohttp client to get an answer to every OpenAI chat body in
    `bodies`, `in_flight` at a time: the yardstick the benchmarks hold the pipeline against.
    Any answer but 200 raises RuntimeError."""
    headers = {"Authorization": "Bearer bench"}
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                async with session.post(
                    url + "/v1/chat/completions", json=body, headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"bare client got HTTP {resp.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evalcluster.simulator.bench")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args(argv)
    with SimulatorProcess(SimulatorConfig()) as sim:
        loop = new_event_loop()
        try:
            start = time.perf_counter()
            ok, failed = loop.run_until_complete(drive(sim.url, args.seconds, args.concurrency))
            elapsed = time.perf_counter() - start
        finally:
            loop.close()
    print(
        f"{ok / elapsed:.0f} req/s ({ok} ok, {failed} failed in {elapsed:.1f} s, "
        f"{args.concurrency} in flight)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
