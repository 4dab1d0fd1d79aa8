"""The service under attack: a client holding one valid key, against the real deployment over
HTTP, with the real Ray. Secrets, server files and other tenants' things must stay out of reach,
and hostile documents or floods of connections must get clean 4xx answers while the service
keeps answering.

Client-defined providers that point at non-loopback addresses are only ever validated here:
the service refuses them before anything connects.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import ray
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .conftest import API_KEYS, MAX_WEBSOCKETS, TEAM_A_QUOTAS, Service, suite_document

TERMINAL = {"finished", "failed", "killed", "budget_exhausted"}
HEALTHZ_WORST_S = 20.0  # see the flood test
STEADY_S = 3.0
# Handshakes in flight at once during the flood: 1,000 clients do not all connect in the same
# millisecond, and Ray Serve (not this service) answers a WebSocket handshake that overflows its
# request queue with 500.
HANDSHAKES_AT_ONCE = 250


# -- helpers -----------------------------------------------------------------------------------


def client(service: Service, tenant: str) -> httpx.Client:
    key = service.key if tenant == "bare" else service.tenant_keys[tenant]
    return service.client(key)


def wait_for_end(api: httpx.Client, run_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.get(f"/v1/runs/{run_id}").json()
        if body.get("status") in TERMINAL:
            return body
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end within {timeout_s}s: {body}")


def driver_names() -> set[str]:
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}


def wait_driver_gone(run_id: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while f"driver:{run_id}" in driver_names():
        assert time.monotonic() < deadline, f"driver:{run_id} still alive {timeout_s}s after"
        time.sleep(0.2)


def slow_suite(service: Service, name: str) -> dict[str, Any]:
    """A suite whose runs take a minute or more: 200 samples, 400 ms each, 4 at a time."""
    return suite_document(service.work, name, samples=200, latency_ms=400, shard_size=4, targets=1)


def hostile_suite(
    service: Service, name: str, providers: dict[str, Any], target: str = "x", **extra: Any
) -> dict[str, Any]:
    """A small valid suite whose only target uses `target`, with the given `providers`."""
    doc = suite_document(service.work, name, samples=3, targets=1, **extra)
    doc["providers"] = providers
    doc["targets"][0]["provider"] = target
    return doc


def forbidden_values(service: Service) -> dict[str, str]:
    """Every value that must never reach the canary: each server secret but the one the
    operator gave `canary-op`, and every API key of the service."""
    values = {k: v for k, v in service.secrets.items() if k != "CANARY_OPERATOR_KEY"}
    values.update({f"api key {i}": key for i, key in enumerate(API_KEYS)})
    values.update({f"key of {t}": key for t, key in service.tenant_keys.items()})
    return values


def leaks(service: Service) -> list[tuple[str, str]]:
    """(what leaked, request path) for every forbidden value in any canary request."""
    assert service.canary is not None
    found = []
    for request in service.canary.seen():
        text = json.dumps(request.headers) + request.body + request.path
        found += [
            (name, request.path) for name, v in forbidden_values(service).items() if v in text
        ]
    return found


def refused(response: httpx.Response, field: str) -> dict[str, Any]:
    """Assert a 422 naming `field` (exactly, or a field under it); the body."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] is not None, body
    assert body["field"] == field or body["field"].startswith(field + "."), body
    return body


# -- secret exfiltration -----------------------------------------------------------------------


def exfiltration_attempts(canary_url: str) -> dict[str, tuple[dict[str, Any], str, str]]:
    """name -> (providers, target provider, the field the refusal must name)."""
    return {
        "aws-secret-by-api-key-env": (
            {
                "x": {
                    "kind": "openai",
                    "base_url": canary_url,
                    "api_key_env": "AWS_SECRET_ACCESS_KEY",
                }
            },
            "x",
            "providers.x.api_key_env",
        ),
        "vendor-default-variable": (
            {"x": {"kind": "openai", "base_url": canary_url}},  # would send OPENAI_API_KEY
            "x",
            "providers.x",
        ),
        "server-file-as-key": (
            {"x": {"kind": "openai", "base_url": canary_url, "api_key_file": "/etc/hostname"}},
            "x",
            "providers.x.api_key_file",
        ),
        "service-keys-to-anthropic": (
            {
                "x": {
                    "kind": "anthropic",
                    "base_url": canary_url,
                    "api_key_env": "EVALCLUSTER_API_KEYS",
                }
            },  # fmt: skip
            "x",
            "providers.x.api_key_env",
        ),
        "custom-header-api-key": (
            {
                "x": {
                    "kind": "custom",
                    "custom": {
                        "url": canary_url + "/chat/completions",
                        "headers": {"Authorization": "Bearer {api_key}"},
                        "body_template": {"prompt": "{prompt}"},
                        "text_path": "choices.0.message.content",
                    },
                }
            },
            "x",
            "providers.x",
        ),
        "registry-provider-redefined": (
            {
                "canary-op": {
                    "kind": "openai",
                    "base_url": canary_url.replace("/v1", "/evil/v1"),
                    "api_key_env": "CANARY_OPERATOR_KEY",
                }
            },  # fmt: skip
            "canary-op",
            "providers.canary-op",
        ),
    }


def test_suites_that_would_send_a_server_secret_are_refused_naming_the_field(service: Service):
    assert service.canary is not None
    before = len(service.canary.seen())
    attempts = exfiltration_attempts(service.canary.base_url)
    with client(service, "team-a") as api:
        for name, (providers, target, field) in attempts.items():
            doc = hostile_suite(service, f"exfil-{name}", providers, target)
            body = refused(api.post("/v1/suites", json={"suite": doc}), field)
            for secret in service.secrets.values():
                assert secret not in json.dumps(body), name
            assert api.get(f"/v1/suites/exfil-{name}").status_code == 404, name
        doc = hostile_suite(
            service, "exfil-providers-file", {}, "op-sim", providers_file="/etc/evalcluster/p.yaml"
        )
        refused(api.post("/v1/suites", json={"suite": doc}), "providers_file")
    assert service.canary.seen()[before:] == []
    assert leaks(service) == []


def test_a_run_on_the_operators_canary_provider_sends_its_key_and_no_other_secret(
    service: Service,
):
    if not service.secrets_in_ray:
        pytest.skip("Ray was started before the fixture: its processes lack the test secrets")
    assert service.canary is not None
    before = len(service.canary.seen())
    doc = hostile_suite(service, "canary-legit", {}, "canary-op")
    with client(service, "team-a") as api:
        created = api.post("/v1/suites", json={"suite": doc})
        assert created.status_code in (200, 201), created.text
        started = api.post("/v1/runs", json={"suite": "canary-legit", "no_cache": True})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        final = wait_for_end(api, run_id)
        assert final["status"] == "finished", final
    wait_driver_gone(run_id)
    seen = service.canary.seen()[before:]
    assert len(seen) >= 3, seen  # one request per sample
    key = service.secrets["CANARY_OPERATOR_KEY"]
    assert all(r.path == "/v1/chat/completions" for r in seen), seen
    assert all(r.headers.get("Authorization") == f"Bearer {key}" for r in seen)
    assert leaks(service) == []


# -- SSRF --------------------------------------------------------------------------------------


def ssrf_attempts(port: int) -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (the provider x, the field the refusal must name)."""

    def local(url: str) -> dict[str, Any]:
        return {"kind": "local", "base_url": url}

    return {
        "cloud-metadata": (local("http://169.254.169.254/latest/meta-data/"), "providers.x"),
        "ray-dashboard": (local("http://127.0.0.1:8265/v1"), "providers.x"),
        "ipv6-loopback": (local(f"http://[::1]:{port}/v1"), "providers.x"),
        "private-network": (local("http://10.0.0.1/v1"), "providers.x"),
        "legacy-ipv4-loopback": (local(f"http://0x7f.1:{port}/v1"), "providers.x"),
        "localhost": (local(f"http://localhost:{port}/v1"), "providers.x"),
        "custom-get-loopback": (
            {
                "kind": "custom",
                "custom": {
                    "url": f"http://127.0.0.1:{port}/v1/chat/completions",
                    "method": "GET",
                    "text_path": "choices.0.message.content",
                },
            },
            "providers.x",
        ),
        "allow-private-network": (
            {**local(f"http://127.0.0.1:{port}/v1"), "allow_private_network": True},
            "providers.x.allow_private_network",
        ),
    }


def test_client_providers_at_non_public_addresses_are_refused_and_never_reached(
    service: Service,
):
    assert service.canary is not None
    before = len(service.canary.seen())
    with client(service, "team-a") as api:
        for name, (provider, field) in ssrf_attempts(service.canary.port).items():
            doc = hostile_suite(service, f"ssrf-{name}", {"x": provider})
            refused(api.post("/v1/suites", json={"suite": doc}), field)
            assert api.get(f"/v1/suites/ssrf-{name}").status_code == 404, name
    assert service.canary.seen()[before:] == []


# -- server files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../../../../etc/passwd", "s3://some-bucket/x.csv"]
)
def test_a_dataset_outside_the_roots_is_refused_without_quoting_the_file_or_a_server_path(
    service: Service, path: str
):
    doc = suite_document(service.work, "fileread", samples=3, targets=1)
    doc["dataset"]["path"] = path
    doc["dataset"]["format"] = "csv" if path.endswith(".csv") else "jsonl"
    with client(service, "team-a") as api:
        response = api.post("/v1/suites", json={"suite": doc})
        body = refused(response, "dataset")
        assert "root:" not in response.text
        assert str(service.work) not in response.text
        assert str(service.work.resolve()) not in response.text
        assert body["field"] == "dataset.path"


# -- isolation ---------------------------------------------------------------------------------


def test_tenants_see_only_their_own_suites_and_runs_and_admins_see_all(service: Service):
    with client(service, "team-a") as a, client(service, "team-b") as b:
        created = a.post("/v1/suites", json={"suite": slow_suite(service, "iso-a")})
        assert created.status_code in (200, 201), created.text
        started = a.post("/v1/runs", json={"suite": "iso-a"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        try:
            assert a.get("/v1/suites/iso-a").status_code == 200
            assert a.get(f"/v1/runs/{run_id}").status_code == 200

            # team-b: the suite and the run do not exist.
            for method, path in (
                ("GET", "/v1/suites/iso-a"),
                ("DELETE", "/v1/suites/iso-a"),
                ("GET", f"/v1/runs/{run_id}"),
                ("GET", f"/v1/runs/{run_id}/results"),
                ("POST", f"/v1/runs/{run_id}/cancel"),
                ("POST", f"/v1/runs/{run_id}/resume"),
            ):
                response = b.request(method, path)
                assert response.status_code == 404, (method, path, response.text)
                assert "team-a" not in response.text
            assert b.post("/v1/runs", json={"suite": "iso-a"}).status_code == 404
            assert "iso-a" not in json.dumps(b.get("/v1/suites").json())
            assert run_id not in json.dumps(b.get("/v1/runs").json())
            with pytest.raises(InvalidStatus) as denied:
                connect(
                    f"{service.ws_url}/v1/runs/{run_id}/events",
                    additional_headers={"Authorization": f"Bearer {service.tenant_keys['team-b']}"},
                    open_timeout=30,
                ).close()
            assert denied.value.response.status_code == 404

            # viewer: reads its own (nothing), writes nothing, does not see team-a's.
            with client(service, "viewer") as v:
                denied_suite = v.post("/v1/suites", json={"suite": slow_suite(service, "iso-v")})
                assert denied_suite.status_code == 403, denied_suite.text
                assert v.post("/v1/runs", json={"suite": "iso-a"}).status_code == 403
                assert v.get("/v1/suites").status_code == 200
                assert v.get("/v1/suites").json()["suites"] == []
                assert v.get("/v1/runs").json()["runs"] == []
                assert v.get(f"/v1/runs/{run_id}").status_code == 404
                assert v.get("/v1/suites/iso-v").status_code == 404

            # ops (admin): sees team-a's run and suite, cancels the run, reads the audit log.
            with client(service, "ops") as ops:
                listed = ops.get("/v1/runs").json()["runs"]
                assert {"run_id": run_id, "tenant": "team-a"}.items() <= next(
                    r for r in listed if r["run_id"] == run_id
                ).items()
                assert ops.get(f"/v1/runs/{run_id}").status_code == 200
                suites = ops.get("/v1/suites", params={"tenant": "team-a"}).json()["suites"]
                assert "iso-a" in [s["name"] for s in suites]
                cancel = ops.post(f"/v1/runs/{run_id}/cancel")
                assert cancel.status_code == 202, cancel.text

                assert a.get("/v1/audit").status_code == 403
                assert b.get("/v1/audit").status_code == 403
                audit = ops.get("/v1/audit", params={"tenant": "team-a", "action": "run.start"})
                assert audit.status_code == 200, audit.text
                assert run_id in [e.get("run_id") for e in audit.json()["events"]]
                cancels = ops.get("/v1/audit", params={"action": "run.cancel"}).json()["events"]
                assert any(e["run_id"] == run_id and e["tenant"] == "ops" for e in cancels)
        finally:
            a.post(f"/v1/runs/{run_id}/cancel")
        final = wait_for_end(a, run_id)
        assert final["status"] == "killed", final
    wait_driver_gone(run_id)


# -- denial of service -------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{names[i - 1]}"] * width)
        lines.append(f"{names[i]}: &{names[i]} [{refs}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once_and_not_stored(service: Service):
    bomb = alias_bomb()
    assert len(bomb.encode()) < 1024  # expands to 9**9 (387 million) scalars
    with client(service, "team-a") as api:
        before = api.get("/v1/suites").json()["suites"]
        started = time.monotonic()
        response = api.post("/v1/suites", json={"yaml": "name: bomb\n" + bomb})
        elapsed = time.monotonic() - started
        assert response.status_code == 422, response.text
        assert "alias" in response.text or "anchor" in response.text
        assert elapsed < 2.0
        assert api.get("/v1/suites").json()["suites"] == before
        assert api.get("/v1/suites/bomb").status_code == 404


def nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_900_deep_json_suite_is_422_naming_suite(service: Service):
    with client(service, "team-a") as api:
        body = '{"suite": ' + nested_object(900) + "}"
        response = api.post(
            "/v1/suites", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"].endswith("suite"), response.text


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("json-100000-deep", '{"suite": {"a": ' + nested_list(100_000) + "}}"),
        ("json-30000-deep", '{"suite": {"a": ' + nested_list(30_000) + "}}"),
        ("yaml-900-deep", json.dumps({"yaml": "name: deep\nx: " + nested_object(900)})),
        ("yaml-100000-deep", json.dumps({"yaml": "name: deep\nx: " + nested_list(100_000)})),
        ("yaml-30000-deep", json.dumps({"yaml": "name: deep\nx: " + nested_list(30_000)})),
    ],
)
def test_deeply_nested_documents_get_a_4xx_never_a_5xx(service: Service, kind: str, text: str):
    with client(service, "team-a") as api:
        response = api.post(
            "/v1/suites", content=text, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (kind, response.status_code, response.text)
        assert response.json()["error"] in {
            "bad_request",
            "invalid_request",
            "invalid_suite",
            "payload_too_large",
        }
        assert api.get("/healthz", timeout=5).status_code == 200


def test_team_a_is_held_to_its_run_quotas(service: Service):
    ceiling = TEAM_A_QUOTAS["max_budget_usd_per_run"]
    with client(service, "team-a") as api:
        created = api.post("/v1/suites", json={"suite": slow_suite(service, "quota-a")})
        assert created.status_code in (200, 201), created.text
        over_budget = api.post("/v1/runs", json={"suite": "quota-a", "budget_usd": ceiling * 5})
        assert refused(over_budget, "budget_usd")["field"] == "budget_usd"
        assert refused(api.post("/v1/runs", json={"suite": "quota-a", "priority": 2}), "priority")
        many = api.post("/v1/runs", json={"suite": "quota-a", "max_samples": 5000})
        assert refused(many, "max_samples")

        run_ids = []
        try:
            for _ in range(TEAM_A_QUOTAS["max_active_runs"]):
                started = api.post("/v1/runs", json={"suite": "quota-a"})
                assert started.status_code == 202, started.text
                run_ids.append(started.json()["run_id"])
            one_more = api.post("/v1/runs", json={"suite": "quota-a"})
            assert one_more.status_code == 429, one_more.text
            assert "Retry-After" in one_more.headers

            # Event streams: team-a may hold 4; the 5th is refused and the 4 stay open.
            url = f"{service.ws_url}/v1/runs/{run_ids[0]}/events"
            headers = {"Authorization": f"Bearer {service.tenant_keys['team-a']}"}
            streams = [
                connect(url, additional_headers=headers, open_timeout=30)
                for _ in range(TEAM_A_QUOTAS["max_websockets"])
            ]
            try:
                for ws in streams:
                    assert json.loads(ws.recv(timeout=30))["type"] == "state"
                with pytest.raises(InvalidStatus) as fifth:
                    connect(url, additional_headers=headers, open_timeout=30).close()
                assert fifth.value.response.status_code == 429
                for ws in streams:
                    assert ws.ping().wait(10)  # still open and answering
            finally:
                for ws in streams:
                    ws.close()
        finally:
            for run_id in run_ids:
                api.post(f"/v1/runs/{run_id}/cancel")
        for run_id in run_ids:
            assert wait_for_end(api, run_id)["status"] == "killed"
    for run_id in run_ids:
        wait_driver_gone(run_id)


def test_a_thousand_websocket_attempts_get_clean_answers_while_healthz_keeps_answering(
    service: Service,
):
    with client(service, "bare") as api:
        created = api.post("/v1/suites", json={"suite": slow_suite(service, "flood")})
        assert created.status_code in (200, 201), created.text
        run_id = api.post("/v1/runs", json={"suite": "flood"}).json()["run_id"]
        try:
            outcomes, health, answered_at = asyncio.run(flood(service, run_id, attempts=1000))
        finally:
            api.post(f"/v1/runs/{run_id}/cancel")
        wait_for_end(api, run_id)
    failures = [o for o in outcomes if o[0] == "error"]
    assert failures == [], failures[:5]
    accepted = [o for o in outcomes if o[0] == "accepted"]
    denied = [o for o in outcomes if o[0] == "denied"]
    assert len(outcomes) == 1000
    assert 1 <= len(accepted) <= MAX_WEBSOCKETS
    assert all(o[1] == 429 or o[1] == 4429 for o in denied), {o[1] for o in denied}
    assert health, "healthz was never polled"
    assert all(status == 200 for status, _, _ in health), health
    # While the burst of 1,000 handshakes is taken, Ray Serve's proxy itself stalls on this
    # 2-core machine (seconds, even when every attempt is refused on the handler's first line
    # with a wrong key): bounded loosely. Once every attempt has its answer, with the accepted
    # streams still open and following the run, /healthz answers within a second.
    assert max(elapsed for _, elapsed, _ in health) < HEALTHZ_WORST_S, health
    steady = [elapsed for _, elapsed, at in health if at > answered_at + 0.5]
    assert len(steady) >= 10, health
    assert max(steady) < 1.0, steady
    wait_driver_gone(run_id)


HEALTH_POLLER = """
import json, sys, time, httpx
url, stop_file = sys.argv[1], sys.argv[2]
import os
with httpx.Client(base_url=url, timeout=30) as client:
    while not os.path.exists(stop_file):
        started = time.monotonic()
        try:
            status = client.get("/healthz").status_code
        except httpx.HTTPError:
            status = 0
        print(json.dumps([status, time.monotonic() - started, time.time()]), flush=True)
        time.sleep(0.1)
"""


async def flood(
    service: Service, run_id: str, attempts: int
) -> tuple[list[tuple[str, Any]], list[tuple[int, float, float]], float]:
    """`attempts` event-stream connections at once; accepted ones are held open until every
    attempt has its answer. /healthz is polled meanwhile from another process, so the time
    measured is the service's, not this process's event loop's."""
    url = f"{service.ws_url}/v1/runs/{run_id}/events"
    headers = {"Authorization": f"Bearer {service.key}"}
    all_answered = asyncio.Event()
    release = asyncio.Event()
    answered = 0

    handshakes = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

    async def attempt() -> tuple[str, Any]:
        nonlocal answered
        try:
            async with handshakes:
                ws = await aconnect(url, additional_headers=headers, open_timeout=60, max_queue=4)
        except InvalidStatus as exc:
            outcome: tuple[str, Any] = ("denied", exc.response.status_code)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            outcome = ("denied", code) if code == 4429 else ("error", repr(exc))
        except Exception as exc:  # noqa: BLE001 - every other outcome is a failure
            outcome = ("error", repr(exc))
        else:
            outcome = ("accepted", None)
        answered += 1
        if answered == attempts:
            all_answered.set()
        if outcome[0] == "accepted":
            try:
                await asyncio.wait_for(release.wait(), 120)
            finally:
                await ws.close()
        return outcome

    stop_file = service.work / f"stop-health-{run_id}"
    poller = subprocess.Popen(
        [sys.executable, "-c", HEALTH_POLLER, service.url, str(stop_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(1.0)  # the poller is up and has answers from before the flood
        tasks = asyncio.gather(*(attempt() for _ in range(attempts)))
        await asyncio.wait_for(all_answered.wait(), 120)
        answered_at = time.time()
        await asyncio.sleep(STEADY_S)  # accepted streams open, following the run
        release.set()
        outcomes = await asyncio.wait_for(tasks, 30)
    finally:
        release.set()
        stop_file.touch()
        try:
            out, _ = poller.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            poller.kill()
            out, _ = poller.communicate()
    health = [tuple(json.loads(line)) for line in out.splitlines() if line.strip()]
    return list(outcomes), health, answered_at  # type: ignore[return-value]


# -- drivers -----------------------------------------------------------------------------------


def test_a_runs_driver_exits_within_seconds_of_its_end(service: Service):
    with client(service, "bare") as api:
        doc = suite_document(service.work, "driver-exit", samples=6, targets=1)
        assert api.post("/v1/suites", json={"suite": doc}).status_code in (200, 201)
        run_id = api.post("/v1/runs", json={"suite": "driver-exit"}).json()["run_id"]
        final = wait_for_end(api, run_id)
        assert final["status"] == "finished", final
        ended = time.monotonic()
        wait_driver_gone(run_id, timeout_s=10)
        assert time.monotonic() - ended < 10
        again = api.get(f"/v1/runs/{run_id}").json()  # the store still answers for it
        assert again["status"] == "finished" and again["live"] is False
