"""Every batch route of the simulator that names a batch or a file: a bad key is refused in the
vendor's shape before the lookup, and an unknown name is the vendor's 404."""

from __future__ import annotations

import pytest

OPENAI = {"Authorization": "Bearer sk-sim"}
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "k"}

# (method, path, headers, the 404's message, where the message is in the body)
LOOKUPS = [
    ("GET", "/v1/files/file-nope", OPENAI, "No such File object"),
    ("GET", "/v1/files/file-nope/content", OPENAI, "No such File object"),
    ("GET", "/v1/batches/batch_nope", OPENAI, "No such Batch object"),
    ("POST", "/v1/batches/batch_nope/cancel", OPENAI, "No such Batch object"),
    ("GET", "/v1/messages/batches/msgbatch_nope", ANTHROPIC, "message batch not found"),
    ("GET", "/v1/messages/batches/msgbatch_nope/results", ANTHROPIC, "message batch not found"),
    ("POST", "/v1/messages/batches/msgbatch_nope/cancel", ANTHROPIC, "message batch not found"),
    ("GET", "/v1beta/batches/nope", GEMINI, "Requested entity was not found."),
    ("POST", "/v1beta/batches/nope:cancel", GEMINI, "Requested entity was not found."),
]


@pytest.mark.parametrize(("method", "path", "headers", "message"), LOOKUPS)
def test_an_unknown_batch_or_file_is_the_vendors_404(sim, client, method, path, headers, message):
    resp = client.request(method, sim.url + path, headers=headers)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["message"] == message


@pytest.mark.parametrize(("method", "path", "headers", "message"), LOOKUPS)
def test_a_wrong_key_is_refused_before_the_lookup(sim, client, method, path, headers, message):
    sim.reconfigure(api_keys=["the-right-key"])
    resp = client.request(method, sim.url + path, headers=headers)
    # Gemini answers a bad key with 400 API_KEY_INVALID, as the real API does.
    assert resp.status_code in (400, 401, 403), resp.text
    assert "key" in resp.text.lower() and message not in resp.text


def test_a_batch_of_one_vendor_is_not_found_on_anothers_routes(sim, client):
    body = {"model": "sim-1", "max_tokens": 8, "messages": [{"role": "user", "content": "1+1"}]}
    created = client.post(
        sim.url + "/v1/messages/batches",
        headers=ANTHROPIC,
        json={"requests": [{"custom_id": "a", "params": body}]},
    ).json()
    assert client.get(f"{sim.url}/v1/batches/{created['id']}", headers=OPENAI).status_code == 404
    own = client.get(f"{sim.url}/v1/messages/batches/{created['id']}", headers=ANTHROPIC)
    assert own.status_code == 200 and own.json()["id"] == created["id"]
