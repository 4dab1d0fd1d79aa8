"""Service: GET /v1/runs/{id} latency under open WebSockets, and submit-to-first-result time.

    .venv/bin/python benchmarks/service.py [--requests 200] [--sockets 10 100 1000]
                                           [--first-result 3]

Starts the service in this process the way tests/serve/conftest.py does (local Ray, Serve on a
free port, `build_app` over a temporary store, one key, simulated providers) and measures:

1. submit-to-first-result: ``POST /v1/runs`` of a small suite until ``GET /results?limit=1``
   returns a row (polled every 20 ms), the median of a few runs, one at a time;
2. with one long run going (20,000 samples, 1 s simulated latency: it never ends during the
   measurement and is cancelled after it), ``GET /v1/runs/{id}`` latency p50/p95/p99 over
   sequential requests while 10, 100 and 1,000 event WebSockets follow that run; each socket
   must have received its first message (``state``) before the timing starts, and keeps reading.
   Sockets open 100 at a time (each batch's first messages awaited): Serve queues at most 512
   requests beyond a replica's slots and answers a WebSocket handshake dropped there with 500.

Holding 1,000 streams needs both caps raised: ``max_websockets`` (per replica, 256 by default)
and the tenant's ``quotas.max_websockets`` (16 by default): the service is given 2,000 for
both. One replica's ``max_ongoing_requests`` (1,024) still bounds streams plus requests.
Everything is shut down at the end (``serve.shutdown``, ``ray.shutdown``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_service import local_serve, percentile  # noqa: E402

from tests.serve.conftest import suite_yaml  # noqa: E402

KEY = "bench-key-not-secret"
WS_CAP = 2000
OPEN_BATCH = 100


def start_service(work: Path, port: int) -> str:
    """The service on the Serve started at `port`, over a store in `work`: its URL."""
    from ray import serve

    from evalcluster.serve.app import build_app

    keys = work / "api-keys"
    keys.write_text(KEY + "\n")
    app = build_app(
        {
            "store_uri": str(work / "store"),
            "tracking_uri": "none",
            "api_keys_file": str(keys),
            "base_dir": str(work),
            "max_websockets": WS_CAP,
            "default_quotas": {"max_websockets": WS_CAP, "max_active_runs": 8},
        }
    )
    serve.run(app, name="evalcluster", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def first_result_times(api: httpx.Client, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        accepted = api.post("/v1/runs", json={"suite": "small"})
        accepted.raise_for_status()
        run_id = accepted.json()["run_id"]
        while True:
            page = api.get(f"/v1/runs/{run_id}/results", params={"limit": 1}).json()
            if page.get("count"):
                break
            assert time.perf_counter() - started < 120, "no result within 120 s"
            time.sleep(0.02)
        times.append(time.perf_counter() - started)
        while api.get(f"/v1/runs/{run_id}").json()["live"]:
            time.sleep(0.2)  # one at a time: the next run does not share the cores
    return times


async def follow(session: aiohttp.ClientSession, url: str, ready: asyncio.Event, counter: list):
    async with session.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
        await ws.receive_json()
        counter[0] += 1
        if counter[0] >= counter[1]:
            ready.set()
        async for _message in ws:
            pass


async def latency_with_sockets(
    base: str, run_id: str, sockets: int, requests: int
) -> tuple[list[float], float]:
    ws_url = base.replace("http://", "ws://") + f"/v1/runs/{run_id}/events?token={KEY}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        opening = time.perf_counter()
        tasks: list[asyncio.Task] = []
        try:
            # In batches: a burst of 1,000 handshakes overflows Serve's queue (512), and Serve
            # answers a WebSocket dropped there with 500 rather than 503.
            while len(tasks) < sockets:
                batch = min(OPEN_BATCH, sockets - len(tasks))
                ready, counter = asyncio.Event(), [0, batch]
                tasks += [
                    asyncio.create_task(follow(session, ws_url, ready, counter))
                    for _ in range(batch)
                ]
                waiter = asyncio.create_task(ready.wait())
                done, _ = await asyncio.wait(
                    [waiter, *tasks], timeout=300, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                ended = [t for t in done if t is not waiter]
                assert not ended, f"a stream ended early: {ended[0].exception()!r}"
                assert ready.is_set(), f"only {counter[0]} of {batch} streams opened in 300 s"
            open_s = time.perf_counter() - opening
            latencies = []
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
                for _ in range(10):  # warm-up
                    (await api.get(f"/v1/runs/{run_id}")).raise_for_status()
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await api.get(f"/v1/runs/{run_id}")
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    assert response.json()["status"] == "running", response.json()["status"]
            return latencies, open_s
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sockets", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--first-result", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, local_serve() as port:
        work = Path(tmp)
        base = start_service(work, port)
        print(f"service up in {time.perf_counter() - t0:.1f} s at {base}", flush=True)
        measure(base, work, args)
    return 0


def measure(base: str, work: Path, args: argparse.Namespace) -> None:
    """Both figures, on the service at `base` (its suites written under `work`)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        for name, kwargs in (
            ("small", {"samples": 20, "shard_size": 5, "latency_ms": 5, "targets": 1}),
            ("long", {"samples": 20000, "shard_size": 50, "latency_ms": 1000}),
        ):
            made = api.post("/v1/suites", json={"yaml": suite_yaml(work, name, **kwargs)})
            assert made.status_code in (200, 201), made.text

        times = first_result_times(api, args.first_result)
        print(
            f"submit-to-first-result: median {statistics.median(times):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)})",
            flush=True,
        )

        run_id = api.post("/v1/runs", json={"suite": "long"}).json()["run_id"]
        while api.get(f"/v1/runs/{run_id}").json()["status"] != "running":
            time.sleep(0.2)
        print(f"GET /v1/runs/{{id}} on a running run, {args.requests} requests:")
        print("| open WebSockets | opened in | p50 | p95 | p99 | max |")
        print("|---|---|---|---|---|---|")
        for sockets in args.sockets:
            latencies, open_s = asyncio.run(
                latency_with_sockets(base, run_id, sockets, args.requests)
            )
            ms = [x * 1000 for x in latencies]
            print(
                f"| {sockets:,} | {open_s:.1f} s | {percentile(ms, 50):.1f} ms "
                f"| {percentile(ms, 95):.1f} ms | {percentile(ms, 99):.1f} ms "
                f"| {max(ms):.1f} ms |",
                flush=True,
            )
        with contextlib.suppress(Exception):
            api.post(f"/v1/runs/{run_id}/cancel")


if __name__ == "__main__":
    sys.exit(main())
