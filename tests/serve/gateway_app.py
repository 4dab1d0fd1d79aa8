"""What the gateway's Serve tests share: writing a service configuration (tenant key files,
providers file, serve.yaml), running it as its own Serve application, and waiting for the
replica's buffered rows to reach the lake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def write_service_config(
    folder: Path, keys: dict[str, str], providers: dict[str, Any], config: dict[str, Any]
) -> Path:
    """One key file per tenant (``<tenant>.keys``), ``providers.yaml`` and ``serve.yaml``
    (`config`, which names them) in `folder`; the path of ``serve.yaml``."""
    for tenant, key in keys.items():
        (folder / f"{tenant}.keys").write_text(key + "\n")
    (folder / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def serve_app(config: Path, name: str, prefix: str) -> Iterator[None]:
    """The service built from `config`, as Serve application `name` at `prefix`, deleted after."""
    from ray import serve

    from evalcluster.serve.app import build_app

    serve.run(build_app({"config": str(config)}), name=name, route_prefix=prefix)
    try:
        yield
    finally:
        serve.delete(name)


def gateway_rows(
    store: Path, tenant: str | None = None, *, want: int = 1, timeout_s: float = 20
) -> list[dict[str, Any]]:
    """The gateway's rows of `tenant` (all if None), waiting up to `timeout_s` for the
    replica's buffer to write `want` of them; what there is then."""
    from evalcluster.gateway.rows import read_gateway_rows
    from evalcluster.store.fs import open_store

    deadline = time.monotonic() + timeout_s
    while True:
        rows = read_gateway_rows(open_store(str(store)), tenant=tenant).to_pylist()
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
