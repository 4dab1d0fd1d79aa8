"""Building per-sample traces from lake rows (no server: the writing is in test_tracker)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tracking_support import make_rows

from evalcluster.tracking.sample_traces import (
    build_sample_trace,
    collect_rows,
    score_values,
)


def _build(row: dict):
    return build_sample_trace(row, experiment_id="7", source_run_id="child123", eval_run_id="r1")


def test_score_values_reads_score_columns_by_scorer_name():
    row = {"score_exact": 1, "score_numeric": None, "scorer": "x", "output": "4"}
    assert score_values(row) == {"exact": 1.0, "numeric": None}
    odd = {"score_a": "n/a", "score_b": float("nan"), "score_c": True}
    assert score_values(odd) == {"a": None, "b": None, "c": 1.0}


def test_collect_rows_caps_each_target_and_stops_reading_once_all_are_full():
    consumed: list[str] = []

    def rows() -> Iterator[dict]:
        for i in range(1000):
            for target in ("a", "b"):
                consumed.append(f"{target}{i}")
                yield {"target": target, "sample_id": i}

    picked = collect_rows(rows(), ["a", "b"], cap=3)
    assert [r["sample_id"] for r in picked["a"]] == [0, 1, 2]
    assert [r["sample_id"] for r in picked["b"]] == [0, 1, 2]
    assert len(consumed) == 6


def test_collect_rows_ignores_unknown_targets_and_a_zero_cap():
    rows = [{"target": "x"}, {"target": "a"}]
    assert collect_rows(rows, ["a"], cap=5) == {"a": [{"target": "a"}]}
    assert collect_rows(rows, ["a"], cap=0) == {"a": []}


def test_trace_links_to_the_child_run_and_carries_sample_tags():
    trace = _build(make_rows("sim-a", 2)[1])
    info = trace.info
    assert info.trace_id.startswith("tr-") and len(info.trace_id) == 35
    assert info.experiment_id == "7"
    assert info.trace_metadata["mlflow.sourceRun"] == "child123"
    assert info.tags["sample_id"] == "s001"
    assert info.tags["target"] == "sim-a"
    assert info.tags["epoch"] == "0"
    assert info.tags["evalcluster.run_id"] == "r1"
    assert "error_kind" not in info.tags
    assert info.state.value == "OK"
    assert info.execution_duration == 41
    assert json.loads(info.trace_metadata["mlflow.trace.tokenUsage"]) == {
        "input_tokens": 21,
        "output_tokens": 2,
        "total_tokens": 23,
    }


def test_span_holds_prompt_as_inputs_and_output_as_outputs():
    trace = _build(make_rows("sim-a", 1)[0])
    span = trace.span
    assert span.trace_id == trace.info.trace_id
    assert span.parent_id is None
    assert span.inputs == {"prompt": "What is 17+25? Answer with the number only."}
    assert span.outputs == "42"
    assert span.span_type == "LLM"
    assert (span.end_time_ns - span.start_time_ns) == 40_000_000


def test_assessments_are_the_reference_and_one_feedback_per_scorer():
    trace = _build(make_rows("sim-a", 2)[1])
    by_name = {a.name: a for a in trace.info.assessments}
    assert set(by_name) == {"expected_response", "exact", "numeric"}
    assert by_name["expected_response"].value == "43"
    assert by_name["exact"].value == 0.0
    assert by_name["exact"].source.source_type == "CODE"
    assert all(a.span_id == trace.span.span_id for a in trace.info.assessments)
    assert len({a.assessment_id for a in trace.info.assessments}) == 3


def test_failed_sample_has_error_state_and_error_feedback_without_value():
    trace = _build(make_rows("sim-a", 2, fail_index=0)[0])
    assert trace.info.state.value == "ERROR"
    assert trace.info.tags["error_kind"] == "rate_limited"
    assert trace.span.status.status_code.value == "ERROR"
    exact = next(a for a in trace.info.assessments if a.name == "exact")
    assert exact.value is None
    assert exact.error.error_code == "rate_limited"
    assert "HTTP 429" in exact.error.error_message
