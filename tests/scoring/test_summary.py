import json

import pytest

from evalcluster.scoring import compare_paired, scores_by_sample
from tests.scoring.summary_oracle import summary_for_rows


def row(target, sample, epoch=0, error_kind=None, **scores):
    out = {"target": target, "sample_id": sample, "epoch": epoch, "error_kind": error_kind}
    out.update({f"score_{k}": v for k, v in scores.items()})
    return out


def test_single_epoch_summary_excludes_errors_and_counts_them() -> None:
    rows = [
        {**row("gpt", "s1", exact=1.0, numeric=1.0), "difficulty": "easy"},
        {**row("gpt", "s2", exact=0.0, numeric=1.0), "difficulty": "hard"},
        {**row("gpt", "s3", exact=1.0, numeric=0.0), "difficulty": "easy"},
        {**row("gpt", "s4", error_kind="rate_limited"), "difficulty": "hard"},
        {**row("gpt", "s5", exact=None, numeric=1.0), "difficulty": "hard"},
        {**row("claude", "s1", error_kind="timeout")},
    ]
    summary = summary_for_rows(rows, group_by=["difficulty"])
    json.dumps(summary, allow_nan=False)  # it must be valid summary.json
    gpt = summary["targets"]["gpt"]
    assert (gpt["rows"], gpt["samples"], gpt["epochs"], gpt["errors"]) == (5, 5, 1, 1)
    assert gpt["error_kinds"] == {"rate_limited": 1}
    exact = gpt["scorers"]["exact"]
    assert exact["n"] == 3 and exact["mean"] == pytest.approx(2 / 3)
    assert exact["method"] == "wilson" and exact["unscored"] == 1 and exact["rows_scored"] == 3
    assert exact["groups"]["difficulty"]["easy"]["mean"] == 1.0
    assert exact["groups"]["difficulty"]["hard"]["n"] == 1
    assert "pass_at_k" not in exact
    assert gpt["scorers"]["numeric"]["mean"] == pytest.approx(3 / 4)
    claude = summary["targets"]["claude"]
    assert claude["errors"] == 1 and claude["scorers"] == {}


def test_multi_epoch_summary_averages_epochs_and_reports_pass_at_k() -> None:
    rows = [
        row("m", "a", 0, exact=1.0),
        row("m", "a", 1, exact=0.0),
        row("m", "a", 2, exact=0.0),
        row("m", "b", 0, exact=0.0),
        row("m", "b", 1, exact=0.0),
        row("m", "b", 2, exact=0.0),
        row("m", "c", 0, exact=1.0),
        row("m", "c", 1, exact=1.0),
        row("m", "c", 2, error_kind="server_error"),
    ]
    summary = summary_for_rows(rows, scorers=["exact"])
    exact = summary["targets"]["m"]["scorers"]["exact"]
    assert summary["targets"]["m"]["epochs"] == 3
    assert exact["n"] == 3  # samples, not rows
    assert exact["mean"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert exact["method"] == "t"
    assert set(exact["pass_at_k"]) == {"1", "3"}
    p1, p3 = exact["pass_at_k"]["1"], exact["pass_at_k"]["3"]
    assert p1["mean"] == pytest.approx((1 / 3 + 0 + 1) / 3) and p1["skipped"] == 0
    assert p3["n"] == 2 and p3["skipped"] == 1  # c has only two scored epochs
    assert p3["mean"] == pytest.approx(0.5)
    custom_k = summary_for_rows(rows, pass_ks=[2])["targets"]["m"]["scorers"]["exact"]
    assert custom_k["pass_at_k"]["2"]["mean"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_scores_by_sample_feeds_compare_paired() -> None:
    rows = [row("old", f"s{i}", exact=float(i % 3 == 0)) for i in range(30)]
    rows += [row("new", f"s{i}", exact=1.0) for i in range(29)]
    rows.append(row("new", "s29", error_kind="timeout"))
    old, new = scores_by_sample(rows, "old", "exact"), scores_by_sample(rows, "new", "exact")
    assert "s29" not in new and len(old) == 30
    result = compare_paired(old, new)
    assert result.n == 29 and result.dropped_a == 1
    assert result.b_better == 19 and result.a_better == 0
    assert result.method == "mcnemar_exact" and result.p_value == pytest.approx(2 / 2**19)


def test_group_rows_line_up_scorers_per_value_and_keep_the_largest() -> None:
    from evalcluster.scoring.summary import group_columns, group_rows

    rows = [
        {**row("gpt", f"s{i}", exact=float(i % 2), numeric=1.0 if i else None), "topic": topic}
        for i, topic in enumerate(["algebra", "algebra", "algebra", "geometry", "geometry", "x"])
    ]
    summary = summary_for_rows(rows, group_by=["topic"])
    assert group_columns(summary) == ["topic"]
    gpt = summary["targets"]["gpt"]
    groups, left_out = group_rows(gpt, "topic")
    assert [(g.value, g.n) for g in groups] == [("algebra", 3), ("geometry", 2), ("x", 1)]
    assert left_out == 0
    assert groups[0].scorers["exact"]["n"] == 3
    assert groups[0].scorers["numeric"]["n"] == 2  # s0 has no numeric score
    assert groups[0].scorers["exact"]["mean"] == pytest.approx(1 / 3)
    largest, left_out = group_rows(gpt, "topic", limit=2)
    assert [g.value for g in largest] == ["algebra", "geometry"] and left_out == 1
    assert group_rows(gpt, "missing") == ([], 0)
    assert group_columns({"targets": {"gpt": {"scorers": {"exact": {}}}}}) == []
