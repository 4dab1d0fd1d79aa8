"""The evaluation driver: plans shards, runs them on Ray, records them, summarizes, logs.

Shards run as Ray tasks, not Ray Data: a shard is the unit of commit and of resume, so it needs
a stable identity (target, index) that survives retries and restarts, which tasks give directly;
Ray Data's blocks are re-cut freely by its executor. The driver streams the dataset and keeps a
bounded number of shards in flight, so its memory does not grow with the suite.

Order of truth: a shard's Parquet file is committed first (atomically, create-if-absent), then
recorded in the manifest. A driver that dies between the two loses nothing: the resumed run finds
the file and does not evaluate the shard again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evalcluster.actors.run import BatchProgress, ProgressDelta, RunSnapshot
from evalcluster.cluster import NAMESPACE
from evalcluster.errors import EvalclusterError, SpecError, TrackingError
from evalcluster.jobs.executors import Executor, RayExecutor, choose_executor
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.samples import count_samples, iter_sample_batches
from evalcluster.jobs.sequential_compare import SequentialComparison, start_comparison
from evalcluster.jobs.shard import ShardContext, ShardOutcome, batching_providers
from evalcluster.jobs.simulators import started_simulators
from evalcluster.jobs.summary import build_summary, target_results
from evalcluster.lazy_ray import ray  # imported only by a run on Ray
from evalcluster.runstate import RunState
from evalcluster.store.fs import Store, open_store
from evalcluster.store.lake import iter_result_batches, shard_key
from evalcluster.store.manifest import (
    RunManifest,
    ShardRecord,
    read_manifest,
    write_manifest,
    write_summary,
)
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.targets import select_targets

log = logging.getLogger(__name__)

MANIFEST_FLUSH_S = 2.0
CANCEL_CHECK_S = 0.5
FINAL_PROGRESS_WAIT_S = 2.0  # how long the last frame waits for shards' last reports to land
WORKING_DIR_WAIT_S = 10.0  # how long Ray may take to unpack a job's working_dir again
# One CPU per shard task. Shards mostly wait on provider actors, but each keeps a whole shard
# of requests in flight (enough for a provider's default concurrency on its own), and every
# extra shard process costs a worker start and its imports: on two cores, 1.0 instead of 0.5
# gave 20% more samples/s for 26% less CPU (benchmarks/README.md, "Limits").
SHARD_CPUS = 1.0
# A run stopped by its budget is resumable, like a cancelled one: MLflow calls both KILLED.
MLFLOW_STATUS = {
    RunState.FINISHED: "FINISHED",
    RunState.KILLED: "KILLED",
    RunState.BUDGET_EXHAUSTED: "KILLED",
}
PROGRESS_INTERVAL_S = 0.2  # at most this often: a display frame, a batch status poll


@dataclass
class RunResult:
    run_id: str
    status: RunState  # finished | failed | killed | budget_exhausted
    store_uri: str
    summary: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    mlflow_error: str | None = None
    message: str | None = None
    wall_s: float = 0.0
    # The process still logging the run to MLflow after the driver returned (a command-line
    # run does not wait for it; jobs/mlflow_worker.py), if any.
    mlflow_pid: int | None = None


ProgressCallback = Callable[[RunSnapshot], None]
# What the run is doing now ("starting Ray", "running", "writing MLflow", ...), and a line to
# show a person as it is (a stop that was heard), if any.
PhaseCallback = Callable[[str, str | None], None]


def new_run_id(suite_name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{suite_name}-{stamp}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the Ray this process already started, else join the cluster at `address`, else
    start an embedded one; leave Ray as we found it."""
    if ray.is_initialized():
        yield
        return
    if address:
        # Ray's INFO lines ("Connecting to existing Ray cluster...") would break through the
        # progress bar; its warnings still show.
        ray.init(
            address=address,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        # "local": always a new Ray of our own, never a cluster that someone started on this
        # machine with `ray start` (which a bare ray.init() joins) nor the one in $RAY_ADDRESS.
        ray.init(
            address="local",
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield
    finally:
        ray.shutdown()


def _return_to(cwd: str) -> None:
    """Inside a Ray job, Ray unpacks the job's working_dir again once the driver connects: the
    folder the driver started in is replaced by a new one at the same path, leaving the process
    in a deleted directory (os.getcwd() then fails, and MLflow with it). Step into the new one,
    waiting a while for it: the driver can get here between the removal and the re-extraction.
    If it never comes back (a resumed job can share the stopped job's unpacked folder, which
    Ray may clean up under it), step into the temp folder: the store and the dataset were
    opened by absolute path before this point, and a run must not fail over its working folder."""
    try:
        os.getcwd()
        return
    except FileNotFoundError:
        pass
    deadline = time.monotonic() + WORKING_DIR_WAIT_S
    while time.monotonic() < deadline:
        try:
            os.chdir(cwd)
            return
        except FileNotFoundError:
            time.sleep(0.1)
    log.warning("working folder %s is gone; continuing in %s", cwd, tempfile.gettempdir())
    os.chdir(tempfile.gettempdir())


class _Cancel:
    """SIGTERM (Ray's job stop) and SIGINT ask the driver to stop cleanly, and say at once that
    they were heard (the stop itself can take a while: a summary and MLflow are still written).
    A second SIGINT does not wait: it raises KeyboardInterrupt, and any further one too."""

    def __init__(self, run_id: str = "", on_phase: PhaseCallback | None = None) -> None:
        self.requested = False
        self.run_id = run_id
        self.on_phase = on_phase

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: the caller cancels through the live-run registry
            previous = {}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        first = not self.requested
        self.requested = True
        if first and self.on_phase is not None:
            resume = f" (resume with --run-id {self.run_id})" if self.run_id else ""
            detail = (
                "cancelling the shards in flight; committed shards are kept"
                + resume
                + ("; Ctrl-C again to force" if signum == signal.SIGINT else "")
            )
            with contextlib.suppress(Exception):  # a display must not break the stop
                self.on_phase("stopping", detail)


def run_suite(
    suite: LoadedSuite,
    options: RunOptions,
    *,
    on_progress: ProgressCallback | None = None,
    on_phase: PhaseCallback | None = None,
    session: contextlib.ExitStack | None = None,
) -> RunResult:
    """Run (or resume) `suite`. `on_progress` gets run snapshots as shards finish; `on_phase`
    hears what the run is doing before there is anything to count and after: starting the
    simulators, Ray and the providers, running, writing the summary and MLflow, shutting
    down, and stopping on a signal.

    With `session`, a run that ends normally leaves the Ray and simulators it started running
    and hands their shutdown to `session`, for the caller to close once it has shown the
    result (the CLI); without it they are shut down before returning. A Ray that was already
    running (tests, the HTTP service's actor) is left running either way."""
    started = time.monotonic()
    suite = select_targets(suite, options.targets)
    run_id = options.run_id or new_run_id(suite.spec.name)
    store = open_store(options.store, endpoint_url=options.endpoint_url)
    manifest = _prepare_manifest(store, suite, run_id, options)
    if manifest.status == RunState.FINISHED:
        return RunResult(
            run_id,
            RunState.FINISHED,
            store.uri,
            message="already finished; nothing to do",
            mlflow_run_id=manifest.mlflow_run_id,
        )
    phase = _phases(on_phase)
    cancel = _Cancel(run_id, on_phase)
    cwd = os.getcwd()
    with contextlib.ExitStack() as stack:
        tracking = None
        open_tracking: Callable[[], Any] | None = None
        if options.tracking_uri and not options.address:
            # MLflow in a process of its own (jobs/mlflow_worker.py), not in the driver. Not
            # when joining a cluster: inside a Ray job, connecting replaces the working folder
            # (see _return_to), which a relative sqlite:// store would be opened in.
            from evalcluster.jobs.mlflow_worker import MlflowWorker

            def open_tracking() -> MlflowWorker:
                worker = MlflowWorker(
                    options.tracking_uri, options.store, options.endpoint_url, run_id
                )
                # on every way out; a worker that never got the run's outcome marks it KILLED
                stack.callback(worker.close_input)
                return worker

            if session is None:
                # the caller waits for MLflow: open its run beside the shards
                tracking = open_tracking()
                open_tracking = None
            # else the command detaches MLflow anyway: its worker starts once the requests
            # are done, so that its import (seconds of CPU) does not compete with them
        if any(p.kind == "simulated" and not p.base_url for p in suite.spec.providers.values()):
            phase("starting simulators")
        providers = stack.enter_context(started_simulators(suite.spec.providers))
        executor = _start_executor(stack, options, phase)
        # after ray.init, which installs a SIGTERM handler of its own; restored before the
        # caller shows the result
        with cancel.installed():
            driver = _Driver(
                suite,
                options,
                store,
                manifest,
                providers,
                cancel,
                on_progress,
                cwd,
                phase,
                tracking=tracking,
                open_tracking=open_tracking,
                executor=executor,
                detach_mlflow=session is not None,
            )
            result = driver.run()
        if session is not None:
            # The caller shows the result first, then closes `session`: Ray and the
            # simulators stop after the table, not before it.
            session.push(stack.pop_all())
        else:
            phase("shutting down")
    result.wall_s = time.monotonic() - started
    return result


def _start_executor(
    stack: contextlib.ExitStack, options: RunOptions, phase: Callable[[str], None]
) -> Executor:
    """The run's executor (`jobs/executors.py`): Ray (joined or started, shut down with
    `stack` when this process started it) or this process."""
    if choose_executor(options.executor, address=options.address) == "ray":
        phase("starting Ray")
        stack.enter_context(ray_session(options.address))
        return RayExecutor(SHARD_CPUS)
    from evalcluster.jobs.local_executor import LocalExecutor

    executor = LocalExecutor()
    stack.callback(executor.close)
    return executor


def _phases(on_phase: PhaseCallback | None) -> Callable[[str], None]:
    def phase(name: str) -> None:
        if on_phase is not None:
            with contextlib.suppress(Exception):  # a display must not fail a run
                on_phase(name, None)

    return phase


def _prepare_manifest(
    store: Store, suite: LoadedSuite, run_id: str, options: RunOptions
) -> RunManifest:
    manifest = read_manifest(store, run_id)
    if manifest is None:
        now = datetime.now(UTC)
        return RunManifest(
            run_id=run_id,
            suite=suite.spec.name,
            suite_version=suite.version,
            status=RunState.PENDING,
            created_at=now,
            updated_at=now,
            store_uri=store.uri,
            targets=[t.name for t in suite.spec.targets],
            options=options.model_dump(exclude={"run_id", "dry_run"}),
            spec=suite.spec.model_dump(mode="json"),
        )
    if manifest.suite_version != suite.version:
        raise SpecError(
            f"run {run_id} was made with suite version {manifest.suite_version}, "
            f"this suite is version {suite.version}; use a new run id",
            field="--run-id",
        )
    missing = [t.name for t in suite.spec.targets if t.name not in manifest.targets]
    if missing:
        raise SpecError(f"run {run_id} has no target {missing[0]!r}", field="--target")
    return manifest


class _Driver:
    # providers answering this run by batch (set in `run`), and their counts last published
    _batching: frozenset[str] = frozenset()
    _batches_published: BatchProgress | None = None

    def __init__(
        self,
        suite: LoadedSuite,
        options: RunOptions,
        store: Store,
        manifest: RunManifest,
        providers: dict,
        cancel: _Cancel,
        on_progress: ProgressCallback | None,
        cwd: str,
        phase: Callable[[str], None] = lambda name: None,
        *,
        tracking: Any = None,
        open_tracking: Callable[[], Any] | None = None,
        executor: Executor | None = None,
        detach_mlflow: bool = False,
    ):
        # MLflow's worker made only when the requests are done (`_open_deferred_tracking`)
        self.open_tracking = open_tracking
        self._tracking_start: dict[str, Any] | None = None
        self.detach_mlflow = detach_mlflow  # leave MLflow's finish to its worker process
        self.executor: Executor = executor or RayExecutor(SHARD_CPUS)
        self.cwd = cwd
        self.tracking = tracking
        self.phase = phase
        self.suite = suite
        self.options = options
        self.store = store
        self.manifest = manifest
        self.providers = providers
        self.cancel = cancel
        self.on_progress = on_progress
        self.run_id = manifest.run_id
        self.targets = [t.name for t in suite.spec.targets]
        self.budget = options.budget_usd or suite.spec.budget_usd
        self.tracker = None
        self.mlflow_error: str | None = None
        self._last_flush = 0.0
        self._last_cancel_check = 0.0
        self._cancelled_remotely = False
        self._mlflow_merged = False
        self._cancel_probe: Any = None  # a pending is_cancelled call
        self._last_progress = 0.0
        self.comparison: SequentialComparison | None = None  # a suite's `compare:`, once begun

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> RunResult:
        samples = count_samples(self.suite, max_samples=self.options.max_samples)
        epochs = self.suite.spec.epochs
        totals = {t: samples * epochs for t in self.targets}
        # who batches: `mode: batch`, or `auto` with enough requests for the endpoint
        self._batching = batching_providers(self.suite.spec, self.providers, samples * epochs)
        if self._batching:
            self.executor.widen_for_batches()
        self.live, opened = self.executor.open_run(
            self.run_id, self.suite.spec.name, totals, self.budget
        )
        try:
            self.phase("starting providers")
            actors = self.executor.start_providers(self.suite.spec, self.providers)
            self.executor.get(opened)  # before any shard reports to it
            _return_to(self.cwd)
            if self.options.tracking_uri and self.open_tracking is None:
                self.phase("starting MLflow")
            self._start_tracking(samples)
        except BaseException:
            # Else it would look live for good. The registry is an async actor: a close that
            # overtook the open still in flight would leave the run open, so the open is
            # waited for first, and the close too (a caller looking the run up next must
            # find it closed).
            with contextlib.suppress(Exception):
                self.executor.get(opened, timeout=10)
            with contextlib.suppress(Exception):
                self.executor.get(self.live.close(), timeout=10)
            raise
        self._set_status(RunState.RUNNING, wait=False)
        self.phase("stopping" if self.cancel.requested else "running")
        status: RunState = RunState.FAILED
        message: str | None = None
        try:
            status, message = self._run_shards()
        except EvalclusterError as exc:
            message = str(exc)
            raise
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _return_to(self.cwd)
            summary = self._finish(status, message)
            self.executor.retire_providers(actors, self.providers)
            with contextlib.suppress(Exception):
                self.live.close()
        return RunResult(
            self.run_id,
            status,
            self.store.uri,
            summary=summary,
            mlflow_run_id=self.manifest.mlflow_run_id,
            mlflow_error=self.mlflow_error,
            message=message,
            mlflow_pid=self.tracking.pid
            if self.tracking is not None and self.detach_mlflow
            else None,
        )

    def _set_status(
        self, status: RunState, message: str | None = None, *, wait: bool = True
    ) -> None:
        self.manifest = self.manifest.model_copy(
            update={"status": status, "error": message, "updated_at": datetime.now(UTC)}
        )
        write_manifest(self.store, self.manifest)
        update = self.live.set_status(status, message)
        if wait:
            with contextlib.suppress(Exception):
                self.executor.get(update, timeout=10)

    # -- shards ----------------------------------------------------------------------------
    def _max_inflight(self) -> int:
        """Shards submitted at once: as many as the cluster can run now, none queued.

        A queued shard becomes schedulable whenever a running one blocks on its provider
        calls (Ray lends a blocked task's CPU), and Ray starts a worker process for it: with
        twice as many submitted, 2 cores saw two or three new processes per run, about 1.5 s
        of CPU each, that mostly sat idle until Ray reaped them (benchmarks/README.md). Set
        `max_inflight_shards` to queue more, e.g. so that an autoscaler sees the demand.
        """
        if self.options.max_inflight_shards:
            return self.options.max_inflight_shards
        return self.executor.shard_slots()

    def _run_shards(self) -> tuple[RunState, str | None]:
        ctx = ShardContext(
            self.run_id,
            self.suite,
            self.store,
            self.providers,
            live=self.live,
            use_cache=not self.options.no_cache,
            priority=self.options.priority,
            budgeted=self.budget is not None,
            batching=self._batching,
        )
        ctx_ref = self.executor.put(ctx)
        limit = self._max_inflight()
        in_flight: dict[Any, tuple[str, int]] = {}
        stopped: RunState | None = None
        total_shards = 0
        # A comparison orders the samples itself, and stops dispatching once it has decided.
        self.comparison = start_comparison(self.suite, self.store, self.manifest, self.options)
        batches = (
            self.comparison.batches()
            if self.comparison is not None
            else iter_sample_batches(self.suite, max_samples=self.options.max_samples)
        )
        for batch in batches:
            if self.comparison is not None and self.comparison.should_stop(batch.index):
                break
            total_shards += 1
            samples_ref = None
            for target in self.targets:
                recorded = self.manifest.shards.get(target, {}).get(batch.index)
                if recorded is not None:
                    self._report_recorded(target, recorded.rows)
                    continue
                if stopped or self._cancel_requested():
                    stopped = stopped or RunState.KILLED
                    continue
                samples_ref = samples_ref or self.executor.put(batch.samples)
                task = self.executor.submit(ctx_ref, samples_ref, target, batch.index)
                in_flight[task] = (target, batch.index)
                while len(in_flight) >= limit and not stopped:
                    stopped = self._collect(in_flight, block=True)
            if not stopped:
                stopped = self._collect(in_flight, block=False)
        while in_flight and not stopped:
            stopped = self._collect(in_flight, block=True)
        if stopped == RunState.KILLED:
            self._abandon(in_flight)
        while in_flight:  # budget stop: shards finish what they reserved, then return
            self._collect(in_flight, block=True)
        self.manifest = self.manifest.model_copy(
            update={"total_shards": {t: total_shards for t in self.targets}}
        )
        self._flush_manifest(force=True)
        if stopped == RunState.BUDGET_EXHAUSTED:
            return RunState.BUDGET_EXHAUSTED, f"budget of ${self.budget:.4f} reached"
        if stopped:
            return RunState.KILLED, "cancelled"
        missing = self._missing_shards(total_shards)
        if missing:
            return RunState.FAILED, f"{missing} shard(s) did not commit"
        return RunState.FINISHED, None

    def _collect(self, in_flight: dict, *, block: bool) -> RunState | None:
        """Record finished shards; return why the run must stop, if it must."""
        # A bounded wait keeps signal handlers (Ray's job stop sends SIGTERM) responsive.
        ready = self.executor.wait(list(in_flight), num_returns=1, timeout=1.0 if block else 0)
        stopped = None
        for ref in ready:
            target, index = in_flight.pop(ref)
            outcome: ShardOutcome = self.executor.get(ref)
            if outcome.committed:
                self._record(target, index, outcome.rows)
            elif outcome.stopped:
                stopped = (
                    RunState.KILLED if outcome.stopped == "cancelled" else RunState(outcome.stopped)
                )
        self._flush_manifest()
        self._progress()
        if self._cancel_requested():
            return RunState.KILLED
        return stopped

    def _abandon(self, in_flight: dict) -> None:
        """Cancel: stop dispatching everywhere and drop the shards still running.

        Their partial work is not committed (a resume redoes those shards), and Ray's job stop
        gives the driver only a few seconds before it kills it, so nothing here waits long.
        """
        with contextlib.suppress(Exception):
            self.live.cancel()
        for ref in list(in_flight):
            with contextlib.suppress(Exception):
                self.executor.cancel(ref)
        if self._batching:  # after the shards: a cancelled batch's requests go nowhere
            with contextlib.suppress(Exception):
                self.executor.cancel_batches(self.run_id, self.providers, self._batching)
        ready = self.executor.wait(list(in_flight), num_returns=len(in_flight), timeout=2.0)
        for ref in ready:
            target, index = in_flight.pop(ref)
            with contextlib.suppress(Exception):
                outcome: ShardOutcome = self.executor.get(ref)
                if outcome.committed:
                    self._record(target, index, outcome.rows)
        in_flight.clear()

    def _record(self, target: str, index: int, rows: int) -> None:
        shards = dict(self.manifest.shards)
        shards[target] = {
            **shards.get(target, {}),
            index: ShardRecord(
                rows=rows,
                committed_at=datetime.now(UTC),
                key=shard_key(self.run_id, target, index),
            ),
        }
        self.manifest = self.manifest.model_copy(update={"shards": shards})
        if self.comparison is not None:
            self.comparison.on_commit(target, index)
            self.manifest = self.comparison.recorded_in(self.manifest, RunState.RUNNING)

    def _report_recorded(self, target: str, rows: int) -> None:
        self.live.report(target, ProgressDelta(done=rows))

    def _missing_shards(self, total: int) -> int:
        return sum(total - len(self.manifest.shards.get(t, {})) for t in self.targets)

    def _flush_manifest(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_flush >= MANIFEST_FLUSH_S:
            self._merge_mlflow()
            self.manifest = self.manifest.model_copy(update={"updated_at": datetime.now(UTC)})
            write_manifest(self.store, self.manifest)
            self._last_flush = now

    def _cancel_requested(self) -> bool:
        """A local signal, or a cancel through the live-run registry (asked without blocking:
        a dispatch loop must not wait on it)."""
        if self.cancel.requested or self._cancelled_remotely:
            return True
        if self._cancel_probe is not None:
            ready = self.executor.wait([self._cancel_probe], timeout=0)
            if not ready:
                return False
            with contextlib.suppress(Exception):  # a lost registry must not stop the run
                self._cancelled_remotely = bool(self.executor.get(ready[0]))
            self._cancel_probe = None
            if self._cancelled_remotely:
                return True
        now = time.monotonic()
        if now - self._last_cancel_check >= CANCEL_CHECK_S:
            self._last_cancel_check = now
            self._cancel_probe = self.live.is_cancelled()
        return False

    def _final_progress(self, *, wait: bool = True) -> None:
        """The display's last frame: the final count, not a snapshot that misses the last
        reports of shards (a shard's report is sent without waiting, so it can reach the
        registry after the driver has the shard's result). The rows committed are counted
        whatever the registry says by then."""
        if self.on_progress is None:
            return
        committed = sum(r.rows for shards in self.manifest.shards.values() for r in shards.values())
        snapshot: RunSnapshot | None = None
        deadline = time.monotonic() + (FINAL_PROGRESS_WAIT_S if wait else 0.0)
        with contextlib.suppress(Exception):
            while True:
                snapshot = self.executor.get(self.live.snapshot(), timeout=5)
                if snapshot.done >= committed or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        if snapshot is None:
            return
        with contextlib.suppress(Exception):
            self.on_progress(snapshot.with_done(max(snapshot.done, committed)))

    def _progress(self, *, force: bool = False) -> None:
        if self.on_progress is None and not self._batching:
            return
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S and not force:
            return
        self._last_progress = now
        self._publish_batches()
        if self.on_progress is None:
            return
        with contextlib.suppress(Exception):
            self.on_progress(self.executor.get(self.live.snapshot(), timeout=5))

    def _publish_batches(self) -> None:
        """Put the run's batch progress (queued, at the provider, answered: `BatchLane.snapshot`
        summed) into the live run, where the display, GET /v1/runs/{id} and the events read
        it. Sent only when it changed: each change wakes every stream following the run."""
        if not self._batching:
            return
        with contextlib.suppress(Exception):  # progress must not fail a run
            batches = self.executor.batch_status(self.run_id, self.providers, self._batching)
            if batches != self._batches_published:
                # no wait: the registry runs it before any snapshot asked for after it
                self.live.set_batches(batches)
                self._batches_published = batches

    def _release_batch_lanes(self) -> None:
        """The shared provider actors outlive the run: let them forget its batch lanes (a
        cancelled run's are gone already). A batch still live stays in the ledger, and a resume
        reattaches to it."""
        if not self._batching:
            return
        with contextlib.suppress(Exception):  # a lane left behind costs memory, not results
            self.executor.close_batches(self.run_id, self.providers, self._batching)

    # -- results ---------------------------------------------------------------------------
    def _start_tracking(self, samples: int) -> None:
        if not self.options.tracking_uri:
            return
        if self.tracking is not None or self.open_tracking is not None:
            start = dict(
                tracking_uri=self.options.tracking_uri,
                suite=self.suite.spec.name,
                suite_version=self.suite.version,
                results_uri=self.store.full_uri(f"runs/run_id={self.run_id}"),
                suite_file_text=self.suite.text,
                seed=self.suite.spec.seed,
                sample_count=samples,
                earlier=[
                    *self.manifest.resumed_from_mlflow_run_ids,
                    *([self.manifest.mlflow_run_id] if self.manifest.mlflow_run_id else []),
                ],
            )
            if self.tracking is not None:  # the MLflow worker opens the run beside the shards
                self.tracking.start(**start)
            else:
                # Until the requests are done no MLflow run exists; the manifest says so, so
                # that a run killed before then is not taken for one whose logging was lost.
                self._tracking_start = start
                self.manifest = self.manifest.model_copy(
                    update={"mlflow_logging": "after_requests"}
                )
            return
        try:
            from evalcluster.tracking import MlflowTracker

            self.tracker = MlflowTracker(self.options.tracking_uri)
            running = self.tracker.find_running(self.run_id)
            stale = set(running)
            if self.manifest.mlflow_run_id:
                stale.add(self.manifest.mlflow_run_id)
            earlier = [*self.manifest.resumed_from_mlflow_run_ids]
            for mlflow_id in sorted(stale):
                self.tracker.mark_killed(mlflow_id)
            if self.manifest.mlflow_run_id:
                earlier.append(self.manifest.mlflow_run_id)
            parent = self.tracker.start_evaluation(
                suite=self.suite.spec.name,
                suite_version=self.suite.version,
                run_id=self.run_id,
                results_uri=self.store.full_uri(f"runs/run_id={self.run_id}"),
                suite_file_text=self.suite.text,
                seed=self.suite.spec.seed,
                sample_count=samples,
                resumed_from=sorted(set(earlier)) or None,
            )
            self.manifest = self.manifest.model_copy(
                update={
                    "mlflow_run_id": parent,
                    "resumed_from_mlflow_run_ids": sorted(set(earlier)),
                }
            )
        except TrackingError as exc:
            self._tracking_failed(exc)

    def _open_deferred_tracking(self) -> None:
        """Start the MLflow worker deferred until the requests were done, and hand it the
        run's start (its import then overlaps the summary)."""
        if self.open_tracking is None or self._tracking_start is None or self.tracking:
            return
        self.tracking = self.open_tracking()
        self.tracking.start(**self._tracking_start)

    def _merge_mlflow(self) -> None:
        """Record the MLflow worker's parent run in the manifest once it has one."""
        started = None if self.tracking is None else self.tracking.started
        if started is None or self._mlflow_merged:
            return
        self._mlflow_merged = True
        if "error" in started:
            self.mlflow_error = started["error"]
            log.warning(self.mlflow_error)
            return
        self.manifest = self.manifest.model_copy(
            update={
                "mlflow_run_id": started["parent"],
                "resumed_from_mlflow_run_ids": started["resumed_from"],
            }
        )

    def _finish_worker(self, status: RunState, summary: dict[str, Any]) -> None:
        """Hand the outcome to the MLflow worker; wait for it unless the run detaches it."""
        worker = self.tracking
        worker.finish(
            status=MLFLOW_STATUS.get(status, "FAILED"),
            summary=summary,
            suite=self.suite,
            targets=self.targets,
            max_traced_samples=self.options.max_traced_samples,
        )
        if self.detach_mlflow:
            return
        self.phase("writing MLflow")
        error = worker.wait()
        self._merge_mlflow()
        if error:
            self.mlflow_error = error
            log.warning(error)
        self._flush_manifest(force=True)

    def _tracking_failed(self, exc: Exception) -> None:
        self.mlflow_error = f"MLflow logging failed: {exc}"
        self.tracker = None
        log.warning(self.mlflow_error)

    def _finish(self, status: RunState, message: str | None) -> dict[str, Any]:
        scorer_names = [s.name or s.type for s in self.suite.spec.scorers]
        summary: dict[str, Any] = {}
        self._publish_batches()  # the batches' last counts, in the run's final status
        self._release_batch_lanes()
        self._final_progress()  # the final count, before the summary and MLflow take their time
        try:
            self._open_deferred_tracking()
        except Exception as exc:  # noqa: BLE001 - MLflow's failure must not lose the summary
            self.mlflow_error = f"MLflow logging failed: could not start its worker: {exc}"
            self.manifest = self.manifest.model_copy(update={"mlflow_logging": None})
            log.warning(self.mlflow_error)
        self.phase("writing summary")
        try:
            summary = build_summary(self.store, self.run_id, self.suite, scorer_names, status)
            if self.comparison is not None:
                summary["comparison"] = self.comparison.result(status)
                self.manifest = self.comparison.recorded_in(self.manifest, status)
            write_summary(self.store, self.run_id, summary)
        finally:
            if self.tracking is not None:
                self._merge_mlflow()
                if self.detach_mlflow:
                    self.manifest = self.manifest.model_copy(update={"mlflow_logging": "detached"})
            self._set_status(status, message)
            self._final_progress(wait=False)  # with the run's final status
        if self.tracker is not None and self.manifest.mlflow_run_id:
            self.phase("writing MLflow")
            try:
                samples = _traced_samples(
                    self.store, self.run_id, self.targets, self.options.max_traced_samples
                )
                self.tracker.finish_evaluation(
                    self.manifest.mlflow_run_id,
                    status=MLFLOW_STATUS.get(status, "FAILED"),
                    summary=summary,
                    targets=target_results(self.suite, summary),
                    samples=samples,
                    max_traced_samples=self.options.max_traced_samples // max(1, len(self.targets)),
                )
            except TrackingError as exc:
                self._tracking_failed(exc)
        if self.tracking is not None:
            self._finish_worker(status, summary)
        return summary


def _traced_samples(
    store: Store, run_id: str, targets: list[str], limit: int
) -> Iterator[dict[str, Any]]:
    """The first rows of each target, `limit` in all for the run, for MLflow's sample view."""
    per_target = limit // max(1, len(targets))
    if per_target <= 0:
        return
    for target in targets:
        count = 0
        for batch in iter_result_batches(store, run_id, target=target):
            for row in batch.to_pylist():
                yield row
                count += 1
                if count >= per_target:
                    break
            if count >= per_target:
                break
