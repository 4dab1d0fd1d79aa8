"""The workbench's queries and labels over S3 (moto's server over real HTTP)."""

from __future__ import annotations

from evalcluster.store.lake import read_results
from evalcluster.ui.compare import compare_targets
from evalcluster.ui.labels import LabelRequest, append_label, new_label, read_labels
from evalcluster.ui.queries import SampleFilter, load_run, run_summary, sample_detail, sample_page
from tests.store.conftest import s3_endpoint, s3_store  # noqa: F401 - fixtures
from tests.ui.lake_rows import write_run

RUN = "run-s3-ui"


def test_pages_samples_summaries_and_labels_read_from_s3(s3_store):  # noqa: F811
    write_run(s3_store, RUN, ["t0", "t1"], 90, shard_size=20)
    run = load_run(s3_store, RUN)
    page = sample_page(run, SampleFilter(target="t1", outcome="wrong"), 5, 10)
    assert page.total == 30 and len(page.rows) == 10
    assert all(r["scores"]["exact"] == 0.0 and r["target"] == "t1" for r in page.rows)
    everything = read_results(s3_store, RUN, columns=["sample_id", "output"]).to_pylist()
    first = sample_page(run, SampleFilter(), 85, 10)
    assert [r["output"] for r in first.rows] == [r["output"] for r in everything[85:95]]
    detail = sample_detail(run, "t0", "s00044", 0)
    assert detail["prompt"] == "What is 44+1?"
    summary = run_summary(run, ["level"])
    assert summary["targets"]["t0"]["scorers"]["exact"]["n"] == 90
    assert compare_targets(run, "t0", run, "t1", "exact")["flipped"] == 0
    for i in range(3):
        request = LabelRequest(target="t0", sample_id=f"s0000{i}", scorer="exact", verdict=1)
        append_label(s3_store, new_label(request, RUN, "team-b", "k"))
    labels = read_labels(s3_store, RUN)
    assert [lab.sample_id for lab in labels] == ["s00000", "s00001", "s00002"]
    assert load_run(s3_store, RUN) is run  # labels are not shards: the cache holds
