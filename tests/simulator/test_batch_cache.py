"""Prompt-cache accounting in usage: OpenAI automatic from 1,024 tokens, Anthropic on
`cache_control`, both over real HTTP and through batches."""

from __future__ import annotations

import time

from evalcluster.simulator.prompt_cache import Prefix, PromptCache

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
LONG = " ".join(f"rule{i}" for i in range(1500))  # 1,500 tokens


def test_prefix_cache_hits_within_ttl_only():
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    prefix = Prefix("k", 1300)
    assert cache.use(prefix, 10, 1024, 128) == (0, 1300)
    now[0] = 5
    assert cache.use(prefix, 10, 1024, 128) == (1280, 0)  # 128-token steps
    now[0] = 16  # more than the TTL after the last use
    assert cache.use(prefix, 10, 1024, 128) == (0, 1300)
    assert cache.use(Prefix("short", 1000), 10, 1024) == (0, 0)


def test_openai_batch_reports_cached_tokens_for_a_shared_prefix(sim, client):
    import json

    sim.reconfigure(batch_turnaround_s=0)
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "sim-1",
                "messages": [
                    {"role": "system", "content": LONG},
                    {"role": "user", "content": f"What is {i}+1?"},
                ],
            },
        }
        for i in range(3)
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    headers = {"Authorization": "Bearer k"}
    file_id = client.post(
        sim.url + "/v1/files",
        headers=headers,
        data={"purpose": "batch"},
        files={"file": ("a.jsonl", data)},
    ).json()["id"]
    batch = client.post(
        sim.url + "/v1/batches",
        headers=headers,
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    ).json()
    while batch["status"] not in ("completed",):
        time.sleep(0.02)
        batch = client.get(f"{sim.url}/v1/batches/{batch['id']}", headers=headers).json()
    out = client.get(f"{sim.url}/v1/files/{batch['output_file_id']}/content", headers=headers)
    usages = [json.loads(x)["response"]["body"]["usage"] for x in out.content.splitlines()]
    cached = [u["prompt_tokens_details"]["cached_tokens"] for u in usages]
    assert cached == [0, 1408, 1408]  # the first writes it; 1,500 rounded down to 128s
    assert all(u["prompt_tokens"] > 1500 for u in usages)
    assert sim.stats()["batches"]["cached_tokens"] == 2 * 1408


def test_anthropic_caches_only_what_cache_control_marks(sim, client):
    sim.reconfigure(batch_turnaround_s=0)

    def params(i: int, marked: bool) -> dict:
        block = {"type": "text", "text": LONG}
        if marked:
            block["cache_control"] = {"type": "ephemeral"}
        return {
            "model": "sim-1",
            "max_tokens": 8,
            "system": [block],
            "messages": [{"role": "user", "content": f"What is {i}+1?"}],
        }

    requests = [{"custom_id": f"m{i}", "params": params(i, True)} for i in range(2)]
    requests += [{"custom_id": f"u{i}", "params": params(i, False)} for i in range(2)]
    batch = client.post(
        sim.url + "/v1/messages/batches", headers=ANTHROPIC, json={"requests": requests}
    ).json()
    while batch["processing_status"] != "ended":
        time.sleep(0.02)
        batch = client.get(f"{sim.url}/v1/messages/batches/{batch['id']}", headers=ANTHROPIC).json()
    import json

    results = client.get(batch["results_url"], headers=ANTHROPIC).content.splitlines()
    usage = {
        json.loads(x)["custom_id"]: json.loads(x)["result"]["message"]["usage"] for x in results
    }
    assert usage["m0"]["cache_creation_input_tokens"] == 1500
    assert usage["m1"]["cache_read_input_tokens"] == 1500
    assert usage["m1"]["input_tokens"] == usage["u1"]["input_tokens"] - 1500
    assert usage["u0"]["cache_read_input_tokens"] == usage["u1"]["cache_read_input_tokens"] == 0
