"""Which source a run's status comes from, as the run moves from driver to actor to manifest."""

from __future__ import annotations

import dataclasses

import pytest

from evalcluster.actors.run import BatchProgress, BudgetSnapshot, RunSnapshot, TargetProgress
from evalcluster.serve.launcher import DriverState
from evalcluster.serve.runstatus import RunSources, compose_status, is_valid_run_id
from evalcluster.store.manifest import RunManifest, ShardRecord
from tests.serve.manifests import NOW, run_manifest


def manifest(status: str, rows: dict[str, list[int]] | None = None) -> RunManifest:
    shards = {
        target: {
            i: ShardRecord(rows=n, committed_at=NOW, key=f"k/{target}/{i}")
            for i, n in enumerate(counts)
        }
        for target, counts in (rows or {}).items()
    }
    return run_manifest("run-a", status, ["t0", "t1"], shards=shards)


def snapshot(status: str = "running", done: tuple[int, int] = (3, 1)) -> RunSnapshot:
    return RunSnapshot(
        run_id="run-a",
        suite="s",
        status=status,
        message=None,
        cancel_requested=False,
        started_at=0.0,
        finished_at=None,
        done=sum(done),
        total=20,
        errors=1,
        cost_usd=0.5,
        budget=BudgetSnapshot(limit_usd=5.0),
        targets={
            f"t{i}": TargetProgress(
                total=10,
                done=d,
                errors=i,
                cached=0,
                input_tokens=10 * d,
                output_tokens=d,
                cost_usd=0.25,
            )
            for i, d in enumerate(done)
        },
        version=7,
    )


def driver(
    phase: str,
    status: str = "pending",
    message: str | None = None,
    snap: RunSnapshot | None = None,
) -> DriverState:
    return DriverState(
        run_id="run-a",
        phase=phase,  # type: ignore[arg-type]
        status=status,
        message=message,
        snapshot=snap,
        started_at=0.0,
        ended_at=None,
        cancel_requested=False,
    )


SUMMARY = {
    "targets": {
        "t0": {
            "rows": 10,
            "errors": 0,
            "cache_hits": 2,
            "input_tokens": 100,
            "output_tokens": 10,
            "cost_usd": 0.4,
            "judge_cost_usd": 0.1,
            "scorers": {"exact": {"mean": 0.9}},
        },
        "t1": {
            "rows": 10,
            "errors": 3,
            "cache_hits": 0,
            "input_tokens": 90,
            "output_tokens": 9,
            "cost_usd": 0.2,
            "judge_cost_usd": 0.0,
            "scorers": {"exact": {"mean": 0.5}},
        },
    }
}


def test_a_live_run_reports_its_live_progress():
    status = compose_status(
        RunSources(
            "run-a", manifest=manifest("running"), snapshot=snapshot(), driver=driver("running")
        )
    )
    assert (status.status, status.live) == ("running", True)
    assert (status.done, status.total, status.errors) == (4, 20, 1)
    assert status.targets["t0"].done == 3 and status.targets["t0"].metrics is None
    assert status.budget == {
        "limit_usd": 5.0,
        "spent_usd": 0.0,
        "reserved_usd": 0.0,
        "exhausted": False,
    }
    assert status.created_at == NOW.isoformat()


def test_a_terminal_manifest_wins_and_brings_committed_rows_and_metrics():
    status = compose_status(
        RunSources(
            "run-a",
            manifest=manifest("finished", {"t0": [5, 5], "t1": [4, 6]}),
            summary=SUMMARY,
            snapshot=snapshot("running"),
            driver=driver("running"),
        )
    )
    assert (status.status, status.live) == ("finished", False)
    assert (status.done, status.total) == (20, 20)
    assert status.targets["t0"].metrics["scorers"]["exact"]["mean"] == 0.9
    assert status.targets["t0"].cost_usd == pytest.approx(0.5)  # answers plus judge
    assert status.errors == 3
    assert status.cost_usd == pytest.approx(0.7)


def test_a_driver_failure_after_the_status_was_recorded_is_the_message():
    status = compose_status(
        RunSources(
            "run-a",
            manifest=manifest("finished", {"t0": [5]}),
            driver=driver("ended", "failed", "StoreError: cannot write the summary"),
        )
    )
    assert status.status == "finished"
    assert status.message == "StoreError: cannot write the summary"


def test_a_killed_run_keeps_the_totals_its_driver_last_saw():
    status = compose_status(
        RunSources(
            "run-a",
            manifest=manifest("killed", {"t0": [5], "t1": [2]}),
            summary=SUMMARY,
            driver=driver("ended", "killed", snap=snapshot()),
        )
    )
    assert status.status == "killed"
    assert (status.done, status.total) == (7, 20)
    assert status.targets["t1"].total == 10


def test_a_killed_run_without_its_driver_has_an_unknown_total():
    status = compose_status(RunSources("run-a", manifest=manifest("killed", {"t0": [5]})))
    assert (status.done, status.total) == (5, None)


def test_a_starting_run_is_pending_and_live():
    status = compose_status(RunSources("run-a", driver=driver("starting")))
    assert (status.status, status.live, status.done, status.total) == ("pending", True, 0, None)
    assert status.targets == {}


def test_a_run_that_failed_before_writing_a_manifest_reports_the_drivers_error():
    status = compose_status(
        RunSources(
            "run-a", driver=driver("ended", "failed", "SpecError: dataset.path: file not found")
        )
    )
    assert (status.status, status.live) == ("failed", False)
    assert "file not found" in status.message


def test_a_manifest_left_running_by_a_vanished_driver_says_how_to_resume():
    status = compose_status(RunSources("run-a", manifest=manifest("running")))
    assert (status.status, status.live) == ("running", False)
    assert "--run-id run-a" in status.message


def test_no_source_means_an_unknown_run():
    assert not RunSources("run-a").known
    assert RunSources("run-a", driver=driver("starting")).known


@pytest.mark.parametrize(
    ("run_id", "valid"),
    [
        ("quick-20261126-101010-abc123", True),
        ("run-1", True),
        ("12345", False),
        ("2026-11-26", False),
        ("../x", False),
        ("", False),
        ("a" * 129, False),
        ("nan", False),
    ],
)
def test_run_ids_that_no_run_can_have_are_rejected(run_id, valid):
    assert is_valid_run_id(run_id) is valid


def test_run_ids_are_checked_by_one_rule_for_the_command_line_and_http(tmp_path):
    """RunOptions (the command line, the Python API) and the service refuse the same ids."""
    from pydantic import ValidationError

    from evalcluster.jobs.options import RunOptions

    for run_id in ("12345", "2026-11-26", "../x", "nan", "a" * 129):
        assert not is_valid_run_id(run_id)
        with pytest.raises(ValidationError, match="run_id"):
            RunOptions(run_id=run_id)
    assert RunOptions(run_id="run-1").run_id == "run-1"


def test_a_batching_run_reports_its_batches_and_a_run_without_none():
    batches = BatchProgress(queued=3, batches_in_progress=1, requests_in_progress=8, answered=2)
    live = dataclasses.replace(snapshot(), batches=batches)
    status = compose_status(RunSources("run-a", manifest=manifest("running"), snapshot=live))
    assert status.batches is not None
    assert status.batches.model_dump() == {
        "queued": 3,
        "batches_in_progress": 1,
        "requests_in_progress": 8,
        "answered": 2,
        "retried": 0,
        "anomalies": 0,
    }
    plain = compose_status(RunSources("run-a", manifest=manifest("running"), snapshot=snapshot()))
    assert plain.batches is None and plain.model_dump()["batches"] is None


def test_an_ended_run_keeps_the_batches_its_driver_last_saw():
    batches = BatchProgress(answered=20)
    last = dataclasses.replace(snapshot("finished"), batches=batches)
    status = compose_status(
        RunSources(
            "run-a",
            manifest=manifest("finished", {"t0": [10], "t1": [10]}),
            driver=driver("ended", "finished", snap=last),
        )
    )
    assert status.status == "finished" and status.batches.answered == 20
    assert status.batches.batches_in_progress == 0


def test_an_exited_drivers_outcome_is_the_status_of_a_run_it_left_no_manifest_for(tmp_path):
    from evalcluster.serve.launcher import DriverOutcome, outcome_key, read_outcome
    from evalcluster.store.fs import open_store

    store = open_store(str(tmp_path / "store"))
    assert read_outcome(store, "run-a") is None
    store.put(outcome_key("run-a"), b'{"status": "failed", "message": "SpecError: x"}')
    outcome = read_outcome(store, "run-a")
    assert outcome == DriverOutcome("failed", "SpecError: x", None)
    status = compose_status(RunSources("run-a", outcome=outcome))
    assert (status.status, status.message, status.live) == ("failed", "SpecError: x", False)
    for junk in (b"[1, 2]", b'{"status": 3}', b"not json"):
        store.put(outcome_key("run-a"), junk)
        assert read_outcome(store, "run-a") is None
