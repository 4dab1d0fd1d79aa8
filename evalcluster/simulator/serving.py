"""Bind a `SimulatorServer` to a socket on an event loop (uvloop when installed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from evalcluster.simulator.config import SimulatorConfig
from evalcluster.simulator.server import SimulatorServer

# Hung (timeout) requests are cancelled after this long when the server stops.
SHUTDOWN_TIMEOUT_S = 0.5


@dataclass
class RunningServer:
    """A listening simulator; `close` stops it and cancels requests still held."""

    server: SimulatorServer
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start serving `config` on host:port (0 picks a free port) on the running loop."""
    server = SimulatorServer(config)
    runner = web.AppRunner(
        server.app(),
        access_log=None,
        # A client that gives up on a held request frees it at once rather than after hang_s.
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return RunningServer(server, runner, host, bound_port)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (it roughly doubles throughput), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
