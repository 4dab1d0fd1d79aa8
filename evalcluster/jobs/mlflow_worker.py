"""MLflow logging in a process of its own, beside the driver of an embedded run.

Importing MLflow and opening its store take about 2 s of CPU, and finishing a run (child runs,
metrics, up to 1,000 sample traces) 1.5-2 s more: as long as the requests of a typical suite.
In the driver they held up the first request and the result. Here they run in a child process
(`python -m evalcluster.jobs.mlflow_worker`) that the driver starts (with the run, or after its
requests on the command line): it imports MLflow and opens the parent run, and logs the
outcome when the driver hands it over. The driver's side is `MlflowWorker`; the two speak in
pickles over the child's stdin and stdout (one trusted process talking to the child it
started).

The worker records what it did at ``runs/run_id=<id>/_mlflow.json`` (`read_mlflow_status`):
``running`` with the parent's MLflow id once it exists, then ``logged``, ``failed`` (with the
error) or ``killed``. A driver that dies (SIGKILL) closes the pipe: the worker closes the
parent run as KILLED, as the next resume would. A command-line run does not wait for the
worker, and starts it only once the requests are done (`jobs/driver.py`): MLflow's import is
about 2 s of CPU, and at zero latency the requests are CPU-bound too. Until then the manifest
says ``mlflow_logging: after_requests`` and no MLflow run exists (a run killed then has none;
its resume logs the whole run); then ``detached``, and the worker finishes alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import Any, BinaryIO

STATUS_FILE = "_mlflow.json"
WORKER_MODULE = "evalcluster.jobs.mlflow_worker"


def mlflow_status_key(run_id: str) -> str:
    return f"runs/run_id={run_id}/{STATUS_FILE}"


def read_mlflow_status(store: Any, run_id: str) -> dict[str, Any] | None:
    """What the run's MLflow worker last recorded, or None if it has recorded nothing."""
    key = mlflow_status_key(run_id)
    if not store.exists(key):
        return None
    return json.loads(store.get(key))


def _write_status(store: Any, run_id: str, **fields: Any) -> None:
    record = {"pid": os.getpid(), "at": datetime.now(UTC).isoformat(), **fields}
    store.put(mlflow_status_key(run_id), json.dumps(record, indent=2).encode())


class MlflowWorker:
    """The driver's side: starts the worker process, hands it the run's start and finish,
    and reads its answers in a thread (the driver never blocks on MLflow unless it `wait`s)."""

    def __init__(self, tracking_uri: str, store_uri: str, endpoint_url: str | None, run_id: str):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # its own session: a Ctrl-C meant for the run, or the run's process group being
            # killed, leaves it to close the MLflow run as it should
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._send({"store_uri": store_uri, "endpoint_url": endpoint_url, "run_id": run_id})
        self.started: dict[str, Any] | None = None  # {"parent", "resumed_from"} or {"error"}
        self.finished: dict[str, Any] | None = None  # {} or {"error"}
        self._replies = threading.Thread(target=self._read, name="evalcluster-mlflow", daemon=True)
        self._replies.start()
        self._finish_sent = False

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; its absence shows as an error in `wait`

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for slot in ("started", "finished"):
            try:
                reply = pickle.load(self.proc.stdout)
            except Exception:  # noqa: BLE001 - EOF or a dead worker
                reply = {"error": "the MLflow worker process ended without an answer"}
            setattr(self, slot, reply)
            if "error" in reply:
                if self.started is None:
                    self.started = reply
                self.finished = self.finished or reply
                return

    def start(self, **run: Any) -> None:
        """Open the parent run: `run` is `MlflowTracker.start_evaluation`'s arguments, with
        `earlier` (MLflow ids of the evaluation's earlier parent runs) for `resumed_from`."""
        self._send({"op": "start", **run})

    def finish(self, **outcome: Any) -> None:
        """Log the outcome (status, summary, suite, traced samples); the worker exits after."""
        self._finish_sent = True
        self._send({"op": "finish", **outcome})
        self.close_input()

    def close_input(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()

    def wait(self, timeout: float | None = None) -> str | None:
        """Wait for the worker to end; the error it reported, if any."""
        self._replies.join(timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        reply = self.finished or self.started or {}
        if self.finished is None and "error" not in reply:
            return "the MLflow worker did not finish"
        return reply.get("error")


# --- the worker process -----------------------------------------------------------------------
def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    from evalcluster.store.fs import open_store

    driver = os.getppid()
    setup = pickle.load(inp)
    run_id = setup["run_id"]
    store = open_store(setup["store_uri"], endpoint_url=setup["endpoint_url"])

    def reply(message: dict[str, Any]) -> None:
        try:
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except OSError:
            pass  # a driver that did not wait for us has exited: nobody reads the answer

    try:
        start = pickle.load(inp)
    except EOFError:
        return  # the driver ended before the run started
    try:
        from evalcluster.tracking import MlflowTracker

        tracker = MlflowTracker(start["tracking_uri"])
        earlier = set(start.pop("earlier", []))
        previous = read_mlflow_status(store, run_id) or {}
        if previous.get("mlflow_run_id"):
            earlier.add(previous["mlflow_run_id"])
        for mlflow_id in sorted(set(tracker.find_running(run_id)) | earlier):
            tracker.mark_killed(mlflow_id)
        finish = None
        if os.getppid() != driver:
            # The driver ended while MLflow was being imported. If it finished the run, its
            # outcome is waiting in the pipe; if it was killed, the pipe is empty: no parent
            # run then (a run killed before its MLflow run existed leaves none), and nothing
            # that could race with the worker of a resumed run.
            try:
                finish = pickle.load(inp)
            except EOFError:
                return
        parent = tracker.start_evaluation(
            suite=start["suite"],
            suite_version=start["suite_version"],
            run_id=run_id,
            results_uri=start["results_uri"],
            suite_file_text=start["suite_file_text"],
            seed=start["seed"],
            sample_count=start["sample_count"],
            resumed_from=sorted(earlier) or None,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the driver and in the status file
        error = f"MLflow logging failed: {exc}"
        with contextlib.suppress(Exception):
            _write_status(store, run_id, status="failed", error=error)
        reply({"error": error})
        return
    _write_status(store, run_id, status="running", mlflow_run_id=parent)
    reply({"parent": parent, "resumed_from": sorted(earlier)})

    try:
        finish = finish or pickle.load(inp)
    except EOFError:  # the driver died without a word: the run was killed
        with contextlib.suppress(Exception):
            tracker.mark_killed(parent)
            # unless a resumed run's worker has written the status since
            if (read_mlflow_status(store, run_id) or {}).get("mlflow_run_id") == parent:
                _write_status(store, run_id, status="killed", mlflow_run_id=parent)
        return
    try:
        from evalcluster.jobs.driver import _traced_samples
        from evalcluster.jobs.summary import target_results

        limit = finish["max_traced_samples"]
        targets = finish["targets"]
        tracker.finish_evaluation(
            parent,
            status=finish["status"],
            summary=finish["summary"],
            targets=target_results(finish["suite"], finish["summary"]),
            samples=_traced_samples(store, run_id, targets, limit),
            max_traced_samples=limit // max(1, len(targets)),
        )
    except Exception as exc:  # noqa: BLE001 - reported to the driver and in the status file
        error = f"MLflow logging failed: {exc}"
        with contextlib.suppress(Exception):
            _write_status(store, run_id, status="failed", mlflow_run_id=parent, error=error)
        reply({"error": error})
        return
    _write_status(store, run_id, status="logged", mlflow_run_id=parent)
    reply({})


def main() -> None:
    # Off the critical path by design: the run (and a simulator beside it) go first. SCHED_IDLE
    # (Linux) takes only CPU nobody else wants; elsewhere a lower priority.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(10)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the replies
    _serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
