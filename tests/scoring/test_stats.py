import json
import math
import random

import pytest
from scipy import stats

from evalcluster.scoring.stats import (
    AccumulatorKey,
    ScoreAccumulator,
    ScoreAccumulators,
    Summary,
    group_by,
    summarize,
    wilson_interval,
)


def test_summarize_empty_and_single() -> None:
    assert summarize([]) == Summary(0, None, None, None, None, None)
    assert summarize([None, None]).n == 0
    single = summarize([0.7])
    assert (single.n, single.mean, single.stderr, single.ci_low, single.method) == (
        1,
        0.7,
        None,
        None,
        None,
    )


def test_summarize_hand_computed_continuous_values() -> None:
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squared deviations 32, sample variance 32/7.
    s = summarize([2, 4, 4, 4, 5, 5, 7, 9])
    assert s.n == 8 and s.mean == 5.0
    assert s.stderr == pytest.approx(math.sqrt(32 / 7) / math.sqrt(8), rel=1e-15)
    half = 2.364624251592785 * s.stderr  # t(0.975, 7)
    assert (s.ci_low, s.ci_high) == pytest.approx((5 - half, 5 + half), rel=1e-12)
    assert s.method == "t"


@pytest.mark.parametrize("n", [2, 3, 5, 12, 40, 300])
def test_t_interval_matches_scipy(n: int) -> None:
    rng = random.Random(n)
    xs = [rng.uniform(0, 1) for _ in range(n)]
    s = summarize(xs)
    low, high = stats.t.interval(0.95, n - 1, loc=stats.tmean(xs), scale=stats.sem(xs))
    assert s.stderr == pytest.approx(stats.sem(xs), rel=1e-12)
    assert (s.ci_low, s.ci_high) == pytest.approx((low, high), rel=1e-10)
    s90 = summarize(xs, confidence=0.9)
    low, high = stats.t.interval(0.9, n - 1, loc=stats.tmean(xs), scale=stats.sem(xs))
    assert (s90.ci_low, s90.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_summarize_skips_none_and_rejects_nan() -> None:
    assert summarize([1.0, None, 0.5]).n == 2
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (81, 263), (1, 1), (0, 1)])
def test_binary_scores_use_wilson_matching_scipy(k: int, n: int) -> None:
    s = summarize([1.0] * k + [0.0] * (n - k))
    assert s.method == "wilson"
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15)
    assert s.mean == k / n


def test_wilson_hand_computed_example() -> None:
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half-width 0.2338... / 1.38416.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6)
    assert high == pytest.approx(0.9433178, abs=1e-6)


def test_all_correct_binary_interval_is_not_degenerate() -> None:
    s = summarize([1.0] * 5)
    assert s.ci_high == 1.0 and s.ci_low == pytest.approx(0.5655, abs=1e-4)
    assert s.stderr == 0.0


def test_interval_can_be_forced() -> None:
    assert summarize([0.0, 1.0, 1.0], interval="t").method == "t"
    assert summarize([0.0, 1.0, 1.0]).method == "wilson"


def test_accumulator_merge_equals_one_pass() -> None:
    rng = random.Random(7)
    values = [rng.gauss(1e6, 3.0) for _ in range(3001)]  # a large mean, a small spread
    one = ScoreAccumulator()
    for v in values:
        one.add(v)
    shards = [ScoreAccumulator() for _ in range(7)]
    for i, v in enumerate(values):
        shards[i % 7].add(v)
    merged = ScoreAccumulator()
    for shard in shards:
        merged.merge(shard)
    direct = summarize(values)
    for acc in (one, merged):
        s = acc.summary()
        assert s.n == direct.n
        assert s.mean == pytest.approx(direct.mean, rel=1e-14)
        assert s.stderr == pytest.approx(direct.stderr, rel=1e-9)
        assert (s.ci_low, s.ci_high) == pytest.approx((direct.ci_low, direct.ci_high), rel=1e-14)
    assert merged.summary().stderr == pytest.approx(stats.sem(values), rel=1e-9)


def test_accumulator_keeps_binary_flag_and_roundtrips_json() -> None:
    a, b = ScoreAccumulator(), ScoreAccumulator()
    for v in (1.0, 0.0, None, 1.0):
        a.add(v)
    assert a.n == 3 and a.summary().method == "wilson"
    b.add(0.5)
    restored = ScoreAccumulator.from_dict(json.loads(json.dumps(a.to_dict())))
    assert restored == a
    assert restored.merge(b).summary().method == "t"
    empty = ScoreAccumulator()
    assert empty.merge(ScoreAccumulator()).summary().n == 0
    assert ScoreAccumulator().merge(a) == a


def test_keyed_accumulators_merge_across_shards() -> None:
    overall = AccumulatorKey("gpt", "exact")
    easy = AccumulatorKey("gpt", "exact", ("difficulty", "easy"))
    shard1, shard2 = ScoreAccumulators(), ScoreAccumulators()
    for v in (1.0, 0.0):
        shard1.add(overall, v)
    shard1.add(easy, 1.0)
    shard2.add(overall, 1.0)
    shard2.add(AccumulatorKey("claude", "exact"), 0.0)
    merged = shard1.merge(shard2)
    summaries = merged.summaries()
    assert summaries[overall].n == 3 and summaries[overall].mean == pytest.approx(2 / 3)
    assert summaries[easy].n == 1
    assert set(merged.keys()) == {overall, easy, AccumulatorKey("claude", "exact")}


def test_group_by_metadata_column() -> None:
    rows = [
        {"difficulty": "easy", "score_exact": 1.0},
        {"difficulty": "easy", "score_exact": 1.0},
        {"difficulty": "hard", "score_exact": 0.0},
        {"difficulty": "hard", "score_exact": 1.0},
        {"difficulty": None, "score_exact": 0.0},
        {"score_exact": 1.0},
        {"difficulty": 3, "score_exact": None},
    ]
    groups = group_by(rows, "difficulty", "score_exact")
    assert list(groups) == ["3", "easy", "hard", "null"]
    assert groups["easy"].mean == 1.0 and groups["easy"].n == 2
    assert groups["hard"].mean == 0.5
    assert groups["null"].n == 2 and groups["null"].mean == 0.5
    assert groups["3"].n == 0 and groups["3"].mean is None
