"""One real Serve deployment of the service on a local Ray, shared by the tests of this folder.

The fixture is package-scoped: Ray and Serve start once (about 15 s here) for every module in
tests/serve and are shut down after the last one.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

API_KEYS = ("test-key-alpha-not-secret", "test-key-beta-not-secret")


@dataclass(frozen=True)
class Service:
    """A running service and the files the tests give it."""

    url: str
    ws_url: str
    key: str
    other_key: str
    work: Path  # where suites and datasets are written
    store: Path
    max_body_bytes: int

    def client(self, key: str | None = "default", **kwargs: Any) -> httpx.Client:
        """An HTTP client for the service, authenticated with `key` (None: no header)."""
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_dataset(path: Path, n: int) -> Path:
    """`n` arithmetic samples: id, question, answer."""
    with path.open("w") as f:
        for i in range(n):
            a, b = 3 + i, 7 + (i * 5) % 11
            f.write(
                json.dumps({"id": f"q{i:05d}", "question": f"{a} + {b}", "answer": str(a + b)})
                + "\n"
            )
    return path


def suite_document(
    work: Path,
    name: str,
    *,
    samples: int = 20,
    latency_ms: float = 5,
    shard_size: int = 5,
    targets: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """A suite over simulated providers and a fresh dataset of `samples` rows."""
    data = write_dataset(work / f"{name}-{samples}.jsonl", samples)
    providers = {
        f"sim-{i}": {
            "kind": "simulated",
            "simulator": {"format": "openai", "latency_ms": latency_ms, "accuracy": 0.9, "seed": i},
            "max_concurrency": 8,
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        }
        for i in range(targets)
    }
    return {
        "name": name,
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "numeric"}, {"type": "exact"}],
        "shard_size": shard_size,
        "targets": [
            {
                "name": f"t{i}",
                "provider": f"sim-{i}",
                "model": "sim-1",
                "params": {"temperature": 0, "max_tokens": 16},
            }
            for i in range(targets)
        ],
        "providers": providers,
        **extra,
    }


def suite_yaml(work: Path, name: str, **kwargs: Any) -> str:
    return yaml.safe_dump(suite_document(work, name, **kwargs), sort_keys=False)


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    import ray
    from ray import serve

    from evalcluster.serve.app import build_app

    work = tmp_path_factory.mktemp("serve")
    keys = work / "api-keys"
    keys.write_text("# test keys\n" + "\n".join(API_KEYS) + "\n")
    store = work / "store"
    max_body = 64 * 1024
    port = free_port()
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(
            num_cpus=4,
            namespace="evalcluster",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = build_app(
            {
                "store_uri": str(store),
                "tracking_uri": "none",
                "api_keys_file": str(keys),
                "max_body_bytes": str(max_body),
                "base_dir": str(work),
                "driver_linger_s": "30",
            }
        )
        serve.run(app, name="evalcluster", route_prefix="/")
        yield Service(
            f"http://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}",
            API_KEYS[0],
            API_KEYS[1],
            work,
            store,
            max_body,
        )
    finally:
        serve.shutdown()
        if started_ray:
            ray.shutdown()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client
