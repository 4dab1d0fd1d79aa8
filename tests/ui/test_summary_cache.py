"""The per-replica summary cache (ui/summary_cache.py) keyed as the summary route keys it:
computed once per set of committed shards and labels, recomputed when either grows."""

from __future__ import annotations

from evalcluster.store.fs import open_store
from evalcluster.store.lake import commit_shard
from evalcluster.ui.labels import LabelRequest, append_label, new_label, read_labels
from evalcluster.ui.queries import load_run, run_summary
from evalcluster.ui.summary_cache import SummaryCache, summary_key
from tests.ui.lake_rows import SCORERS, make_row, write_run

RUN = "run-cache"


def _summary(cache: SummaryCache, store, computed: list[int]) -> dict:
    run = load_run(store, RUN)
    labels = read_labels(store, RUN)
    key = summary_key(store.full_uri(), RUN, run.shard_keys, len(labels), ("level",))

    def compute() -> dict:
        computed.append(1)
        return run_summary(run, ["level"])

    return cache.get(key, compute)


def test_a_summary_is_computed_once_until_a_shard_or_a_label_arrives(tmp_path):
    store = open_store(str(tmp_path / "store"))
    write_run(store, RUN, ["t0"], 20, shard_size=10)
    cache, computed = SummaryCache(), []

    first = _summary(cache, store, computed)
    again = _summary(cache, store, computed)
    assert len(computed) == 1 and cache.hits == 1
    assert again == first and again is not first  # each caller may add its own fields
    again["status"] = "changed"
    assert "status" not in _summary(cache, store, computed)

    rows = [make_row(RUN, "t0", i) for i in range(20, 25)]
    commit_shard(store, RUN, "t0", 2, rows, list(SCORERS))
    grown = _summary(cache, store, computed)
    assert len(computed) == 2 and grown["targets"]["t0"]["rows"] == 25

    label = new_label(
        LabelRequest(target="t0", sample_id="s00001", epoch=0, scorer="exact", verdict=0.0),
        RUN,
        "team-b",
        "key-1",
    )
    append_label(store, label)
    _summary(cache, store, computed)
    assert len(computed) == 3
    assert len(cache._entries) == 1  # the older keys of the run are dropped


def test_the_cache_keeps_at_most_its_size(tmp_path):
    cache = SummaryCache(size=2)
    for i in range(3):
        cache.get(("s", f"run-{i}", (), 0, ()), lambda i=i: {"i": i})
    assert [k[1] for k in cache._entries] == ["run-1", "run-2"]
