import asyncio
import time
from collections import Counter

import httpx
import pytest

from evalcluster.simulator import answer, count_tokens

from .wire import FORMAT_NAMES, build, post, usage_of

QUESTION = "What is 19 + 23? Answer with the number only."


async def _burst(calls, concurrency: int, timeout: float = 5.0) -> list:
    """Send `calls` with `concurrency` in flight; each result is a response or an exception."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(call):
            async with gate:
                try:
                    return await client.post(call.url, json=call.body, headers=call.headers)
                except httpx.HTTPError as exc:
                    return exc

        return await asyncio.gather(*(one(c) for c in calls))


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_a_burst_over_the_window_gets_429s_with_retry_headers(sim, fmt):
    sim.reconfigure(rpm=600)  # 10 requests a one-second window
    calls = [build(fmt, sim.url, QUESTION, max_tokens=8)] * 25
    results = asyncio.run(_burst(calls, concurrency=25))
    statuses = Counter(r.status_code for r in results)
    assert 10 <= statuses[200] <= 20  # one window, or two if the burst straddles a boundary
    assert statuses[429] == 25 - statuses[200]
    limited = next(r for r in results if r.status_code == 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 1
    assert 0 < int(limited.headers["retry-after-ms"]) <= 1000
    if fmt == "openai":
        assert limited.headers["x-ratelimit-limit-requests"] == "600"
        assert limited.headers["x-ratelimit-remaining-requests"] == "0"
        assert limited.headers["x-ratelimit-reset-requests"].endswith("s")
    if fmt == "anthropic":
        assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert sim.stats()["by_outcome"]["rate_limited"] == statuses[429]


def test_the_served_rate_over_a_few_seconds_stays_at_the_limit(sim):
    sim.reconfigure(rpm=600)  # 10 a second
    call = build("openai", sim.url, QUESTION)

    async def hammer(seconds: float) -> tuple[int, float]:
        ok = 0
        async with httpx.AsyncClient(timeout=5) as client:

            async def worker():
                nonlocal ok
                while time.monotonic() < deadline:
                    r = await client.post(call.url, json=call.body, headers=call.headers)
                    ok += r.status_code == 200
                    await asyncio.sleep(0.01)

            start = time.monotonic()
            deadline = start + seconds
            await asyncio.gather(*(worker() for _ in range(8)))
            return ok, time.monotonic() - start

    ok, elapsed = asyncio.run(hammer(2.5))
    assert ok <= 10 * (int(elapsed) + 2)  # at most every window touched, full
    assert ok >= 10 * int(elapsed) * 0.8  # and the limit is actually reached


def test_tokens_are_charged_as_input_plus_max_tokens_or_actual_output(sim, client):
    sim.reconfigure(tpm=60_000)  # 1000 tokens a window
    with_max = post(client, "openai", sim.url, QUESTION, max_tokens=50)
    used = 1000 - int(with_max.headers["x-ratelimit-remaining-tokens"])
    assert used == count_tokens(QUESTION) + 50
    without_max = post(client, "openai", sim.url, QUESTION)
    used_after = 1000 - int(without_max.headers["x-ratelimit-remaining-tokens"])
    if used_after > used:  # same window: the second request added input + 1 output token
        assert used_after - used == count_tokens(QUESTION) + 1


def test_a_tpm_refusal_names_tokens(sim, client):
    sim.reconfigure(tpm=120)  # 2 tokens a window: the first request leaves debt
    assert post(client, "openai", sim.url, QUESTION, max_tokens=10).status_code == 200
    resp = post(client, "openai", sim.url, QUESTION, max_tokens=10)
    assert resp.status_code == 429
    assert resp.json()["error"]["type"] == "tokens"
    assert int(resp.headers["retry-after"]) >= 5


def test_injected_faults_follow_their_rates_and_stats_count_them(sim):
    sim.reconfigure(error_rate=0.4, hang_s=10)
    calls = [build("openai", sim.url, f"What is {i} + 1?") for i in range(200)]
    results = asyncio.run(_burst(calls, concurrency=32, timeout=2.0))
    seen = Counter(
        r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results
    )
    for count in (seen[500], seen[503], seen["ReadTimeout"], seen["RemoteProtocolError"]):
        assert 6 <= count <= 40  # 20 expected each, sd 4
    assert (
        seen[200] == 200 - seen[500] - seen[503] - seen["ReadTimeout"] - seen["RemoteProtocolError"]
    )
    stats = sim.stats()["by_outcome"]
    assert stats["error_500"] == seen[500]
    assert stats["error_503"] == seen[503]
    assert stats["timeout"] == seen["ReadTimeout"]
    assert stats["dropped"] == seen["RemoteProtocolError"]
    assert stats["ok"] == seen[200]


def test_a_held_request_does_not_block_others(sim):
    sim.reconfigure(hang_s=3)
    hung = build("gemini", sim.url, QUESTION, headers={"x-sim-force": "timeout"})
    normal = build("gemini", sim.url, QUESTION)

    async def scenario():
        async with httpx.AsyncClient(timeout=5) as client:
            held = asyncio.create_task(client.post(hung.url, json=hung.body, headers=hung.headers))
            await asyncio.sleep(0.1)
            start = time.monotonic()
            sends = [
                client.post(normal.url, json=normal.body, headers=normal.headers) for _ in range(20)
            ]
            replies = await asyncio.gather(*sends)
            elapsed = time.monotonic() - start
            in_flight = (await client.get(sim.url + "/stats")).json()["in_flight"]
            held.cancel()
            return replies, elapsed, in_flight

    replies, elapsed, in_flight = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in replies)
    assert elapsed < 2.0
    assert in_flight == 1


def test_admin_config_starts_and_ends_an_outage_live(sim, client):
    assert post(client, "anthropic", sim.url, QUESTION).status_code == 200
    sim.reconfigure(error_503_rate=1.0)
    assert [post(client, "anthropic", sim.url, QUESTION).status_code for _ in range(5)] == [503] * 5
    sim.reconfigure(error_503_rate=0)
    assert post(client, "anthropic", sim.url, QUESTION).status_code == 200
    assert sim.stats()["by_outcome"]["error_503"] == 5


def test_admin_config_changes_latency_and_accuracy_live(sim, client):
    sim.reconfigure(latency_ms=150)
    start = time.monotonic()
    post(client, "openai", sim.url, QUESTION)
    assert time.monotonic() - start >= 0.15
    sim.reconfigure(latency_ms=0, accuracy=0.0)
    text = post(client, "openai", sim.url, QUESTION).json()["choices"][0]["message"]["content"]
    assert text in ("41", "43")
    assert text == answer(QUESTION, accuracy=0.0)


def test_admin_config_rejects_invalid_changes_naming_the_field(sim, client):
    with pytest.raises(ValueError, match="accuracy"):
        sim.reconfigure(accuracy=2)
    with pytest.raises(ValueError, match="no_such_option"):
        sim.reconfigure(no_such_option=1)
    resp = client.post(sim.url + "/admin/config", content=b"[1, 2]")
    assert resp.status_code == 400
    assert sim.config()["accuracy"] == 1.0


def test_admin_config_never_returns_api_keys(sim, client):
    returned = sim.reconfigure(api_keys=["sk-very-secret"])
    assert "sk-very-secret" not in str(returned)
    assert "sk-very-secret" not in client.get(sim.url + "/admin/config").text
    assert post(client, "openai", sim.url, QUESTION, key="sk-very-secret").status_code == 200
    assert post(client, "openai", sim.url, QUESTION, key="sk-other").status_code == 401


def test_stats_count_requests_and_tokens_by_format_and_reset(sim, client):
    served_in = served_out = 0
    for fmt in FORMAT_NAMES:
        body = post(client, fmt, sim.url, QUESTION, system="Be brief.").json()
        tokens_in, tokens_out = usage_of(fmt, body)
        served_in, served_out = served_in + tokens_in, served_out + tokens_out
    sim.reconfigure(api_keys=["k"])
    post(client, "openai", sim.url, QUESTION, key=None)
    stats = sim.stats()
    assert stats["requests_total"] == 4
    assert stats["by_format"] == {"openai": 2, "anthropic": 1, "gemini": 1}
    assert stats["by_outcome"]["ok"] == 3 and stats["by_outcome"]["auth"] == 1
    assert (stats["tokens_in"], stats["tokens_out"]) == (served_in, served_out)
    assert served_in == 3 * (count_tokens("Be brief.") + count_tokens(QUESTION))
    zeroed = sim.reset_stats()
    assert zeroed["requests_total"] == 0 and zeroed["tokens_in"] == 0
    assert sim.stats()["by_outcome"]["ok"] == 0


def test_healthz_answers_without_a_key(sim, client):
    resp = client.get(sim.url + "/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert sim.stats()["requests_total"] == 0
