"""Names of the group_by metrics (no server): every one must pass MLflow's own validation."""

from __future__ import annotations

from mlflow.utils.validation import _validate_metric_name

from evalcluster.tracking.tracker import group_metrics


def _target(values: list[str], column: str = "topic") -> dict:
    groups = {
        v: {"n": i + 1, "mean": 0.5, "ci_low": 0.1, "ci_high": 0.9} for i, v in enumerate(values)
    }
    return {"scorers": {"exact": {"mean": 0.5, "groups": {column: groups}}}}


def test_odd_values_become_valid_distinct_metric_names():
    values = ["a/b", "a_b", "..", ".", "", "x=y", "é", "z" * 400, "plain name-1.0"]
    metrics, capped = group_metrics(_target(values, column="top/ic"))
    assert capped == ""
    for name in metrics:
        _validate_metric_name(name)
        assert len(name) <= 250
    means = [name for name in metrics if name.endswith("/mean")]
    assert len(means) == len(values)  # no two values share a name
    # "/" in the column becomes "_", plus a hash of the column's name
    assert all(name.split("/")[1].startswith("by_top_ic_") for name in metrics)
    assert any(name.split("/")[2] == "plain name-1.0" for name in means)  # kept as written


def test_only_the_largest_groups_are_logged_and_the_cap_is_reported():
    metrics, capped = group_metrics(_target([f"v{i:03d}" for i in range(150)]), max_groups=100)
    values = {name.split("/")[2] for name in metrics}
    assert len(values) == 100
    assert "v149" in values and "v049" not in values  # n grows with i: the largest are kept
    assert capped == "topic: the 100 largest of 150 groups logged (the others are in summary.json)"


def test_summaries_without_groups_give_no_metrics():
    assert group_metrics({}) == ({}, "")
    assert group_metrics({"scorers": {"exact": {"mean": 1.0, "groups": {}}}}) == ({}, "")
