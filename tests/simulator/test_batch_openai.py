"""OpenAI's Batch API on the simulator, over real HTTP: files, batches, output and error files."""

from __future__ import annotations

import json
import time

import httpx

KEY = {"Authorization": "Bearer sk-sim"}


def body(n: int, model: str = "sim-1") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": f"What is {n} + 1?"}]}


def upload(client: httpx.Client, url: str, lines: list[dict]) -> str:
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    resp = client.post(
        url + "/v1/files",
        headers=KEY,
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", data, "application/jsonl")},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["purpose"] == "batch" and resp.json()["bytes"] == len(data)
    return resp.json()["id"]


def request_lines(n: int) -> list[dict]:
    return [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body(i)}
        for i in range(n)
    ]


def create(client: httpx.Client, url: str, file_id: str) -> dict:
    resp = client.post(
        url + "/v1/batches",
        headers=KEY,
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait(client: httpx.Client, url: str, batch_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"{url}/v1/batches/{batch_id}", headers=KEY).json()
        if batch["status"] in ("completed", "expired", "cancelled", "failed"):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)


def jsonl(client: httpx.Client, url: str, file_id: str) -> list[dict]:
    resp = client.get(f"{url}/v1/files/{file_id}/content", headers=KEY)
    assert resp.status_code == 200
    return [json.loads(line) for line in resp.content.splitlines()]


def test_a_batch_answers_each_line_as_the_sync_route_does_and_counts_apart(sim, client):
    sim.reconfigure(batch_turnaround_s=0.2)
    batch = create(client, sim.url, upload(client, sim.url, request_lines(5)))
    assert batch["status"] == "validating" and batch["request_counts"]["total"] == 5
    done = wait(client, sim.url, batch["id"])
    assert done["status"] == "completed" and done["error_file_id"] is None
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    lines = {line["custom_id"]: line for line in jsonl(client, sim.url, done["output_file_id"])}
    assert sorted(lines) == [f"r{i}" for i in range(5)]
    sync = client.post(sim.url + "/v1/chat/completions", headers=KEY, json=body(3)).json()
    batched = lines["r3"]["response"]
    assert batched["status_code"] == 200 and lines["r3"]["error"] is None
    assert batched["body"]["choices"][0]["message"]["content"] == "4"
    assert batched["body"]["choices"][0]["message"] == sync["choices"][0]["message"]
    assert batched["body"]["usage"]["prompt_tokens"] == sync["usage"]["prompt_tokens"]
    stats = sim.stats()
    assert stats["by_outcome"]["batch_ok"] == 5 and stats["by_outcome"]["ok"] == 1
    assert stats["batches"]["created"] == 1 and stats["batches"]["requests_submitted"] == 5
    assert stats["batches"]["requests_resubmitted"] == 0
    assert stats["batches"]["cost_usd"] == stats["batches"]["cost_usd_sync_rate"] / 2


def test_progress_is_gradual_while_the_batch_is_in_progress(sim, client):
    sim.reconfigure(batch_turnaround_s=1.0)
    batch = create(client, sim.url, upload(client, sim.url, request_lines(4)))
    time.sleep(0.3)
    now = client.get(f"{sim.url}/v1/batches/{batch['id']}", headers=KEY).json()
    assert now["status"] == "in_progress" and now["output_file_id"] is None
    assert 1 <= now["request_counts"]["completed"] < 4


def test_per_line_errors_are_deterministic_and_go_to_the_error_file(sim, client):
    sim.reconfigure(batch_turnaround_s=0, batch_line_error_rate=0.5)
    failed_sets = []
    for _ in range(2):
        done = wait(
            client,
            sim.url,
            create(client, sim.url, upload(client, sim.url, request_lines(20)))["id"],
        )
        errors = jsonl(client, sim.url, done["error_file_id"])
        outputs = jsonl(client, sim.url, done["output_file_id"])
        assert len(errors) + len(outputs) == 20 and 0 < len(errors) < 20
        assert all(e["response"]["status_code"] == 500 for e in errors)
        assert all(e["response"]["body"]["error"]["type"] == "server_error" for e in errors)
        assert done["request_counts"]["failed"] == len(errors)
        failed_sets.append(sorted(e["custom_id"] for e in errors))
    assert failed_sets[0] == failed_sets[1]
    stats = sim.stats()
    assert stats["batches"]["requests_resubmitted"] == 20  # the second batch re-sent all 20


def test_an_expired_batch_lists_its_unfinished_requests_as_expired(sim, client):
    sim.reconfigure(batch_turnaround_s=0.8, batch_expire_after_s=0.4)
    batch = create(client, sim.url, upload(client, sim.url, request_lines(4)))
    time.sleep(0.5)
    done = wait(client, sim.url, batch["id"])
    assert done["status"] == "expired" and done["expired_at"] is not None
    outputs = jsonl(client, sim.url, done["output_file_id"])
    errors = jsonl(client, sim.url, done["error_file_id"])
    assert [o["custom_id"] for o in outputs] == ["r0", "r1"]
    assert [e["custom_id"] for e in errors] == ["r2", "r3"]
    assert all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in errors)


def test_a_cancel_ends_the_batch_and_marks_the_rest_cancelled(sim, client):
    sim.reconfigure(batch_turnaround_s=60)
    batch = create(client, sim.url, upload(client, sim.url, request_lines(3)))
    resp = client.post(f"{sim.url}/v1/batches/{batch['id']}/cancel", headers=KEY)
    assert resp.status_code == 200 and resp.json()["status"] == "cancelling"
    done = wait(client, sim.url, batch["id"])
    assert done["status"] == "cancelled" and done["output_file_id"] is None
    errors = jsonl(client, sim.url, done["error_file_id"])
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and len(errors) == 3
    assert sim.stats()["by_outcome"]["batch_canceled"] == 3


def test_an_input_file_with_bad_lines_fails_validation_naming_them(sim, client):
    lines = request_lines(2) + [request_lines(1)[0]]  # r0 twice
    data = b"not json\n" + b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    file_id = client.post(
        sim.url + "/v1/files",
        headers=KEY,
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", data)},
    ).json()["id"]
    done = wait(client, sim.url, create(client, sim.url, file_id)["id"])
    assert done["status"] == "failed"
    codes = [(e["code"], e["line"]) for e in done["errors"]["data"]]
    assert codes == [("invalid_json_line", 1), ("duplicate_custom_id", 4)]


def test_bad_requests_get_openai_errors(sim, client):
    resp = client.post(
        sim.url + "/v1/batches",
        headers=KEY,
        json={
            "input_file_id": "file-nope",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input_file_id"
    resp = client.post(
        sim.url + "/v1/files",
        headers=KEY,
        data={"purpose": "fine-tune"},
        files={"file": ("x.jsonl", b"{}")},
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "purpose"
    assert client.get(sim.url + "/v1/batches/batch_nope", headers=KEY).status_code == 404
    sim.reconfigure(api_keys=["sk-right"])
    resp = client.get(sim.url + "/v1/batches/batch_nope", headers=KEY)
    assert resp.status_code == 401 and "sk-sim" not in resp.text
