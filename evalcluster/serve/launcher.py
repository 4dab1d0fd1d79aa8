"""Runs started over HTTP: one detached Ray actor per run drives it, apart from the service.

Why an actor (``driver:<run_id>``, namespace ``evalcluster``, ``num_cpus=0``, detached) and not
Ray job submission: a job needs the dashboard's job agent (embedded clusters often run without
one), starts a fresh Python process per run (seconds of imports) and packages a working dir,
while an actor starts in a pooled worker in well under a second and works on any cluster Serve
runs on. Being detached, it belongs to no replica: a Serve replica that restarts or scales down
mid-run leaves its runs going. The actor runs `run_suite` in a thread, so its methods (state,
cancel) keep answering while the run goes on; once the run ends it stays `linger_s` seconds so
a failure that happened before the run wrote its manifest can still be reported, then exits.

If the node holding a driver dies the run stops where its manifest says and the service shows it
``interrupted``; ``POST /v1/runs/{id}/resume`` (or `evalcluster run --run-id <id>`) resumes it
(committed shards are kept).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Literal

import ray

from evalcluster.actors.run import RunSnapshot, get_live_run
from evalcluster.cluster import NAMESPACE
from evalcluster.errors import NotFoundError
from evalcluster.jobs.options import RunOptions
from evalcluster.runstate import RunState
from evalcluster.store.fs import Store, open_store
from evalcluster.store.layout import run_prefix
from evalcluster.suite.loader import LoadedSuite

log = logging.getLogger("evalcluster.serve")

DRIVER_PREFIX = "driver:"
CANCEL_FORWARD_POLL_S = 0.2


def driver_name(run_id: str) -> str:
    """The named actor that drives `run_id`."""
    return f"{DRIVER_PREFIX}{run_id}"


DriverPhase = Literal["starting", "running", "ended"]


@dataclass(frozen=True)
class DriverState:
    """What a run's driver actor knows (`RunDriver.state`), read by `serve/runstatus.py`."""

    run_id: str
    phase: DriverPhase
    status: str  # a RunState value
    message: str | None
    snapshot: RunSnapshot | None  # the last progress the run reported
    started_at: float
    ended_at: float | None
    cancel_requested: bool


@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=8)
class RunDriver:
    """Drives one run in a thread; reports its phase, last progress snapshot and outcome."""

    def __init__(self, run_id: str, linger_s: float):
        self.run_id = run_id
        self.linger_s = linger_s
        self.phase: DriverPhase = "starting"  # starting -> running -> ended
        self.status: str = RunState.PENDING
        self.message: str | None = None
        self.snapshot: RunSnapshot | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.cancel_requested = False
        self._thread: threading.Thread | None = None
        self._forwarder: threading.Thread | None = None

    def start(self, suite: LoadedSuite, options: RunOptions) -> bool:
        """Start the run in a thread; False if it was started already."""
        if self._thread is not None:
            return False
        self._thread = threading.Thread(
            target=self._run, args=(suite, options), name=f"run-{self.run_id}", daemon=True
        )
        self._thread.start()
        return True

    def state(self) -> DriverState:
        """Phase, status, message and the last progress snapshot seen."""
        return DriverState(
            run_id=self.run_id,
            phase=self.phase,
            status=self.status,
            message=self.message,
            snapshot=self.snapshot,
            started_at=self.started_at,
            ended_at=self.ended_at,
            cancel_requested=self.cancel_requested,
        )

    def cancel(self) -> bool:
        """Ask the run to stop; forwarded to the live run as soon as it is open."""
        if self.phase == "ended":
            return False
        self.cancel_requested = True
        if self._forwarder is None:
            self._forwarder = threading.Thread(target=self._forward_cancel, daemon=True)
            self._forwarder.start()
        return True

    # -- in the driver's threads -----------------------------------------------------------

    def _run(self, suite: LoadedSuite, options: RunOptions) -> None:
        from evalcluster.jobs.driver import run_suite

        self.phase = "running"
        try:
            result = run_suite(suite, options, on_progress=self._on_progress)
            self.status, self.message = result.status, result.message
        except BaseException as exc:  # noqa: BLE001 - reported through state(), never lost
            self.status, self.message = RunState.FAILED, f"{type(exc).__name__}: {exc}"
            log.error("run %s failed:\n%s", self.run_id, traceback.format_exc())
        finally:
            self.ended_at = time.time()
            self._write_outcome(options)
            self.phase = "ended"
            timer = threading.Timer(self.linger_s, self._exit)
            timer.daemon = True
            timer.start()

    def _write_outcome(self, options: RunOptions) -> None:
        outcome = {"status": str(self.status), "message": self.message, "ended_at": self.ended_at}
        try:
            store = open_store(options.store, endpoint_url=options.endpoint_url)
            store.put(outcome_key(self.run_id), json.dumps(outcome).encode())
        except Exception:  # noqa: BLE001 - the store is down: state() still tells, while alive
            log.exception("outcome of run %s not written", self.run_id)

    def _on_progress(self, snapshot: RunSnapshot) -> None:
        self.snapshot = snapshot
        self.status = snapshot.status

    def _forward_cancel(self) -> None:
        while self.phase != "ended":
            live = get_live_run(self.run_id)
            if live is not None:
                try:
                    ray.get(live.cancel(), timeout=10)
                    return
                except Exception:  # noqa: BLE001 - the run may have ended meanwhile
                    pass
            time.sleep(CANCEL_FORWARD_POLL_S)

    def _exit(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


def outcome_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}_outcome.json"


@dataclass(frozen=True)
class DriverOutcome:
    """What a driver left in ``_outcome.json`` when its run ended."""

    status: str  # a RunState value, as the driver last knew it
    message: str | None = None
    ended_at: float | None = None


def read_outcome(store: Store, run_id: str) -> DriverOutcome | None:
    """What the driver of `run_id` wrote when its run ended; None if nothing (or unreadable)."""
    try:
        data = json.loads(store.get(outcome_key(run_id)))
    except (NotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        return None
    message, ended_at = data.get("message"), data.get("ended_at")
    return DriverOutcome(
        data["status"],
        message if isinstance(message, str) else None,
        float(ended_at) if isinstance(ended_at, int | float) else None,
    )


def launch_run(run_id: str, suite: LoadedSuite, options: RunOptions, linger_s: float) -> None:
    """Create the detached driver of `run_id` and start the run (blocking; call in a thread)."""
    actor = RunDriver.options(
        name=driver_name(run_id), namespace=NAMESPACE, lifetime="detached"
    ).remote(run_id, linger_s)
    ray.get(actor.start.remote(suite, options), timeout=120)


def get_driver(run_id: str) -> Any | None:
    """The driver actor of `run_id`, or None (blocking; call in a thread)."""
    try:
        return ray.get_actor(driver_name(run_id), namespace=NAMESPACE)
    except ValueError:
        return None


def driver_run_ids() -> list[str]:
    """Run ids of every driver actor alive in the cluster (blocking; call in a thread)."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        n["name"][len(DRIVER_PREFIX) :]
        for n in names
        if n.get("namespace") == NAMESPACE and n["name"].startswith(DRIVER_PREFIX)
    )
