"""Helpers shared by the tests that run whole suites: suite files and a local Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


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
