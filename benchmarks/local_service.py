"""What the service benchmarks share: a free port, a percentile of latencies, and Ray with
Serve's HTTP proxy started in this process (as tests/serve/conftest.py starts them for the
tests). The benchmarks run as scripts, so they import this module by its name."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from evalcluster.cluster import NAMESPACE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@contextlib.contextmanager
def local_serve(num_cpus: int = 4) -> Iterator[int]:
    """Ray in this process (evalcluster's namespace, no dashboard, workers' logs kept out of
    the figures) and Serve's HTTP proxy on a free port of 127.0.0.1; yields the port. Serve and
    Ray are shut down after."""
    import ray
    from ray import serve

    port = free_port()
    ray.init(
        num_cpus=num_cpus,
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
