"""The OpenAPI document tells the error shape the service really answers.

FastAPI documents every route's 422 with its own ``HTTPValidationError`` body, but
`evalcluster.serve.errors` answers validation errors as ``{error, detail, field, problems}``
and every other error as ``{error, detail, field}`` (`ErrorBody`). `install_openapi` makes the
app's document say so: each 422 references ``ValidationErrorBody``, each other 4xx
``ErrorBody``, and FastAPI's ``HTTPValidationError``/``ValidationError`` schemas are dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from evalcluster.serve.schemas import ErrorBody

REF = "#/components/schemas/{model}"
FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


class Problem(BaseModel):
    """One thing wrong with a request."""

    field: str | None = Field(None, description="Dotted path of the offending value, if any.")
    message: str = Field(description="What is wrong with it.")
    type: str = Field(description="A stable kind of problem: missing, string_too_long, ...")


class ValidationErrorBody(ErrorBody):
    """A request that does not validate (422): the first problem, and every problem."""

    problems: list[Problem] = Field(default_factory=list, description="Every problem found.")


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` by one that documents the service's error bodies."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = with_error_bodies(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_error_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every 4xx answer's body in the service's error shape (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, Problem, ValidationErrorBody):
        found = model.model_json_schema(ref_template=REF)
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for name in FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if str(code).startswith("4"):
                    _error_content(
                        response, "ValidationErrorBody" if code == "422" else "ErrorBody"
                    )
    return document


def _error_content(response: dict[str, Any], model: str) -> None:
    response.setdefault("description", "Error")
    response["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model)}}}
