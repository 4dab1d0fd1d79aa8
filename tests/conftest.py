"""Helpers shared by the tests that run whole suites: suite files and a local Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Fixtures that start a real service (Ray, Serve, moto's S3, an MLflow server, Chromium). A test
# that uses one, directly or through another fixture, is marked `integration`, so
# `pytest -m "not integration"` is the fast subset; CI runs everything.
_SERVICE_FIXTURES = frozenset(
    {
        "local_ray",
        "make_actor",
        "service",
        "api",
        "s3_endpoint",
        "s3_store",
        "mlflow_server",
        "chromium",
        "logged_evaluation",
    }
)
# Modules whose tests start Ray, Serve, subprocesses or whole runs inside the test body.
_INTEGRATION_DIRS = ("tests/jobs/", "tests/serve/", "tests/infra/", "tests/tracking/")
_INTEGRATION_MODULES = frozenset(
    {
        "tests/test_cli.py",
        "tests/simulator/test_cli.py",
        "tests/store/test_readme_recipes.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            fixtures & _SERVICE_FIXTURES
            or module.startswith(_INTEGRATION_DIRS)
            or module in _INTEGRATION_MODULES
            or item.get_closest_marker("slow")
        ):
            item.add_marker(pytest.mark.integration)


def write_dataset(path: Path, n: int, *, start: int = 0) -> Path:
    """`n` arithmetic samples with ids, answers and an `op` metadata column."""
    with path.open("w") as f:
        for i in range(start, start + n):
            a, b = 3 + i, 7 + (i * 5) % 11
            f.write(
                json.dumps(
                    {
                        "id": f"q{i:05d}",
                        "question": f"{a} + {b}",
                        "answer": str(a + b),
                        "op": "add" if i % 2 else "plus",
                    }
                )
                + "\n"
            )
    return path


def write_suite(
    tmp_path: Path,
    *,
    providers: dict[str, Any],
    targets: list[dict[str, Any]],
    samples: int = 20,
    name: str = "t-suite",
    **extra: Any,
) -> Path:
    """A suite over a fresh arithmetic dataset; `extra` overrides top-level keys."""
    data = write_dataset(tmp_path / f"{name}.jsonl", samples)
    suite = {
        "name": name,
        "dataset": {
            "path": str(data),
            "id": "id",
            "input": "question",
            "target": "answer",
            "metadata": ["op"],
        },
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "numeric"}, {"type": "exact"}],
        "group_by": ["op"],
        "shard_size": 8,
        "targets": targets,
        "providers": providers,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def openai_provider(base_url: str, **extra: Any) -> dict[str, Any]:
    """A provider of kind openai pointed at a simulator (which accepts any key)."""
    return {
        "kind": "openai",
        "base_url": base_url + "/v1",
        "api_key_env": "EVALCLUSTER_TEST_KEY",
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        **extra,
    }


@pytest.fixture(autouse=True)
def _test_key(monkeypatch):
    monkeypatch.setenv("EVALCLUSTER_TEST_KEY", "sk-test-not-a-real-key-0123456789")


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray for the module, shut down after it."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(
        num_cpus=4,
        namespace="evalcluster",
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={
            "env_vars": {
                "EVALCLUSTER_TEST_KEY": os.environ.get(
                    "EVALCLUSTER_TEST_KEY", "sk-test-not-a-real-key-0123456789"
                )
            }
        },
    )
    try:
        yield ray
    finally:
        ray.shutdown()
