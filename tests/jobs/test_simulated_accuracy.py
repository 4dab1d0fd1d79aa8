"""A simulated provider's `accuracy` holds for any dataset with a reference, not only arithmetic.

The run hands each sample's reference to `kind: simulated` providers only (header
``x-evalcluster-reference``), never to a real provider, and never into the cache identity.
"""

from __future__ import annotations

import asyncio
import csv
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.jobs.samples import Sample, build_request, endpoint_identity, request_hash
from evalcluster.providers import build_adapter
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.providers.transport import HttpRequest, HttpResponse, MockTransport
from evalcluster.simulator import SimulatorThread
from evalcluster.simulator.cli import build_parser, config_from_args
from evalcluster.simulator.reference import REFERENCE_HEADER, decode_reference
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.suite.loader import load_suite
from evalcluster.suite.models import ProviderConfig

SAMPLES = 200
SYLLABLES = ("ka", "lo", "mi", "ren", "su", "tar", "vo", "zel", "qu", "bra")
CAPITAL = "Bogotá, D.C."  # non-ASCII and punctuation travel in the header intact


def capital_of(i: int) -> str:
    """A made-up capital per country: three syllables, no digits, all distinct."""
    a, b, c = i // 100 % 10, i // 10 % 10, i % 10
    return (SYLLABLES[a] + SYLLABLES[b] + SYLLABLES[c]).capitalize() + "ville"


def write_capitals(tmp_path: Path, accuracies: dict[str, float]) -> Path:
    data = tmp_path / "capitals.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "country", "capital"])
        for i in range(SAMPLES):
            w.writerow([f"c{i:03d}", f"Country {i}", CAPITAL if i == 0 else capital_of(i)])
    suite = {
        "name": "capitals",
        "dataset": {"path": str(data), "id": "id", "input": "country", "target": "capital"},
        "prompt": "What is the capital of {country}? Answer with the city only.",
        "scorers": [{"type": "exact"}],
        "shard_size": 50,
        "targets": [
            {"name": name, "provider": name, "model": "sim-1", "params": {"temperature": 0}}
            for name in accuracies
        ],
        "providers": {
            name: {"kind": "simulated", "simulator": {"accuracy": accuracy}}
            for name, accuracy in accuracies.items()
        },
    }
    path = tmp_path / "capitals.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def capitals_rows(local_ray, tmp_path_factory) -> list[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("capitals")
    path = write_capitals(tmp_path, {"sim-080": 0.8, "sim-100": 1.0})
    store = str(tmp_path / "store")
    result = run_suite(
        prepare_suite(path), RunOptions(store=store, tracking_uri=None, run_id="capitals")
    )
    assert result.status == "finished", result.message
    return read_results(open_store(store), "capitals").to_pylist()


def _exact(rows: list[dict[str, Any]], target: str) -> list[float]:
    mine = [r for r in rows if r["target"] == target]
    assert len(mine) == SAMPLES and all(r["error_kind"] is None for r in mine)
    return [r["score_exact"] for r in mine]


def test_accuracy_one_scores_exactly_one_on_a_capitals_csv(capitals_rows):
    assert _exact(capitals_rows, "sim-100") == [1.0] * SAMPLES
    outputs = {r["sample_id"]: r["output"] for r in capitals_rows if r["target"] == "sim-100"}
    assert outputs["c000"] == CAPITAL


def test_accuracy_point_eight_scores_near_point_eight(capitals_rows):
    scores = _exact(capitals_rows, "sim-080")
    mean = sum(scores) / SAMPLES
    # Each answer is right with probability 0.8, independently (a hash per prompt): the mean
    # is binomial / n with standard error sqrt(p(1-p)/n) = 0.028; 4 of them is 1 in 15,000.
    se = math.sqrt(0.8 * 0.2 / SAMPLES)
    assert abs(mean - 0.8) < 4 * se, mean
    assert 0 < mean < 1  # some wrong answers, and the wrong ones really are wrong


# --- the reference reaches simulated providers only -------------------------------------------

REQUEST = CompletionRequest(
    "m-1", (Message("user", "What is the capital of Colombia?"),), {}, reference=CAPITAL
)
OPENAI_OK = {
    "id": "x",
    "model": "m-1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}
ANTHROPIC_OK = {
    "id": "x",
    "type": "message",
    "role": "assistant",
    "model": "m-1",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
GEMINI_OK = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
}
OK_BODY = {"openai": OPENAI_OK, "anthropic": ANTHROPIC_OK, "gemini": GEMINI_OK}
CUSTOM = {
    "url": "https://api.example.com/v1/chat/completions",
    "headers": {"Authorization": "Bearer {api_key}"},
    "body_template": {"model": "{model}", "messages": "{messages}"},
    "text_path": "choices.0.message.content",
}
# kind -> (extra config, wire format of its answer)
REAL_KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "openai": ({}, "openai"),
    "openrouter": ({}, "openai"),
    "local": ({"base_url": "http://127.0.0.1:8000/v1"}, "openai"),
    "anthropic": ({}, "anthropic"),
    "gemini": ({}, "gemini"),
    "custom": ({"custom": CUSTOM}, "openai"),
}


def _send(config: ProviderConfig, wire: str) -> HttpRequest:
    import json

    answer = HttpResponse(200, {}, json.dumps(OK_BODY[wire]).encode())
    transport = MockTransport(lambda request: answer)
    adapter = build_adapter("p", config, transport=transport)
    asyncio.run(adapter.complete(REQUEST))
    assert len(transport.requests) == 1
    return transport.requests[0]


@pytest.mark.parametrize("kind", sorted(REAL_KINDS))
def test_a_real_provider_never_gets_the_reference_header(kind):
    extra, wire = REAL_KINDS[kind]
    config = ProviderConfig(kind=kind, api_key_env="EVALCLUSTER_TEST_KEY", **extra)
    sent = _send(config, wire)
    assert REFERENCE_HEADER not in {k.lower() for k in sent.headers}
    assert "Bogot" not in str(sent.headers) and "Bogot" not in sent.body.decode()


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_a_simulated_provider_gets_the_reference_in_its_header_only(wire):
    base = "http://127.0.0.1:9" + ("/v1" if wire == "openai" else "")
    config = ProviderConfig(kind="simulated", base_url=base, simulator={"format": wire})
    sent = _send(config, wire)
    assert decode_reference(sent.headers[REFERENCE_HEADER]) == CAPITAL
    assert "Bogot" not in sent.body.decode()  # the body is what a real provider would get


def test_the_reference_is_on_the_request_but_not_in_its_cache_identity(tmp_path):
    path = write_capitals(tmp_path, {"sim": 0.5})
    suite = load_suite(path)
    target = suite.spec.targets[0]
    provider = suite.spec.providers["sim"]
    fields = {"id": "c1", "country": "Country 1", "capital": "Kalomiville"}
    one = build_request(suite, target, Sample("c1", fields, "Kalomiville", {}))
    assert one.reference == "Kalomiville"
    other = build_request(suite, target, Sample("c1", fields, "Elsewhere", {}))
    endpoint = endpoint_identity(provider)
    hashes = {
        request_hash(endpoint, r, epoch=0, seed=0, sampling=False)
        for r in (one, other, CompletionRequest(one.model, one.messages, one.params))
    }
    assert len(hashes) == 1


# --- `evalcluster simulate` without keys serves a keyless `local` provider --------------------


def test_a_local_provider_without_a_key_gets_answers_from_evalcluster_simulate(monkeypatch):
    config = config_from_args(build_parser().parse_args([]), {})  # no --api-key
    assert config.api_keys is None
    with SimulatorThread(config) as sim:
        provider = ProviderConfig(kind="local", base_url=sim.url + "/v1")
        adapter = build_adapter("ollama", provider)
        assert adapter.api_key is None  # a local server needs no key, and none is sent

        async def ask() -> str:
            try:
                request = CompletionRequest("sim-1", (Message("user", "What is 20 + 22?"),))
                return (await adapter.complete(request)).text
            finally:
                await adapter.aclose()

        assert asyncio.run(ask()) == "42"
        assert sim.stats()["by_outcome"]["ok"] == 1
