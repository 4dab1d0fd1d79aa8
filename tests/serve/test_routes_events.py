"""WS /v1/runs/{id}/events: live progress over a real WebSocket through Serve's proxy."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .conftest import suite_yaml


def events(
    service, run_id: str, *, token: str | None = None, header: bool = True, timeout_s: float = 120
) -> list[dict]:
    """Every message of the run's event stream, until the server closes it."""
    url = f"{service.ws_url}/v1/runs/{run_id}/events"
    if token is not None:
        url += f"?token={token}"
    headers = {"Authorization": f"Bearer {service.key}"} if header else {}
    out = []
    with connect(url, additional_headers=headers, open_timeout=30) as ws:
        for message in ws:  # ends when the server closes the socket
            out.append(json.loads(message))
            assert len(out) < 10_000
    return out


@pytest.fixture(scope="module")
def streamed_run(service):
    with service.client() as api:
        api.post(
            "/v1/suites",
            json={
                "yaml": suite_yaml(service.work, "watched", samples=30, latency_ms=20, shard_size=3)
            },
        )
        run_id = api.post("/v1/runs", json={"suite": "watched"}).json()["run_id"]
    return run_id, events(service, run_id)


def test_the_stream_starts_with_the_current_state_and_ends_with_the_final_one(streamed_run):
    run_id, messages = streamed_run
    assert messages[0]["type"] == "state"
    assert messages[0]["run"]["run_id"] == run_id
    assert messages[-1]["type"] == "end"
    final = messages[-1]["run"]
    assert final["status"] == "finished"
    assert final["done"] == final["total"] == 60
    assert final["targets"]["t0"]["metrics"]["rows"] == 30


def test_progress_events_count_up_to_the_total_per_target(streamed_run):
    _, messages = streamed_run
    progress = [m for m in messages if m["type"] == "progress"]
    assert len(progress) >= 3  # ten shards a target: the stream shows it advance
    done = [m["done"] for m in progress]
    assert done == sorted(done)
    assert progress[-1]["done"] == 60
    assert progress[-1]["targets"]["t1"] == {
        "done": 30,
        "total": 30,
        "errors": 0,
        "cost_usd": progress[-1]["targets"]["t1"]["cost_usd"],
    }
    assert progress[-1]["cost_usd"] > 0


def test_status_changes_are_events(streamed_run):
    _, messages = streamed_run
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses[-1] == "finished"
    assert "running" in statuses or messages[0]["run"]["status"] == "running"


def test_a_late_client_gets_the_final_state_and_the_end_at_once(service, streamed_run):
    run_id, _ = streamed_run
    late = events(service, run_id)
    assert [m["type"] for m in late] == ["state", "end"]
    assert late[0]["run"]["status"] == late[1]["run"]["status"] == "finished"


def test_browsers_may_pass_the_key_as_a_token_query_parameter(service, streamed_run):
    run_id, _ = streamed_run
    late = events(service, run_id, token=service.key, header=False)
    assert late[-1]["type"] == "end"


@pytest.mark.parametrize(
    ("token", "header", "status"), [(None, False, 401), ("wrong-key", False, 403)]
)
def test_the_websocket_refuses_missing_or_wrong_keys(service, streamed_run, token, header, status):
    run_id, _ = streamed_run
    with pytest.raises(InvalidStatus) as refused:
        events(service, run_id, token=token, header=header)
    assert refused.value.response.status_code == status


def test_the_websocket_of_an_unknown_run_is_404(service):
    with pytest.raises(InvalidStatus) as refused:
        events(service, "no-such-run-1")
    assert refused.value.response.status_code == 404
