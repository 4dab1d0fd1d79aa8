"""``python -m evalcluster.simulator`` and ``evalcluster simulate``: run the simulator.

Prints one line, ``evalcluster simulator listening on http://HOST:PORT``, once it accepts
connections, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from pydantic import ValidationError

from evalcluster.simulator.config import FORCE_KINDS, SimulatorConfig
from evalcluster.simulator.serving import new_event_loop, start_server

LISTENING = "evalcluster simulator listening on"


def build_parser() -> argparse.ArgumentParser:
    """The simulator's command-line options; every one maps to a `SimulatorConfig` field."""
    p = argparse.ArgumentParser(
        prog="evalcluster simulate",
        description="Serve the OpenAI, Anthropic and Gemini wire formats locally.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8900, help="port (default 8900); 0 picks a free one")
    p.add_argument(
        "--latency-ms", type=float, dest="latency_ms", help="fixed delay before every answer"
    )
    p.add_argument(
        "--jitter-ms",
        type=float,
        dest="jitter_ms",
        help="extra delay drawn uniformly from [0, JITTER_MS] per request",
    )
    p.add_argument("--rpm", type=int, help="requests per minute (default unlimited)")
    p.add_argument("--tpm", type=int, help="tokens per minute (default unlimited)")
    p.add_argument(
        "--error-rate",
        type=float,
        dest="error_rate",
        help="probability of a fault (500, 503, timeout or dropped connection, a quarter each)",
    )
    p.add_argument("--accuracy", type=float, help="probability of a right answer (default 1)")
    p.add_argument("--seed", type=int, help="seeds answer correctness and fault injection")
    p.add_argument(
        "--correlation",
        type=float,
        help="latent correlation of two models' correctness on one item (default 0: independent)",
    )
    p.add_argument(
        "--cluster-pattern",
        dest="cluster_pattern",
        help="regular expression whose first group in a prompt names the item's cluster",
    )
    p.add_argument(
        "--cluster-correlation",
        type=float,
        dest="cluster_correlation",
        help="share of an item's difficulty that its cluster shares (default 0)",
    )
    p.add_argument(
        "--hang-s", type=float, dest="hang_s", help="how long a timed-out request is held"
    )
    p.add_argument("--force", choices=FORCE_KINDS, help="force this outcome on every request")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted key (repeatable); without one any key, or none, is accepted",
    )
    p.add_argument(
        "--config-stdin",
        action="store_true",
        help="read a JSON SimulatorConfig from stdin first; flags given override it",
    )
    return p


def config_from_args(args: argparse.Namespace, base: dict[str, Any]) -> SimulatorConfig:
    """`base` updated with every option that was given on the command line."""
    fields = SimulatorConfig.model_fields
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return SimulatorConfig.model_validate({**base, **given})


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in the foreground. Returns 0 after a signal, 1 if it cannot bind,
    2 for invalid options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        base = json.loads(sys.stdin.read() or "{}") if args.config_stdin else {}
        if not isinstance(base, dict):
            raise ValueError("the config on stdin must be a JSON object")
        config = config_from_args(args, base)
    except (ValueError, ValidationError) as exc:
        problems = exc.errors(include_input=False) if isinstance(exc, ValidationError) else None
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problems or [])
        print(f"evalcluster simulate: {detail or exc}", file=sys.stderr)
        return 2
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_serve(config, args.host, args.port))
    finally:
        loop.close()


async def _serve(config: SimulatorConfig, host: str, port: int) -> int:
    try:
        running = await start_server(config, host, port)
    except OSError as exc:
        print(f"evalcluster simulate: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"{LISTENING} {running.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.close()
    return 0
