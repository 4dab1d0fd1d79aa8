"""`evalcluster serve`: start or join Ray, deploy the service, block until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger("evalcluster.serve")

APP_NAME = "evalcluster"
ALLOW_NO_AUTH_ENV = "EVALCLUSTER_ALLOW_NO_AUTH"


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    store: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    api_keys_file: str | None = None,
    config: str | None = None,
    *,
    allow_no_auth: bool | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve the HTTP API on `host`:`port` until SIGINT/SIGTERM (or `stop` is set); exit code.

    Without `address` Ray starts embedded in this process and ends with it (runs still going
    stop too, and can be resumed by run id); with one, the service joins that cluster and on
    exit removes only its own application. `config` names the service configuration file
    (tenants, provider registry, dataset roots); `store`, `tracking_uri` and `api_keys_file`
    override its values. Keys: the config's tenants, ``$EVALCLUSTER_API_KEYS`` and/or
    `api_keys_file`; with none, it refuses to start (SpecError) unless `allow_no_auth`
    (default: ``$EVALCLUSTER_ALLOW_NO_AUTH``) is true.
    """
    import ray
    from ray import serve

    from evalcluster.cluster import NAMESPACE
    from evalcluster.serve.app import build_app

    if allow_no_auth is None:
        allow_no_auth = os.environ.get(ALLOW_NO_AUTH_ENV, "").lower() in ("1", "true", "yes")
    # Built first: a bad argument or missing keys fail before Ray spends seconds starting.
    args: dict[str, object] = {
        "config": config,
        "store_uri": store,
        "tracking_uri": tracking_uri,
        "api_keys_file": api_keys_file,
    }
    if allow_no_auth:
        args["allow_no_auth"] = True
    application = build_app({k: v for k, v in args.items() if v is not None})
    if allow_no_auth:
        log.warning("authentication is OFF: anyone who can reach %s:%s can use the API", host, port)
    stop = stop or threading.Event()
    embedded = not ray.is_initialized() and not address
    if not ray.is_initialized():
        if address:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        else:
            # "local": always a new cluster, never one found on this machine by ray.init().
            ray.init(
                address="local", namespace=NAMESPACE, include_dashboard=False, log_to_driver=False
            )
    try:
        with _stop_on_signals(stop):
            serve.start(http_options={"host": host, "port": port})
            serve.run(application, name=APP_NAME, route_prefix="/")
            print(f"evalcluster: serving on http://{host}:{port} (API docs at /docs)", flush=True)
            stop.wait()
        print("evalcluster: shutting down", flush=True)
    finally:
        with contextlib.suppress(Exception):
            if embedded:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
        if embedded:
            ray.shutdown()
    return 0


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
