"""One real Serve deployment of the service on a local Ray, shared by the tests of this folder.

The fixture is package-scoped: Ray and Serve start once (about 15 s here) for every module in
tests/serve and are shut down after the last one.

It serves a realistic configuration file (``serve.yaml``): four named tenants (team-a, a runner
with low quotas; team-b, a runner; viewer; ops, an admin) beside the two bare keys of
``api_keys_file`` (each its own runner tenant), an operator registry (``providers.yaml``) whose
``canary-op`` provider points at a recording HTTP server (`Canary`), ``client_providers:
no_secrets`` and drivers that exit as soon as their run ends. Server secrets with recognisable
values are in the environment of Ray's processes, so the attack tests can tell whether any of
them ever leaves the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

API_KEYS = ("test-key-alpha-not-secret", "test-key-beta-not-secret")
# The named tenants of serve.yaml and their keys (team-a and viewer through variables, team-b
# and ops through key files).
TENANT_KEYS = {
    "team-a": "test-key-team-a-CANARY-7d1f",
    "team-b": "test-key-team-b-CANARY-93c2",
    "viewer": "test-key-viewer-CANARY-5ea0",
    "ops": "test-key-ops-admin-CANARY-c4b8",
}
TENANT_KEY_ENVS = {
    "team-a": "EVALCLUSTER_TEST_TEAM_A_KEYS",
    "viewer": "EVALCLUSTER_TEST_VIEWER_KEYS",
}
# Server-held secrets, set in the environment before Ray starts (replicas, drivers and provider
# actors inherit them). Only CANARY_OPERATOR_KEY may ever be sent anywhere: to `canary-op`.
SERVER_SECRETS = {
    "OPENAI_API_KEY": "sk-CANARY-openai-server-secret-0a1b2c",
    "ANTHROPIC_API_KEY": "sk-ant-CANARY-anthropic-server-secret-3d4e",
    "GEMINI_API_KEY": "AIza-CANARY-gemini-server-secret-5f6a",
    "AWS_SECRET_ACCESS_KEY": "CANARY/aws/server/secret/7b8c9d",
    "CANARY_OPERATOR_KEY": "sk-CANARY-operator-key-for-canary-op-e0f1",
}
# Quotas of team-a in serve.yaml.
TEAM_A_QUOTAS = {
    "max_active_runs": 2,
    "max_budget_usd_per_run": 1,
    "max_websockets": 4,
    "max_samples_per_run": 1000,
    "max_priority": 1,
}
MAX_WEBSOCKETS = 64  # the replica's cap on event streams, all tenants together


@dataclass(frozen=True)
class CanaryRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: str


class Canary:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers like OpenAI's
    chat completions (the answer is always "10")."""

    def __init__(self) -> None:
        self.requests: list[CanaryRequest] = []
        self._lock = threading.Lock()
        canary = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                canary.record(
                    CanaryRequest(
                        self.command,
                        self.path,
                        {k: v for k, v in self.headers.items()},
                        body.decode("utf-8", "replace"),
                    )
                )
                answer = json.dumps(
                    {
                        "id": "chatcmpl-canary",
                        "object": "chat.completion",
                        "model": "canary-1",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "10"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, request: CanaryRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self) -> list[CanaryRequest]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
    tenant_keys: dict[str, str] = field(default_factory=dict)  # serve.yaml's tenants
    canary: Canary | None = None  # what `canary-op` of the registry calls
    secrets: dict[str, str] = field(default_factory=dict)  # in the environment of Ray
    secrets_in_ray: bool = False  # False when Ray was started before this fixture
    config: Path | None = None  # serve.yaml

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


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the block runs; the previous values restored after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def write_config(config_dir: Path, canary: Canary) -> Path:
    """serve.yaml, its key files and the operator's providers.yaml; the path of serve.yaml."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "team-b.keys").write_text(f"# team-b\n{TENANT_KEYS['team-b']}\n")
    (config_dir / "ops.keys").write_text(f"{TENANT_KEYS['ops']}\n")
    registry = {
        "providers": {
            "op-sim": {
                "kind": "simulated",
                "simulator": {"format": "openai", "latency_ms": 5, "accuracy": 1.0},
                "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
            "canary-op": {
                "kind": "openai",
                "base_url": canary.base_url,
                "api_key_env": "CANARY_OPERATOR_KEY",
                "max_concurrency": 4,
                "retry": {"max_attempts": 1},
                "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
        }
    }
    (config_dir / "providers.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    config = {
        "tenants": {
            "team-a": {
                "api_keys_env": TENANT_KEY_ENVS["team-a"],
                "role": "runner",
                "quotas": TEAM_A_QUOTAS,
            },
            "team-b": {"api_keys_file": "team-b.keys", "role": "runner"},
            "viewer": {"api_keys_env": TENANT_KEY_ENVS["viewer"], "role": "viewer"},
            "ops": {"api_keys_file": "ops.keys", "role": "admin"},
        },
        "providers_file": "providers.yaml",
        "client_providers": "no_secrets",
        "max_websockets": MAX_WEBSOCKETS,
        # The bare keys: enough streams for the global cap to be the one that is hit.
        "default_quotas": {"max_active_runs": 8, "max_websockets": 4 * MAX_WEBSOCKETS},
        "driver_linger_s": 0,
    }
    path = config_dir / "serve.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="package")
def canary() -> Iterator[Canary]:
    server = Canary()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory, canary: Canary) -> Iterator[Service]:
    import ray
    from ray import serve

    from evalcluster.serve.app import build_app

    work = tmp_path_factory.mktemp("serve")
    keys = work / "api-keys"
    keys.write_text("# test keys\n" + "\n".join(API_KEYS) + "\n")
    store = work / "store"
    config = write_config(tmp_path_factory.mktemp("serve-config"), canary)
    max_body = 64 * 1024
    port = free_port()
    env = {
        **SERVER_SECRETS,
        **{env: TENANT_KEYS[tenant] for tenant, env in TENANT_KEY_ENVS.items()},
    }
    with environment(env):
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
                    "config": str(config),
                    "store_uri": str(store),
                    "tracking_uri": "none",
                    "api_keys_file": str(keys),
                    "max_body_bytes": str(max_body),
                    "base_dir": str(work),
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
                tenant_keys=dict(TENANT_KEYS),
                canary=canary,
                secrets=dict(SERVER_SECRETS),
                secrets_in_ray=started_ray,
                config=config,
            )
        finally:
            serve.shutdown()
            if started_ray:
                ray.shutdown()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client
