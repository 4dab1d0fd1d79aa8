"""The HTTP service: a FastAPI app behind a Ray Serve deployment.

Deploy with ``evalcluster serve``, or ``serve run evalcluster.serve.app:build_app
config=serve.yaml``, or a Serve config file whose application has ``import_path:
evalcluster.serve.app:build_app`` and as ``args`` the keys of the service configuration
(`evalcluster.serve.config.ServiceConfig`: ``config``, ``tenants``, ``providers_file``,
``datasets``, ``client_providers``, ``store_uri``, ``tracking_uri``, ...).

Sizing: ``max_ongoing_requests=1024`` per replica because a request here is almost all waiting
(actor calls, store reads in threads) and every WebSocket event stream holds its slot for the
whole run it follows. Event streams are capped far below that (``max_websockets``, 256 by
default, and each tenant's quota), so open streams can never take every slot and ``/healthz``
and the API keep answering. Beyond the slots ``max_queued_requests=2048`` wait in Serve's
queue, and past that Serve answers 503 with ``Retry-After: 1`` instead of letting latency grow
without bound. The queue is that deep because Ray Serve turns a WebSocket handshake it drops
from a full queue into a 500, not a 503: a burst of 1,000 dashboards connecting at once must
queue, and then meet the WebSocket caps' clean 429.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.config import BackpressureConfig

from evalcluster.serve.context import ServiceContext
from evalcluster.serve.errors import install_error_handlers
from evalcluster.serve.middleware import BodySizeLimit, ErrorGuard
from evalcluster.serve.openapi import install_openapi
from evalcluster.serve.routes_audit import router as audit_router
from evalcluster.serve.routes_datasets import UPLOAD_PATH
from evalcluster.serve.routes_datasets import router as datasets_router
from evalcluster.serve.routes_events import router as events_router
from evalcluster.serve.routes_gateway import install_gateway
from evalcluster.serve.routes_plan import router as plan_router
from evalcluster.serve.routes_providers import router as providers_router
from evalcluster.serve.routes_runs import router as runs_router
from evalcluster.serve.routes_suites import router as suites_router
from evalcluster.serve.routes_ui import page_router as ui_page_router
from evalcluster.serve.routes_ui import router as ui_router
from evalcluster.serve.schemas import Health
from evalcluster.serve.settings import ServeSettings, settings_from_args

MAX_ONGOING_REQUESTS = 1024
MAX_QUEUED_REQUESTS = 2048
BACKPRESSURE_RETRY_AFTER_S = 1.0
DESCRIPTION = """\
Create versioned evaluation suites, start runs on the cluster, follow them live and page
through their results. Every `/v1` route needs `Authorization: Bearer <key>`; the WebSocket
`/v1/runs/{run_id}/events` also takes `?token=<key>`. Errors are
`{"error": code, "detail": message, "field": path}`.
"""


def create_app(settings: ServeSettings) -> FastAPI:
    """The FastAPI app, usable with or without Serve."""
    app = FastAPI(title="evalcluster", version="1", description=DESCRIPTION)
    app.state.context = ServiceContext(settings)
    install_error_handlers(app)
    install_openapi(app)
    # Added last is outermost: the size limit sees the raw request before anything else.
    app.add_middleware(ErrorGuard)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        limits={f"POST {UPLOAD_PATH}": settings.max_upload_bytes},
    )

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness; no auth")
    async def healthz() -> Health:
        return Health()

    routers = (suites_router, datasets_router, runs_router, events_router, providers_router)
    for router in (*routers, plan_router, audit_router, ui_router, ui_page_router):
        app.include_router(router)
    install_gateway(app)
    return app


@serve.deployment(
    name="EvalclusterAPI",
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    max_queued_requests=MAX_QUEUED_REQUESTS,
    backpressure_config=BackpressureConfig(
        status_code=503, retry_after_s=BACKPRESSURE_RETRY_AFTER_S
    ),
    # Replicas mostly wait on actors and the store; a whole core each would idle.
    ray_actor_options={"num_cpus": 0.25},
)
@serve.ingress()
class EvalService:
    """The Serve deployment; each replica builds its own app from the settings."""

    def __init__(self, settings: ServeSettings):
        self._settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._settings)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder (``import_path: evalcluster.serve.app:build_app``).

    Raises SpecError naming the argument at fault, or when no API key is configured and
    ``allow_no_auth`` is not true.
    """
    return EvalService.bind(settings_from_args(args))
