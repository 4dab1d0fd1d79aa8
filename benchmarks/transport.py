"""Which async HTTP client should the provider transport use?

    .venv/bin/python benchmarks/transport.py [--seconds 3] [--inflight 16 64 256]

Starts the simulator in a subprocess (zero latency, no limits) and, for each client (bare
`httpx`, `httpx2`, `aiohttp` and `pyreqwest`, each with a pool sized to the requests in
flight), keeps N OpenAI chat requests in flight for a few seconds. Prints requests per second
with the ratio to aiohttp, and the client process's CPU time per request (all its threads:
pyreqwest does its HTTP work in Rust threads outside the GIL) at each level. Every request
must succeed; a failed one aborts the run. Not a test: the figures depend on the machine and
on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from evalcluster.simulator import SimulatorConfig, SimulatorProcess

BODY = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 17 + 25?"}]}
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
CLIENTS = ("httpx", "httpx2", "aiohttp", "pyreqwest")

Post = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Result:
    client: str
    inflight: int
    requests: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _drive(post: Post, inflight: int, seconds: float) -> tuple[int, float, float]:
    done = 0
    deadline = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            status = await post()
            if status != 200:
                raise RuntimeError(f"request failed with HTTP {status}")
            done += 1

    deadline = time.perf_counter() + min(0.5, seconds / 4)  # warm the pool up
    await asyncio.gather(*(worker() for _ in range(inflight)))
    done = 0
    started, cpu = time.perf_counter(), _cpu()
    deadline = started + seconds
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done, time.perf_counter() - started, _cpu() - cpu


async def _with_httpx(module_name: str, url: str, inflight: int, seconds: float) -> Result:
    module: Any = importlib.import_module(module_name)
    limits = module.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    async with module.AsyncClient(limits=limits, timeout=30) as client:

        async def post() -> int:
            response = await client.post(url, json=BODY, headers=HEADERS)
            return response.status_code

        measured = await _drive(post, inflight, seconds)
    return Result(module_name, inflight, *measured)


async def _with_aiohttp(url: str, inflight: int, seconds: float) -> Result:
    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> int:
            async with session.post(url, json=BODY, headers=HEADERS) as response:
                await response.read()
                return response.status

        measured = await _drive(post, inflight, seconds)
    return Result("aiohttp", inflight, *measured)


async def _with_pyreqwest(url: str, inflight: int, seconds: float) -> Result:
    from pyreqwest.client import ClientBuilder

    body = json.dumps(BODY).encode()
    async with ClientBuilder().max_connections(inflight).build() as client:

        async def post() -> int:
            request = client.post(url).headers(HEADERS).body_bytes(body).build()
            response = await request.send()
            await response.bytes()
            return response.status

        measured = await _drive(post, inflight, seconds)
    return Result("pyreqwest", inflight, *measured)


def measure(client: str, url: str, inflight: int, seconds: float) -> Result | None:
    """One measurement in a fresh event loop; None when the client is not installed."""
    if client == "aiohttp":
        return asyncio.run(_with_aiohttp(url, inflight, seconds))
    if client == "pyreqwest":
        return asyncio.run(_with_pyreqwest(url, inflight, seconds))
    try:
        importlib.import_module(client)
    except ImportError:
        return None
    return asyncio.run(_with_httpx(client, url, inflight, seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args(argv)
    with SimulatorProcess(SimulatorConfig(latency_ms=0)) as sim:
        url = sim.url + "/v1/chat/completions"
        results: dict[tuple[str, int], Result | None] = {}
        for inflight in args.inflight:
            for client in CLIENTS:
                results[client, inflight] = measure(client, url, inflight, args.seconds)
    print(f"{'client':<10}" + "".join(f"{f'{n} in flight':>40}" for n in args.inflight))
    for client in CLIENTS:
        cells = []
        for inflight in args.inflight:
            result, base = results[client, inflight], results["aiohttp", inflight]
            if result is None or base is None:
                cells.append(f"{'not installed':>40}")
            else:
                ratio = result.per_second / base.per_second
                cpu_ms = result.cpu_seconds / max(result.requests, 1) * 1000
                cells.append(
                    f"{result.per_second:>12,.0f} req/s ({ratio:4.2f}x) {cpu_ms:5.3f} ms CPU/req"
                )
        print(f"{client:<10}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
