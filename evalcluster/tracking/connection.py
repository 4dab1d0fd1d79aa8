"""Opening an MLflow tracking store so that an unusable one fails fast, as `TrackingError`.

MLflow's HTTP client retries a failed request 7 times with a backoff factor of 2 and a
120-second timeout by default (``mlflow.environment_variables``), which turns an unreachable
server into minutes of waiting. The evaluation has already written its results to the lake when
it logs to MLflow, so a quick, clear failure is worth more than persistence here. Unless the
user has set them, `connect` therefore sets these process-wide MLflow variables:

- ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2``: retries of a failed request (urllib3 ``Retry``);
- ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1``: backoff before the retries, 1 s then 2 s;
- ``MLFLOW_HTTP_REQUEST_TIMEOUT=20``: seconds to wait for one response;
- ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true``: no "View run at" lines on stdout, where
  the command line draws its progress bar;

and, for ``http(s)://`` URIs, probes ``/health`` with a 3-second timeout before anything else.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from mlflow import MlflowClient

from evalcluster.errors import TrackingError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""Where runs are logged when no tracking URI is given: ``mlflow.db`` in the working folder."""

ENV_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
"""MLflow settings applied with `os.environ.setdefault` (values the user set win)."""

HEALTH_PROBE_TIMEOUT_S = 3.0

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]+@")
_SECRET_QUERY = re.compile(r"(?i)((?:token|key|secret|password|signature)[^=&]*=)[^&]*")


def redact_uri(uri: str) -> str:
    """`uri` without a password or token, fit for messages and logs."""
    head, sep, query = uri.partition("?")
    head = _USERINFO.sub(r"\1***@", head)
    return head + sep + _SECRET_QUERY.sub(r"\1***", query)


@contextlib.contextmanager
def mlflow_errors(action: str, tracking_uri: str) -> Iterator[None]:
    """Turn any exception raised inside into `TrackingError` naming `action` and the store.

    The original exception is chained for debugging; its text is kept in the message only after
    the URI's credentials (if any) were taken out of it.
    """
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        safe_uri = redact_uri(tracking_uri)
        detail = str(exc).replace(tracking_uri, safe_uri)
        detail = detail if len(detail) <= 500 else detail[:500] + "..."
        raise TrackingError(
            f"MLflow logging failed ({action}) at {safe_uri}: {type(exc).__name__}: {detail}"
        ) from exc


def apply_env_defaults() -> None:
    """Bound MLflow's HTTP retries and timeouts, and mute its URL printing, unless set."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def probe_http(tracking_uri: str, timeout_s: float = HEALTH_PROBE_TIMEOUT_S) -> None:
    """Raise `TrackingError` unless an MLflow server answers at `tracking_uri` within `timeout_s`.

    Any HTTP answer counts as reachable: a server behind a proxy may answer ``/health`` with 401
    or 404, and the real calls will report those precisely.
    """
    url = tracking_uri.rstrip("/") + "/health"
    try:
        httpx.get(url, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise TrackingError(
            f"MLflow tracking server unreachable at {redact_uri(tracking_uri)}: "
            f"{type(exc).__name__}"
        ) from exc


def connect(tracking_uri: str) -> MlflowClient:
    """An `MlflowClient` bound to `tracking_uri`, checked to be usable.

    HTTP servers are probed first, then one experiment search proves the store works. Raises
    `TrackingError` when the store cannot be used.
    """
    if not tracking_uri:
        raise TrackingError("MLflow tracking URI is empty")
    apply_env_defaults()
    scheme = urlsplit(tracking_uri).scheme.lower()
    if scheme in ("http", "https"):
        probe_http(tracking_uri)
    with mlflow_errors("opening the tracking store", tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri)
        # One cheap read opens (and migrates) a SQL store, or checks a server's auth.
        client.search_experiments(max_results=1)
    return client
