"""A batching run's batches in its live events and status, over a real WebSocket through Serve's
proxy: while its batch is at the provider (the simulator's batch API), the stream says so; the
run's final status and last counts agree with what the batches did."""

from __future__ import annotations

import json

import pytest
import yaml
from websockets.sync.client import connect

from .conftest import suite_document

SAMPLES = 10
# One batch of every request; the lane first looks at it after 3 s (the simulator answers in
# 1 s), so it is at the provider for seconds while the driver reports about once a second.
BATCH = {"max_wait_s": 0.2, "poll_initial_s": 3.0, "poll_max_s": 3.0}


def _events(service, run_id: str) -> list[dict]:
    url = f"{service.ws_url}/v1/runs/{run_id}/events"
    out = []
    with connect(url, additional_headers={"Authorization": f"Bearer {service.key}"}) as ws:
        for message in ws:  # ends when the server closes the socket
            out.append(json.loads(message))
            assert len(out) < 10_000
    return out


@pytest.fixture(scope="module")
def batched_run(service):
    document = suite_document(
        service.work, "batched-events", samples=SAMPLES, shard_size=SAMPLES, targets=1
    )
    document["providers"]["sim-0"].update(mode="batch", batch=BATCH)
    with service.client() as api:
        created = api.post("/v1/suites", json={"yaml": yaml.safe_dump(document)})
        assert created.status_code in (200, 201), created.text
        started = api.post("/v1/runs", json={"suite": "batched-events"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        messages = _events(service, run_id)
        final = api.get(f"/v1/runs/{run_id}").json()
    return run_id, messages, final


def test_an_event_says_a_batch_is_at_the_provider_while_it_is(batched_run):
    _, messages, _ = batched_run
    progress = [m for m in messages if m["type"] == "progress"]
    at_provider = [m for m in progress if (m["batches"] or {}).get("batches_in_progress")]
    assert at_provider, progress
    first = at_provider[0]
    assert first["batches"]["requests_in_progress"] == SAMPLES  # every request in the one batch
    assert first["done"] < SAMPLES  # seen before the answers were scored and counted
    assert set(first["batches"]) == {
        "queued",
        "batches_in_progress",
        "requests_in_progress",
        "answered",
        "retried",
        "anomalies",
    }


def test_the_final_status_agrees_with_the_batches(batched_run):
    run_id, messages, final = batched_run
    assert messages[-1]["type"] == "end"
    ended = messages[-1]["run"]
    for run in (ended, final):
        assert run["run_id"] == run_id
        assert run["status"] == "finished", run
        assert run["done"] == run["total"] == SAMPLES
        # null once the run is no longer live anywhere; else the batches' last counts
        if run["batches"] is not None:
            assert run["batches"]["batches_in_progress"] == run["batches"]["queued"] == 0
            assert run["batches"]["answered"] == SAMPLES
    last = [m for m in messages if m["type"] == "progress"][-1]
    assert last["batches"]["answered"] == SAMPLES
    assert last["batches"]["batches_in_progress"] == last["batches"]["requests_in_progress"] == 0


def test_a_run_that_batches_nothing_has_null_batches(service):
    with service.client() as api:
        api.post(
            "/v1/suites",
            json={"yaml": yaml.safe_dump(suite_document(service.work, "unbatched", samples=4))},
        )
        run_id = api.post("/v1/runs", json={"suite": "unbatched"}).json()["run_id"]
        messages = _events(service, run_id)
        status = api.get(f"/v1/runs/{run_id}").json()
    assert status["status"] == "finished" and status["batches"] is None
    assert all(m["batches"] is None for m in messages if m["type"] == "progress")
    assert messages[-1]["run"]["batches"] is None
