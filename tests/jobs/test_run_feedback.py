"""What `evalcluster run` tells a person, without Ray: the exit status when the rows are
errors, the acknowledgement of Ctrl-C, and the count in the bar's last frame."""

from __future__ import annotations

import argparse
import signal
from types import SimpleNamespace

import pytest

from evalcluster.actors.run import BudgetSnapshot, RunSnapshot
from evalcluster.jobs import driver, run_suite
from evalcluster.jobs.driver import RunResult
from evalcluster.jobs.options import RunOptions


def _summary(rows: int, errors: dict[str, int]) -> dict:
    per_target = {
        "rows": rows,
        "samples": rows,
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }
    return {"targets": {"a": dict(per_target), "b": dict(per_target)}}


def _execute(monkeypatch, summary: dict, *flags: str, status: str = "finished") -> int:
    parser = argparse.ArgumentParser()
    run_suite.add_run_arguments(parser)
    args = parser.parse_args(["suite.yaml", "--tracking-uri", "none", *flags])
    seen = {}

    def fake_run_suite(suite, options, **callbacks):
        seen["options"] = options
        return RunResult("r1", status, "/tmp/store", summary=summary)

    monkeypatch.setattr(run_suite, "prepare_suite", lambda path: SimpleNamespace())
    monkeypatch.setattr(run_suite, "run_suite", fake_run_suite)
    monkeypatch.setattr(run_suite, "print_result", lambda result, suite: None)
    code = run_suite.execute(args, None, show_progress=False)
    # the run's own status is the driver's: only the command's exit status says "errors"
    assert seen["options"].max_error_rate == float(flags[-1] if flags else 0.5)
    return code


def test_a_run_whose_rows_are_all_errors_exits_1_with_one_line(monkeypatch, capsys):
    code = _execute(monkeypatch, _summary(300, {"connection": 300}))
    assert code == run_suite.EXIT_FAILED
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith("evalcluster: error: 600 of 600 rows are errors (connection: 600)")
    assert "--max-error-rate 0.5" in lines[0]


def test_the_error_rate_is_the_limit_and_1_disables_it(monkeypatch, capsys):
    mostly = _summary(100, {"connection": 40, "timeout": 20})  # 60% errors
    assert _execute(monkeypatch, mostly) == run_suite.EXIT_FAILED
    assert "120 of 200 rows are errors (connection: 80, timeout: 40)" in capsys.readouterr().err
    assert _execute(monkeypatch, mostly, "--max-error-rate", "0.7") == run_suite.EXIT_OK
    everything = _summary(100, {"connection": 100})
    assert _execute(monkeypatch, everything, "--max-error-rate", "1") == run_suite.EXIT_OK
    assert _execute(monkeypatch, _summary(100, {"timeout": 3})) == run_suite.EXIT_OK
    assert _execute(monkeypatch, _summary(0, {})) == run_suite.EXIT_OK  # nothing to judge
    assert "rows are errors" not in capsys.readouterr().err


def test_max_error_rate_is_a_run_option_between_0_and_1():
    assert RunOptions().max_error_rate == 0.5
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            RunOptions(max_error_rate=bad)


def test_ctrl_c_is_acknowledged_at_once_and_a_second_one_forces(monkeypatch):
    heard = []
    cancel = driver._Cancel("run-7", lambda phase, detail: heard.append((phase, detail)))
    before = signal.getsignal(signal.SIGINT)
    try:
        cancel._handle(signal.SIGINT, None)
        assert cancel.requested
        assert len(heard) == 1
        phase, detail = heard[0]
        assert phase == "stopping"
        assert "--run-id run-7" in detail and "Ctrl-C again to force" in detail
        with pytest.raises(KeyboardInterrupt):
            cancel._handle(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_sigterm_is_acknowledged_once_and_never_forces():
    heard = []
    cancel = driver._Cancel("run-7", lambda phase, detail: heard.append((phase, detail)))
    cancel._handle(signal.SIGTERM, None)
    cancel._handle(signal.SIGTERM, None)
    assert cancel.requested
    assert len(heard) == 1 and "Ctrl-C" not in heard[0][1]


def test_the_last_frame_shows_the_final_count_before_mlflow_is_written(monkeypatch):
    """A shard's last report reaches the registry after the driver has the shard's result:
    the last frame counts the committed rows, and comes before MLflow is written."""
    events: list[tuple] = []
    lagging = RunSnapshot(
        run_id="r1",
        suite="s",
        status="running",
        message=None,
        cancel_requested=False,
        started_at=0.0,
        finished_at=None,
        done=598,
        total=600,
        errors=0,
        cost_usd=0.1,
        budget=BudgetSnapshot(limit_usd=None),
        targets={},
        version=1,
    )
    monkeypatch.setattr(driver, "ray", SimpleNamespace(get=lambda ref, timeout=None: ref))
    monkeypatch.setattr(driver, "FINAL_PROGRESS_WAIT_S", 0.2, raising=False)
    monkeypatch.setattr(driver, "build_summary", lambda *a: events.append(("summary",)) or {})
    monkeypatch.setattr(driver, "write_summary", lambda *a: None)
    monkeypatch.setattr(driver, "target_results", lambda *a: [])

    d = object.__new__(driver._Driver)
    d.executor = SimpleNamespace(get=lambda ref, timeout=None: ref)
    d.tracking = None
    d.open_tracking = None
    d.comparison = None
    shard = SimpleNamespace(rows=100)
    d.manifest = SimpleNamespace(
        shards={"a": {i: shard for i in range(3)}, "b": {i: shard for i in range(3)}},
        mlflow_run_id="mlflow-1",
    )
    d.live = SimpleNamespace(snapshot=lambda: lagging)
    d.on_progress = lambda snap: events.append(("progress", snap.done))
    d.phase = lambda name: events.append(("phase", name))
    d._set_status = lambda *a, **k: None
    d._last_progress = 0.0
    d.suite = SimpleNamespace(spec=SimpleNamespace(scorers=[]))
    d.store, d.run_id, d.targets = None, "r1", ["a", "b"]
    d.options = SimpleNamespace(max_traced_samples=0)
    d.tracker = SimpleNamespace(finish_evaluation=lambda *a, **k: events.append(("mlflow",)))

    d._finish("finished", None)

    counts = [e[1] for e in events if e[0] == "progress"]
    assert counts and set(counts) == {600}
    first_count = events.index(("progress", 600))
    assert first_count < events.index(("summary",))
    assert events.index(("phase", "writing MLflow")) < events.index(("mlflow",))


# -- when Ray stops, and when MLflow opens (fakes: no Ray, no MLflow) ---------------------------


class _Calls(list):
    def ray(self, initialized: bool = False, on_init=None):
        calls = self

        class FakeRay:
            def is_initialized(self) -> bool:
                return initialized

            def init(self, **kwargs) -> None:
                nonlocal initialized
                if on_init is not None:
                    on_init()
                calls.append("ray.init")
                initialized = True

            def shutdown(self) -> None:
                calls.append("ray.shutdown")

        return FakeRay()


def _fake_run(monkeypatch, calls: _Calls, *, initialized: bool = False, on_init=None):
    """driver.run_suite for real, around a fake Ray, store, manifest and _Driver."""
    monkeypatch.setattr(driver, "ray", calls.ray(initialized, on_init))
    monkeypatch.setattr(driver, "open_store", lambda *a, **kw: SimpleNamespace(uri="/tmp/store"))
    monkeypatch.setattr(driver, "_prepare_manifest", lambda *a: SimpleNamespace(status="pending"))

    class FakeDriver:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def run(self) -> RunResult:
            calls.append("run")
            return RunResult("r1", "finished", "/tmp/store", summary={})

    monkeypatch.setattr(driver, "_Driver", FakeDriver)
    return SimpleNamespace(spec=SimpleNamespace(name="s", providers={}))


def test_the_cli_prints_the_result_before_ray_shuts_down(monkeypatch):
    calls = _Calls()
    suite = _fake_run(monkeypatch, calls)
    monkeypatch.setattr(run_suite, "prepare_suite", lambda path: suite)
    monkeypatch.setattr(run_suite, "print_result", lambda result, suite: calls.append("table"))
    parser = argparse.ArgumentParser()
    run_suite.add_run_arguments(parser)
    args = parser.parse_args(["suite.yaml", "--tracking-uri", "none", "--executor", "ray"])
    assert run_suite.execute(args, None, show_progress=False) == run_suite.EXIT_OK
    assert calls == ["ray.init", "run", "table", "ray.shutdown"]


def test_a_library_caller_gets_ray_shut_down_before_run_suite_returns(monkeypatch):
    calls = _Calls()
    suite = _fake_run(monkeypatch, calls)
    driver.run_suite(suite, RunOptions(tracking_uri=None, executor="ray"))
    assert calls == ["ray.init", "run", "ray.shutdown"]
    # a Ray already running (tests, the HTTP service's actor) is left running, session or not
    calls.clear()
    suite = _fake_run(monkeypatch, calls, initialized=True)
    with driver.contextlib.ExitStack() as session:
        driver.run_suite(suite, RunOptions(tracking_uri=None, executor="ray"), session=session)
    assert calls == ["run"]


def test_the_local_executor_starts_no_ray(monkeypatch):
    calls = _Calls()
    suite = _fake_run(monkeypatch, calls)
    driver.run_suite(suite, RunOptions(tracking_uri=None, executor="local"))
    assert calls == ["run"]


class _FakeTracker:
    calls: list = []

    def __init__(self, uri: str) -> None:
        _FakeTracker.calls.append(("mlflow open", uri))

    def find_running(self, run_id: str) -> list[str]:
        return []


def _fake_worker(monkeypatch, calls: list) -> None:
    """The MLflow worker process (jobs/mlflow_worker.py) replaced by a recorder."""
    from evalcluster.jobs import mlflow_worker

    class FakeWorker:
        def __init__(self, tracking_uri, store, endpoint_url, run_id) -> None:
            calls.append(("mlflow worker", tracking_uri))

        def close_input(self) -> None:
            calls.append("mlflow worker input closed")

    monkeypatch.setattr(mlflow_worker, "MlflowWorker", FakeWorker)


def test_mlflow_worker_starts_before_ray(monkeypatch):
    calls = _Calls()
    _fake_worker(monkeypatch, calls)
    suite = _fake_run(monkeypatch, calls)
    driver.run_suite(suite, RunOptions(tracking_uri="sqlite:///x.db", executor="ray"))
    assert calls == [
        ("mlflow worker", "sqlite:///x.db"),
        "ray.init",
        "run",
        "ray.shutdown",
        "mlflow worker input closed",
    ]


def test_joining_a_cluster_opens_mlflow_after_ray_as_before(monkeypatch):
    import evalcluster.tracking

    calls = _Calls()
    _FakeTracker.calls = calls
    monkeypatch.setattr(evalcluster.tracking, "MlflowTracker", _FakeTracker)
    _fake_worker(monkeypatch, calls)
    suite = _fake_run(monkeypatch, calls)
    driver.run_suite(suite, RunOptions(tracking_uri="sqlite:///x.db", address="10.0.0.1:6379"))
    assert calls == ["ray.init", "run", "ray.shutdown"]  # no worker; the fake _Driver opens nothing


def test_an_mlflow_worker_that_failed_to_start_says_logging_failed():
    d = object.__new__(driver._Driver)
    d.tracking = SimpleNamespace(started={"error": "MLflow logging failed: refused"})
    d._mlflow_merged, d.mlflow_error = False, None
    d.manifest = SimpleNamespace(mlflow_run_id=None)
    d._merge_mlflow()
    assert d.mlflow_error == "MLflow logging failed: refused"
    assert d.manifest.mlflow_run_id is None


def test_the_mlflow_worker_parent_run_goes_into_the_manifest_once():
    from evalcluster.store.manifest import RunManifest

    d = object.__new__(driver._Driver)
    d.tracking = SimpleNamespace(started=None)
    d._mlflow_merged, d.mlflow_error = False, None
    d.manifest = RunManifest(run_id="r1", suite="s", suite_version="v", store_uri="/tmp/s")
    d._merge_mlflow()  # no answer yet: nothing to record
    assert d.manifest.mlflow_run_id is None and not d._mlflow_merged
    d.tracking.started = {"parent": "p2", "resumed_from": ["p1"]}
    d._merge_mlflow()
    assert d.manifest.mlflow_run_id == "p2"
    assert d.manifest.resumed_from_mlflow_run_ids == ["p1"]


def test_ray_that_fails_to_start_leaves_no_mlflow_run_open(monkeypatch):
    import evalcluster.tracking

    calls = _Calls()
    _FakeTracker.calls = calls
    monkeypatch.setattr(evalcluster.tracking, "MlflowTracker", _FakeTracker)
    _fake_worker(monkeypatch, calls)

    def no_ray():
        raise RuntimeError("Ray did not start")

    suite = _fake_run(monkeypatch, calls, on_init=no_ray)
    with pytest.raises(RuntimeError, match="did not start"):
        driver.run_suite(suite, RunOptions(tracking_uri="sqlite:///x.db", executor="ray"))
    # the worker was never asked to start a run, and its input is closed: it exits (a worker
    # whose input ends before a start creates nothing, jobs/mlflow_worker.py)
    assert calls == [("mlflow worker", "sqlite:///x.db"), "mlflow worker input closed"]
