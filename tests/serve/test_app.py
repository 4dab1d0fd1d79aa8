"""The deployed app as a whole: open routes, auth on every /v1 route, body limits, and a
property-based fuzz of the OpenAPI document that must never get a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from .conftest import suite_yaml

PROTECTED = [
    ("GET", "/v1/suites"),
    ("POST", "/v1/suites"),
    ("GET", "/v1/suites/x"),
    ("DELETE", "/v1/suites/x"),
    ("GET", "/v1/runs"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs/r-1"),
    ("GET", "/v1/runs/r-1/results"),
    ("POST", "/v1/runs/r-1/cancel"),
    ("GET", "/v1/providers"),
]


def test_healthz_docs_and_openapi_need_no_key(service):
    with service.client(key=None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/docs").status_code == 200
        spec = anonymous.get("/openapi.json").json()
    assert "/v1/runs/{run_id}/results" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_v1_route_is_401_without_a_key(service, method, path):
    with service.client(key=None) as anonymous:
        response = anonymous.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_v1_route_is_403_with_a_wrong_key(service, method, path):
    with service.client(key="not-" + service.key) as stranger:
        response = stranger.request(method, path, json={})
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "invalid API key", "field": None}
    assert service.key not in response.text


def test_other_schemes_and_empty_bearer_are_401(service):
    with service.client(key=None) as anonymous:
        for header in (f"Basic {service.key}", "Bearer", "Bearer x"[:6], service.key):
            response = anonymous.get("/v1/suites", headers={"Authorization": header})
            assert response.status_code == 401, header


def test_every_configured_key_is_accepted(service):
    for key in (service.key, service.other_key):
        with service.client(key=key) as client:
            assert client.get("/v1/suites").status_code == 200


def test_a_body_over_the_limit_by_content_length_is_413(service, api):
    big = "x" * (service.max_body_bytes + 1)
    response = api.post("/v1/suites", json={"yaml": big})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_streamed_body_over_the_limit_is_413(service, api):
    chunk = b"x" * 8192

    def chunks():  # a generator body goes out chunked, with no Content-Length
        for _ in range(service.max_body_bytes // len(chunk) + 2):
            yield chunk

    response = api.post(
        "/v1/suites", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_a_body_under_the_limit_is_read(service, api):
    text = suite_yaml(service.work, "padded") + "#" + "p" * (service.max_body_bytes // 2) + "\n"
    assert api.post("/v1/suites", json={"yaml": text}).status_code in (200, 201)


def test_malformed_bodies_are_4xx_in_the_error_shape(api):
    response = api.post(
        "/v1/suites", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    invalid_utf8 = api.post(
        "/v1/runs", content=b'{"suite": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    )
    assert invalid_utf8.status_code == 400
    assert invalid_utf8.json()["error"] == "bad_request"


def test_providers_lists_live_provider_actors(api):
    body = api.get("/v1/providers")
    assert body.status_code == 200
    assert isinstance(body.json()["providers"], list)


def local_openapi() -> dict:
    """The OpenAPI document the deployed app serves, built here so tests can be collected
    before the service runs (schemathesis' lazy fixture loader does not work on pytest 9)."""
    from evalcluster.serve.app import create_app
    from evalcluster.serve.settings import settings_from_args

    return create_app(settings_from_args({"allow_no_auth": True})).openapi()


schema = schemathesis.openapi.from_dict(local_openapi())


def test_the_fuzzed_document_is_the_one_the_service_serves(service, api):
    assert api.get("/openapi.json").json() == local_openapi()


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_openapi_document_finds_no_server_error(case, service):
    case.call_and_validate(
        base_url=service.url,
        checks=[not_a_server_error],
        headers={"Authorization": f"Bearer {service.key}"},
        timeout=30,
    )
