"""The OpenAPI document the live service serves describes the error bodies it really answers."""

from __future__ import annotations

import json

REF = "#/components/schemas/"


def test_no_fastapi_validation_error_schema_is_left(service):
    with service.client(key=None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    text = json.dumps(spec)
    assert "HTTPValidationError" not in text and f'{REF}ValidationError"' not in text
    body = schemas["ValidationErrorBody"]
    assert {"error", "detail", "field", "problems"} <= set(body["properties"])
    assert body["properties"]["problems"]["items"] == {"$ref": f"{REF}Problem"}


def test_every_4xx_answer_references_the_error_shape(service):
    with service.client(key=None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
    seen_422 = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if not code.startswith("4"):
                    continue
                ref = response["content"]["application/json"]["schema"]["$ref"]
                expected = "ValidationErrorBody" if code == "422" else "ErrorBody"
                assert ref == REF + expected, (method, path, code)
                seen_422 += code == "422"
    assert seen_422 >= 10  # every route with a parameter or a body documents its 422


def test_a_real_422_matches_the_documented_body(api):
    response = api.get("/v1/runs", params={"limit": 0})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "detail", "field", "problems"}
    assert body["error"] == "invalid_request"
    assert body["field"] == body["problems"][0]["field"] and "limit" in body["field"]
