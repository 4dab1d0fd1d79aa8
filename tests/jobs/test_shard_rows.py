"""The rows a shard commits follow `rows.ResultRow`: a run in this process against the
simulator over real HTTP, with a scorer graded by a judge model (`scoring.JudgedScorer`)."""

from __future__ import annotations

import json

import pytest

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.rows import BASE_COLUMNS, score_column
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from tests.conftest import openai_provider, write_suite

SAMPLES = 6


@pytest.fixture
def sim():
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        yield sim


def test_a_judged_run_commits_rows_with_every_result_row_column_and_the_verdicts(tmp_path, sim):
    path = write_suite(
        tmp_path,
        samples=SAMPLES,
        providers={"p": openai_provider(sim.url)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
        judges=[{"name": "j", "provider": "p", "model": "judge", "params": {"temperature": 0}}],
        scorers=[{"type": "exact"}, {"type": "model_graded", "name": "graded", "judge": "j"}],
    )
    opts = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, executor="local",
                      run_id="judged")  # fmt: skip
    result = run_suite(prepare_suite(path), opts)
    assert result.status == "finished", result.message

    table = read_results(open_store(str(tmp_path / "store")), "judged")
    assert table.column_names == [*BASE_COLUMNS, score_column("exact"), score_column("graded")]
    rows = table.to_pylist()
    assert len(rows) == SAMPLES
    for row in rows:
        assert row["error_kind"] is None
        assert row["score_exact"] == 1.0
        # The simulator plays a deterministic judge on the default template's tags.
        assert row["score_graded"] == 1.0
        assert row["judge_input_tokens"] > 0 and row["judge_output_tokens"] > 0
        verdict = json.loads(row["judge"])["graded"]
        assert "GRADE: C" in verdict["verdict"]
