"""How failures become HTTP answers: one JSON shape, a status per error class, never a 500.

Every error answer is ``{"error": "<code>", "detail": "<message>", "field": "<path>"|null}``.
Client mistakes are 4xx naming the problem; a store or cluster that cannot answer right now is
503 with ``Retry-After``. Anything unexpected is logged with its traceback and also answered
503: the client cannot fix it, and retrying later is the only useful advice.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from evalcluster.errors import NotFoundError, SpecError, StoreError
from evalcluster.store.suites import VersionConflictError
from evalcluster.suite.loader import field_path

log = logging.getLogger("evalcluster.serve")

RETRY_AFTER_S = 5
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer decided by a route: status, code, message and optional field path."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.field = field
        self.headers = headers


def error_body(code: str, detail: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": code, "detail": detail, "field": field}


def error_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the service's shape."""
    body = error_body(code or _CODES.get(status, "error"), detail, field)
    return JSONResponse(body, status_code=status, headers=headers)


def unavailable(detail: str) -> JSONResponse:
    """503 with a Retry-After: the store or the cluster cannot answer now."""
    return error_response(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


def install_error_handlers(app: FastAPI) -> None:
    """Map the package's errors, FastAPI's validation errors and Ray's failures to answers."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(VersionConflictError, _conflict)
    app.add_exception_handler(StoreError, _store_error)
    try:
        from ray.exceptions import RayError
    except ImportError:  # pragma: no cover - ray is a dependency
        return
    app.add_exception_handler(RayError, _ray_error)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.detail, code=exc.code, field=exc.field, headers=exc.headers
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        # Only location, message and type: echoing `input` could repeat a secret or bytes that
        # are not UTF-8 (which JSON cannot carry).
        problems.append(
            {
                "field": field_path(tuple(error.get("loc", ()))) or None,
                "message": str(error.get("msg", "invalid value")),
                "type": str(error.get("type", "value_error")),
            }
        )
    first = problems[0] if problems else {"field": None, "message": "invalid request"}
    detail = first["message"]
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    body = error_body("invalid_request", detail, first["field"])
    body["problems"] = problems
    return JSONResponse(body, status_code=422)


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    return error_response(422, exc.one_line(), code="invalid_suite", field=exc.field)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc))


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("store error on %s %s: %s", request.method, request.url.path, exc)
    return unavailable(f"the results store cannot answer: {exc}")


async def _ray_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("ray error on %s %s: %s", request.method, request.url.path, exc)
    return unavailable(f"the cluster cannot answer: {type(exc).__name__}")
