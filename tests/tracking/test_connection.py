"""Opening a tracking store: fast, clear `TrackingError`s and no leaked credentials."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tracking_support import free_port

from evalcluster.errors import TrackingError
from evalcluster.tracking import MlflowTracker
from evalcluster.tracking.connection import ENV_DEFAULTS, apply_env_defaults, redact_uri


class _HealthyButBroken(BaseHTTPRequestHandler):
    """Answers /health like MLflow and 500 to every API call."""

    calls = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/health":
            self._reply(200, b"OK")
        else:
            type(self).calls += 1
            self._reply(500, b'{"error_code": "INTERNAL_ERROR", "message": "db is down"}')

    do_POST = do_GET  # noqa: N815

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthyButBroken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_socket() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_redact_uri_hides_passwords_and_token_query_values():
    assert (
        redact_uri("https://bob:hunter2@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    )
    assert redact_uri("https://h/p?access_token=abc&x=1") == "https://h/p?access_token=***&x=1"
    assert redact_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_env_defaults_bound_http_retries_but_user_settings_win(monkeypatch):
    for name in ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    apply_env_defaults()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_refused_connection_raises_tracking_error_at_once():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TrackingError, match="unreachable"):
        MlflowTracker(f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 3


def test_server_that_never_answers_raises_tracking_error_within_seconds(silent_socket: int):
    started = time.monotonic()
    with pytest.raises(TrackingError, match="unreachable"):
        MlflowTracker(f"http://127.0.0.1:{silent_socket}")
    assert time.monotonic() - started < 6


def test_server_errors_raise_tracking_error_after_bounded_retries_without_credentials(
    broken_server: int, monkeypatch
):
    for name in ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    _HealthyButBroken.calls = 0
    started = time.monotonic()
    with pytest.raises(TrackingError) as caught:
        MlflowTracker(f"http://alice:s3cretpw@127.0.0.1:{broken_server}")
    elapsed = time.monotonic() - started
    assert elapsed < 10
    message = str(caught.value)
    assert "MLflow logging failed" in message
    assert "s3cretpw" not in message
    assert "***@127.0.0.1" in message
    assert _HealthyButBroken.calls == 3  # the first try and 2 retries


def test_unusable_sqlite_location_raises_tracking_error(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(TrackingError, match="MLflow logging failed"):
        MlflowTracker(f"sqlite:///{tmp_path}/file/mlflow.db")


def test_empty_tracking_uri_raises_tracking_error():
    with pytest.raises(TrackingError, match="empty"):
        MlflowTracker("")


def test_repr_names_the_store(tmp_path: Path):
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    assert repr(tracker) == f"MlflowTracker('sqlite:///{tmp_path}/mlflow.db')"
