"""Anthropic's Message Batches and Gemini's batch mode on the simulator, over real HTTP."""

from __future__ import annotations

import json
import time

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "k"}


def params(n: int) -> dict:
    return {
        "model": "sim-1",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"What is {n} + 2?"}],
    }


def anthropic_create(client, url: str, n: int) -> dict:
    requests = [{"custom_id": f"c{i}", "params": params(i)} for i in range(n)]
    resp = client.post(url + "/v1/messages/batches", headers=ANTHROPIC, json={"requests": requests})
    assert resp.status_code == 200, resp.text
    return resp.json()


def anthropic_wait(client, url: str, batch_id: str) -> dict:
    for _ in range(200):
        batch = client.get(f"{url}/v1/messages/batches/{batch_id}", headers=ANTHROPIC).json()
        if batch["processing_status"] == "ended":
            return batch
        time.sleep(0.05)
    raise AssertionError(batch)


def anthropic_results(client, batch: dict) -> list[dict]:
    resp = client.get(batch["results_url"], headers=ANTHROPIC)
    assert resp.status_code == 200
    return [json.loads(line) for line in resp.content.splitlines()]


def test_anthropic_batch_results_match_the_sync_answer(sim, client):
    sim.reconfigure(batch_turnaround_s=0.1)
    batch = anthropic_create(client, sim.url, 3)
    assert batch["processing_status"] == "in_progress" and batch["results_url"] is None
    early = client.get(f"{sim.url}/v1/messages/batches/{batch['id']}/results", headers=ANTHROPIC)
    assert early.status_code in (200, 400)
    done = anthropic_wait(client, sim.url, batch["id"])
    assert done["request_counts"]["succeeded"] == 3 and done["ended_at"]
    results = anthropic_results(client, done)
    sync = client.post(sim.url + "/v1/messages", headers=ANTHROPIC, json=params(1)).json()
    by_id = {r["custom_id"]: r["result"] for r in results}
    assert by_id["c1"]["type"] == "succeeded"
    assert by_id["c1"]["message"]["content"] == sync["content"] == [{"type": "text", "text": "3"}]
    assert sim.stats()["by_format_outcome"]["anthropic"] == {"batch_ok": 3, "ok": 1}


def test_anthropic_cancel_and_per_line_errors(sim, client):
    sim.reconfigure(batch_turnaround_s=0, batch_line_error_rate=1.0)
    done = anthropic_wait(client, sim.url, anthropic_create(client, sim.url, 2)["id"])
    results = anthropic_results(client, done)
    assert {r["result"]["type"] for r in results} == {"errored"}
    assert results[0]["result"]["error"]["error"]["type"] == "api_error"
    sim.reconfigure(batch_turnaround_s=60, batch_line_error_rate=0)
    batch = anthropic_create(client, sim.url, 2)
    url = f"{sim.url}/v1/messages/batches/{batch['id']}/cancel"
    assert client.post(url, headers=ANTHROPIC).json()["processing_status"] == "canceling"
    done = anthropic_wait(client, sim.url, batch["id"])
    assert done["request_counts"]["canceled"] == 2
    assert {r["result"]["type"] for r in anthropic_results(client, done)} == {"canceled"}


def test_anthropic_expiry_and_bad_batches(sim, client):
    sim.reconfigure(batch_turnaround_s=10, batch_expire_after_s=0.2)
    batch = anthropic_create(client, sim.url, 2)
    time.sleep(0.25)
    done = anthropic_wait(client, sim.url, batch["id"])
    assert done["request_counts"]["expired"] == 2
    twice = [{"custom_id": "a", "params": params(0)}] * 2
    resp = client.post(
        sim.url + "/v1/messages/batches", headers=ANTHROPIC, json={"requests": twice}
    )
    assert resp.status_code == 400 and "duplicate" in resp.json()["error"]["message"]
    resp = client.post(sim.url + "/v1/messages/batches", headers={"x-api-key": "k"}, json={})
    assert resp.status_code == 400 and "anthropic-version" in resp.text


def gemini_create(client, url: str, n: int) -> dict:
    requests = [
        {
            "request": {"contents": [{"role": "user", "parts": [{"text": f"What is {i} + 5?"}]}]},
            "metadata": {"key": f"g{i}"},
        }
        for i in range(n)
    ]
    body = {"batch": {"display_name": "t", "input_config": {"requests": {"requests": requests}}}}
    resp = client.post(url + "/v1beta/models/sim-1:batchGenerateContent", headers=GEMINI, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def gemini_wait(client, url: str, name: str) -> dict:
    for _ in range(200):
        op = client.get(f"{url}/v1beta/{name}", headers=GEMINI).json()
        if op["done"]:
            return op
        time.sleep(0.05)
    raise AssertionError(op)


def test_gemini_batch_operation_holds_inline_results(sim, client):
    sim.reconfigure(batch_turnaround_s=0.1)
    op = gemini_create(client, sim.url, 3)
    assert op["name"].startswith("batches/") and op["done"] is False
    assert op["metadata"]["state"] == "BATCH_STATE_RUNNING"
    done = gemini_wait(client, sim.url, op["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"]["successfulRequestCount"] == "3"
    inlined = done["response"]["inlinedResponses"]["inlinedResponses"]
    by_key = {e["metadata"]["key"]: e for e in inlined}
    text = by_key["g2"]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert text == "7"


def test_gemini_cancel_and_line_errors(sim, client):
    sim.reconfigure(batch_turnaround_s=60)
    op = gemini_create(client, sim.url, 2)
    assert client.post(f"{sim.url}/v1beta/{op['name']}:cancel", headers=GEMINI).json() == {}
    done = gemini_wait(client, sim.url, op["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert done["response"]["inlinedResponses"]["inlinedResponses"] == []
    sim.reconfigure(batch_turnaround_s=0, batch_line_error_rate=1.0)
    done = gemini_wait(client, sim.url, gemini_create(client, sim.url, 2)["name"])
    errors = [e["error"] for e in done["response"]["inlinedResponses"]["inlinedResponses"]]
    assert [e["code"] for e in errors] == [13, 13]
    assert client.get(f"{sim.url}/v1beta/batches/nope", headers=GEMINI).status_code == 404


def test_corrupt_results_are_served_when_configured(sim, client):
    sim.reconfigure(
        batch_turnaround_s=0,
        batch_corrupt=["malformed_line", "unknown_id", "duplicate_line", "missing_line"],
    )
    done = anthropic_wait(client, sim.url, anthropic_create(client, sim.url, 3)["id"])
    raw = client.get(done["results_url"], headers=ANTHROPIC).content.splitlines()
    assert len(raw) == 5  # 3 - missing + duplicate + unknown + malformed
    try:
        json.loads(raw[0])
        raise AssertionError("the first line should not be JSON")
    except ValueError:
        pass
    ids = [json.loads(line)["custom_id"] for line in raw[1:]]
    assert ids[:3] == ["c0", "c1", "c0"] and ids[3].startswith("unknown-")
