"""A `compare:` run's comparison in GET /v1/runs/{id} (compose_status) and in its event
stream (the `comparison` message, serve/comparison_events.py)."""

from __future__ import annotations

import asyncio

from evalcluster.serve import comparison_events
from evalcluster.serve.comparison_events import ComparisonWatch, comparison_event
from evalcluster.serve.runstatus import RunSources, compose_status
from evalcluster.store.fs import open_store
from evalcluster.store.manifest import RunManifest, write_manifest
from tests.serve.manifests import run_manifest

LOOK = {"samples": 250, "difference": 0.02, "lower": -0.1, "upper": 0.14, "verdict": "undecided"}


def comparison(verdict: str = "undecided", looks: int = 1) -> dict:
    return {
        "a": "old",
        "b": "new",
        "verdict": verdict,
        "difference": 0.02,
        "lower": -0.1,
        "upper": 0.14,
        "samples_used": 250 * looks,
        "path": [LOOK] * looks,
        "state": {"count": 250 * looks},
    }


def manifest(status: str, value: dict | None, compare: bool = True) -> RunManifest:
    spec = {"compare": {"a": "old", "b": "new"}} if compare else {}
    return run_manifest("versus", status, ["old", "new"], spec=spec, comparison=value)


def test_status_shows_the_manifests_comparison_while_running():
    state = compose_status(RunSources("versus", manifest("running", comparison()), None))
    assert state.comparison["verdict"] == "undecided"
    assert state.comparison["path"] == [LOOK]


def test_status_of_an_ended_run_takes_the_summarys_comparison():
    summary = {"targets": {}, "comparison": comparison("b_better", looks=3)}
    state = compose_status(
        RunSources("versus", manifest("finished", comparison()), summary=summary)
    )
    assert state.comparison["verdict"] == "b_better"
    assert len(state.comparison["path"]) == 3


def test_a_run_without_compare_has_no_comparison():
    state = compose_status(RunSources("versus", manifest("running", None, compare=False), None))
    assert state.comparison is None


def test_event_leaves_the_path_out():
    event = comparison_event("versus", comparison("a_better", looks=5))
    assert event["type"] == "comparison" and event["verdict"] == "a_better"
    assert "path" not in event and "state" not in event


class _Context:
    """What ComparisonWatch uses of the service context: the store and a thread call."""

    def __init__(self, store):
        self.store = store

    async def call(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


def test_watch_reports_each_new_look_once_from_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison_events, "POLL_S", 0.0)
    store = open_store(str(tmp_path / "store"))
    watch = ComparisonWatch(_Context(store), "versus")

    async def events():
        out = [await watch.next_event()]  # no manifest yet
        write_manifest(store, manifest("running", comparison(looks=1)))
        out.append(await watch.next_event())
        out.append(await watch.next_event())  # unchanged: nothing
        write_manifest(store, manifest("running", comparison("b_better", looks=2)))
        out.append(await watch.next_event())
        return out

    got = asyncio.run(events())
    assert got[0] is None and got[2] is None
    assert got[1]["samples_used"] == 250 and got[1]["verdict"] == "undecided"
    assert got[3]["samples_used"] == 500 and got[3]["verdict"] == "b_better"


def test_watch_stops_reading_a_run_that_does_not_compare(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison_events, "POLL_S", 0.0)
    store = open_store(str(tmp_path / "store"))
    write_manifest(store, manifest("running", None, compare=False))
    watch = ComparisonWatch(_Context(store), "versus")

    async def twice():
        first = await watch.next_event()
        write_manifest(store, manifest("running", comparison()))  # would be seen if read
        return first, await watch.next_event()

    assert asyncio.run(twice()) == (None, None)
