"""A run's rows as the workbench reads them: filtered pages of samples, one sample, a summary.

Everything here reads the committed shard files of one run through one pyarrow dataset (the
files listed by `evalcluster.store.lake.list_shards`, in its order: target, shard, row), so a
running run shows what it has committed and nothing half-written.

The columns that filters and summaries need (no prompts or outputs) are read once per run and
kept in a small per-process cache (`RunTable`), keyed by the run's shard files: a new shard
makes a new entry, so a running run is never served stale rows. Text columns are read only when
a text search asks for them; a page's outputs and a sample's full row are taken by row position
from the files (`pyarrow.dataset.Dataset.take`), reading only the row groups that hold them.

A row is *right* when its score is at least `RIGHT_AT` (1.0, the pass threshold of pass@k),
*wrong* when it is scored below that, and an *error* when its provider call failed
(``error_kind`` set): errors are never wrong answers.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalcluster.errors import StoreError
from evalcluster.rows import SCORE_PREFIX
from evalcluster.scoring.stats import group_key, summary_from_moments
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.store.fs import Store
from evalcluster.store.lake import list_shards, result_schema
from evalcluster.store.layout import ShardFile, run_prefix

__all__ = [
    "RIGHT_AT",
    "Outcome",
    "RunTable",
    "SampleFilter",
    "SamplePage",
    "load_run",
    "row_scores",
    "run_summary",
    "sample_detail",
    "sample_page",
    "sample_scores",
]

RIGHT_AT = 1.0
CONFIDENCE = 0.95
PREVIEW_CHARS = 240
HISTOGRAM_BINS = 24
CACHE_RUNS = 8

Outcome = Literal["right", "wrong", "error", "scored", "unscored"]

INDEX_COLUMNS = (
    "sample_id",
    "epoch",
    "error_kind",
    "cache_hit",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "judge_cost_usd",
    "latency_ms",
    "served_by",
    "attempts",
    "metadata",
)
TEXT_COLUMNS = ("sample_id", "prompt", "output", "reference", "error")
PAGE_COLUMNS = ("output", "error", "reference")


@dataclass
class RunTable:
    """The filterable columns of one run's committed rows, with the dataset they came from.

    ``table`` has `INDEX_COLUMNS`, ``target`` and the ``score_*`` columns; row i of it is row i
    of ``dataset`` (so ``dataset.take`` fetches the rest of a row).
    """

    run_id: str
    shard_keys: tuple[str, ...]
    dataset: Any  # pyarrow.dataset.Dataset, or None for a run with no committed shard
    table: pa.Table
    scorers: tuple[str, ...]
    fragments: list[Any] = field(default_factory=list, repr=False)  # one per shard file
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64), repr=False)
    _text: pa.Table | None = field(default=None, repr=False)
    _groups: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def targets(self) -> list[str]:
        if self.table.num_rows == 0:
            return []
        return sorted(pc.unique(self.table["target"]).to_pylist())

    def text(self) -> pa.Table:
        """The text columns of every row (read on first use, then kept with the run)."""
        with self._lock:
            if self._text is None:
                self._text = _read(self.dataset, list(TEXT_COLUMNS), self.table.num_rows)
            return self._text

    def take(self, positions: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        """Rows at `positions` (row numbers of ``table``) with every column, or `columns`.

        Each row is read from its own file (found from the files' row counts), so a page or
        one sample costs the row groups that hold them, not a pass over every file's footer.
        """
        if not positions:
            return self.table.schema.empty_table()
        wanted = np.asarray(positions, dtype=np.int64)
        which = np.searchsorted(self.starts, wanted, side="right") - 1
        cols = None if columns is None else list(columns)
        parts: list[pa.Table] = []
        order: list[np.ndarray] = []
        try:
            for f in np.unique(which).tolist():
                mine = np.flatnonzero(which == f)
                local = pa.array(wanted[mine] - self.starts[f], pa.int64())
                file_cols = None if cols is None else [c for c in cols if c != "target"]
                part = self.fragments[f].take(local, columns=file_cols)
                if cols is None or "target" in cols:
                    target = self.table["target"][int(self.starts[f])].as_py()
                    part = _with_target(part, target, cols)
                parts.append(part)
                order.append(mine)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"cannot read run {self.run_id!r}: {e}") from e
        table = pa.concat_tables(parts, promote_options="default")
        back = np.empty(len(wanted), dtype=np.int64)
        back[np.concatenate(order)] = np.arange(len(wanted))
        return table.take(pa.array(back))

    def group_names(self, column: str) -> list[str]:
        """The distinct values of metadata column `column` in the run (cached)."""
        with self._lock:
            if column not in self._groups:
                self._groups[column] = sorted(set(group_values(self.table["metadata"], column)))
            return self._groups[column]


def _with_target(part: pa.Table, target: str, columns: list[str] | None) -> pa.Table:
    column = pa.array([target] * part.num_rows, pa.string())
    if "target" in part.column_names:
        return part
    part = part.append_column("target", column)
    return part if columns is None else part.select(columns)


_CACHE: OrderedDict[tuple[str, str], RunTable] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_run(store: Store, run_id: str) -> RunTable:
    """The run's filterable columns (cached while its shard files stay the same).

    A run with no committed shard gives an empty table. StoreError on unreadable files.
    """
    shards = list_shards(store, run_id)
    keys = tuple(s.key for s in shards)
    cache_key = (store.full_uri(), run_id)
    with _CACHE_LOCK:
        cached = _CACHE.get(cache_key)
        if cached is not None and cached.shard_keys == keys:
            _CACHE.move_to_end(cache_key)
            return cached
    run = _load(store, run_id, shards)
    with _CACHE_LOCK:
        _CACHE[cache_key] = run
        _CACHE.move_to_end(cache_key)
        while len(_CACHE) > CACHE_RUNS:
            _CACHE.popitem(last=False)
    return run


def _load(store: Store, run_id: str, shards: list[ShardFile]) -> RunTable:
    keys = tuple(s.key for s in shards)
    if not shards:
        empty = result_schema([]).empty_table().select(["target", *INDEX_COLUMNS])
        return RunTable(run_id, keys, None, empty, ())
    import pyarrow.dataset as ds  # imports pandas: only when the workbench reads a run

    filesystem, base = store.arrow_filesystem_and_path(run_prefix(run_id).rstrip("/"))
    paths = [store.arrow_filesystem_and_path(s.key).path for s in shards]
    try:
        dataset = ds.dataset(
            paths,
            filesystem=filesystem,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("target", pa.string())]), flavor="hive"),
            partition_base_dir=base,
        )
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read run {run_id!r}: {e}") from e
    scorers = tuple(
        n[len(SCORE_PREFIX) :] for n in dataset.schema.names if n.startswith(SCORE_PREFIX)
    )
    columns = ["target", *INDEX_COLUMNS, *(SCORE_PREFIX + s for s in scorers)]
    fragments = list(dataset.get_fragments())
    batches, counts = [], {f.path: 0 for f in fragments}
    try:
        for tagged in dataset.scanner(columns=columns).scan_batches():
            batches.append(tagged.record_batch)
            counts[tagged.fragment.path] += tagged.record_batch.num_rows
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read run {run_id!r}: {e}") from e
    schema = pa.schema([dataset.schema.field(c) for c in columns])
    table = pa.Table.from_batches(batches, schema=schema)
    starts = np.cumsum([0] + [counts[f.path] for f in fragments[:-1]]).astype(np.int64)
    return RunTable(run_id, keys, dataset, table, scorers, fragments, starts)


def _read(dataset: Any, columns: list[str], expected_rows: int | None) -> pa.Table:
    try:
        table = dataset.to_table(columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read the run's files: {e}") from e
    if expected_rows is not None and table.num_rows != expected_rows:
        raise StoreError("the run's files changed while they were read")
    return table


# -- filtering and paging ----------------------------------------------------------------------


@dataclass(frozen=True)
class SampleFilter:
    """Which rows a samples page shows; every field left None matches every row."""

    target: str | None = None
    scorer: str | None = None  # the score that `outcome`, `min_score` and `max_score` look at
    outcome: Outcome | None = None
    min_score: float | None = None
    max_score: float | None = None
    error_kind: str | None = None  # "any" for every error
    group: tuple[str, str] | None = None  # (metadata column, value); "null" for missing
    text: str | None = None  # case-insensitive, in the sample id, prompt, output or reference


@dataclass(frozen=True)
class SamplePage:
    """A page of matching rows and how many match in all."""

    total: int
    offset: int
    limit: int
    rows: list[dict[str, Any]]
    scorers: list[str]
    targets: list[str]


def _score_column(run: RunTable, scorer: str | None) -> str | None:
    if scorer is None:
        return SCORE_PREFIX + run.scorers[0] if run.scorers else None
    if scorer not in run.scorers:
        raise KeyError(scorer)
    return SCORE_PREFIX + scorer


def filter_mask(run: RunTable, f: SampleFilter) -> pa.ChunkedArray | pa.Array:
    """True for the rows of `run` that `f` matches. KeyError naming an unknown scorer."""
    t = run.table
    mask: Any = pa.array(np.ones(t.num_rows, dtype=bool))
    if f.target is not None:
        mask = pc.and_(mask, pc.equal(t["target"], f.target))
    score_col = _score_column(run, f.scorer)
    error = pc.is_valid(t["error_kind"])
    if f.outcome is not None or f.min_score is not None or f.max_score is not None:
        if score_col is None and f.outcome not in ("error", None):
            return pa.array(np.zeros(t.num_rows, dtype=bool))
        score = t[score_col] if score_col is not None else None
        if f.outcome == "error":
            mask = pc.and_(mask, error)
        elif f.outcome is not None and score is not None:
            ok = pc.and_(pc.invert(error), pc.is_valid(score))
            if f.outcome == "right":
                ok = pc.and_(ok, pc.greater_equal(score, RIGHT_AT))
            elif f.outcome == "wrong":
                ok = pc.and_(ok, pc.less(score, RIGHT_AT))
            elif f.outcome == "unscored":
                ok = pc.and_(pc.invert(error), pc.is_null(score))
            mask = pc.and_(mask, ok)
        if f.min_score is not None and score is not None:
            mask = pc.and_(mask, pc.greater_equal(score, f.min_score))
        if f.max_score is not None and score is not None:
            mask = pc.and_(mask, pc.less_equal(score, f.max_score))
    if f.error_kind is not None:
        kind = error if f.error_kind == "any" else pc.equal(t["error_kind"], f.error_kind)
        mask = pc.and_(mask, kind)
    if f.group is not None:
        column, value = f.group
        groups = pa.array(group_values(t["metadata"], column))
        mask = pc.and_(mask, pc.equal(groups, value))
    if f.text:
        mask = pc.and_(mask, _text_match(run.text(), f.text))
    return pc.fill_null(mask, False)


def _text_match(text: pa.Table, needle: str) -> Any:
    found: Any = None
    for column in ("sample_id", "prompt", "output", "reference"):
        hit = pc.fill_null(pc.match_substring(text[column], needle, ignore_case=True), False)
        found = hit if found is None else pc.or_(found, hit)
    return found


def group_values(metadata: pa.ChunkedArray | pa.Array, column: str) -> list[str]:
    """Each row's value of metadata column `column` as a group name ("null" when missing).

    Each distinct metadata text is parsed once: samples share few of them in most suites.
    """
    encoded = pc.dictionary_encode(metadata)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    out: list[str] = []
    for chunk in chunks:
        names = [_group_of(text, column) for text in chunk.dictionary.to_pylist()]
        lookup = np.array([*names, group_key(None)], dtype=object)  # the last: a null text
        indices = pc.fill_null(chunk.indices, len(names)).to_numpy()
        out.extend(lookup[indices].tolist())
    return out


def _group_of(text: str | None, column: str) -> str:
    try:
        metadata = json.loads(text or "{}")
    except ValueError:
        return group_key(None)
    return group_key(metadata.get(column) if isinstance(metadata, dict) else None)


def sample_page(run: RunTable, f: SampleFilter, offset: int, limit: int) -> SamplePage:
    """Rows `offset` to `offset + limit` of those `f` matches, in the run's order.

    KeyError naming an unknown scorer.
    """
    mask = filter_mask(run, f)
    positions = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    chosen = positions[offset : offset + limit].tolist()
    rows: list[dict[str, Any]] = []
    if chosen:
        index = run.table.take(pa.array(chosen, pa.int64())).to_pylist()
        texts = run.take(chosen, PAGE_COLUMNS).to_pylist()
        for position, row, text in zip(chosen, index, texts, strict=True):
            rows.append(page_row(position, row, text, run.scorers))
    return SamplePage(
        total=len(positions),
        offset=offset,
        limit=limit,
        rows=rows,
        scorers=list(run.scorers),
        targets=run.targets,
    )


def _preview(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[:PREVIEW_CHARS] + "…"


def page_row(
    position: int, row: dict[str, Any], text: dict[str, Any], scorers: Sequence[str]
) -> dict[str, Any]:
    return json_safe(
        {
            "row": position,
            "target": row["target"],
            "sample_id": row["sample_id"],
            "epoch": row["epoch"],
            "scores": {s: row[SCORE_PREFIX + s] for s in scorers},
            "error_kind": row["error_kind"],
            "error": _preview(text["error"]),
            "output": _preview(text["output"]),
            "reference": _preview(text["reference"]),
            "latency_ms": row["latency_ms"],
            "cost_usd": row["cost_usd"] + row["judge_cost_usd"],
            "cache_hit": row["cache_hit"],
            "served_by": row["served_by"],
        }
    )


def find_row(run: RunTable, target: str, sample_id: str, epoch: int) -> int | None:
    """The row number of (target, sample, epoch) in `run`, or None."""
    t = run.table
    if t.num_rows == 0:
        return None
    mask = pc.and_(
        pc.and_(pc.equal(t["target"], target), pc.equal(t["sample_id"], sample_id)),
        pc.equal(t["epoch"], epoch),
    )
    found = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(found[0]) if len(found) else None


def sample_detail(run: RunTable, target: str, sample_id: str, epoch: int) -> dict[str, Any] | None:
    """Every column of one row (prompt, output, reference, scores, judge, provider, attempts,
    latency, cost, ...), with ``judge`` parsed when it is JSON; None when there is no such row."""
    position = find_row(run, target, sample_id, epoch)
    if position is None:
        return None
    row = run.take([position]).to_pylist()[0]
    row["target"] = target
    row["run_id"] = run.run_id
    row["row"] = position
    row["scores"] = {s: row.pop(SCORE_PREFIX + s, None) for s in run.scorers}
    for name in ("judge", "metadata"):
        if isinstance(row.get(name), str):
            with contextlib.suppress(ValueError):  # else shown as the text it is
                row[name] = json.loads(row[name])
    return json_safe(row)


# -- summaries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleScores:
    """One target's per-sample scores on one scorer: the mean over the sample's scored
    epochs (errors left out), in the run's order, with each sample's metadata text."""

    sample_ids: list[str]
    scores: np.ndarray
    metadata: pa.Array


def sample_scores(run: RunTable, target: str, scorer: str) -> SampleScores:
    """Per-sample means of `scorer` for `target`. KeyError naming an unknown scorer."""
    column = _score_column(run, scorer)
    assert column is not None
    t = run.table
    keep = pc.and_(
        pc.and_(pc.equal(t["target"], target), pc.is_null(t["error_kind"])),
        pc.is_valid(t[column]),
    )
    rows = t.filter(keep).select(["sample_id", "metadata", column])
    if pc.count_distinct(rows["sample_id"]).as_py() == rows.num_rows:  # one epoch: no means
        return SampleScores(
            rows["sample_id"].to_pylist(),
            rows[column].to_numpy(),
            rows["metadata"].combine_chunks(),
        )
    grouped = rows.group_by("sample_id", use_threads=False).aggregate(
        [(column, "mean"), ("metadata", "first")]
    )
    return SampleScores(
        grouped["sample_id"].to_pylist(),
        grouped[f"{column}_mean"].to_numpy(),
        grouped["metadata_first"].combine_chunks(),
    )


def row_scores(run: RunTable, target: str, scorer: str) -> dict[tuple[str, int], float | None]:
    """Each row's score of `target` on `scorer` by (sample id, epoch); None for an error row
    or an unscored one. KeyError naming an unknown scorer."""
    column = _score_column(run, scorer)
    assert column is not None
    t = run.table
    rows = t.filter(pc.equal(t["target"], target))
    scores = pc.if_else(pc.is_valid(rows["error_kind"]), None, rows[column]).to_pylist()
    keys = zip(rows["sample_id"].to_pylist(), rows["epoch"].to_pylist(), strict=True)
    return dict(zip(keys, scores, strict=True))


def _summary_of(values: np.ndarray) -> dict[str, Any]:
    """`evalcluster.scoring.stats.summarize` of `values`, its moments taken by numpy."""
    n = len(values)
    if n == 0:
        return summary_from_moments(0, 0.0, 0.0, False, confidence=CONFIDENCE).to_dict()
    mean = float(values.mean())
    m2 = float(((values - mean) ** 2).sum())
    binary = bool(np.all((values == 0.0) | (values == 1.0)))
    return summary_from_moments(n, mean, m2, binary, confidence=CONFIDENCE).to_dict()


def _histogram(values: np.ndarray) -> dict[str, Any] | None:
    if len(values) == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if low == high:  # numpy would invent a range of +-0.5 around the one value
        return {"edges": [low, high], "counts": [len(values)]}
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def run_summary(run: RunTable, group_by: Sequence[str] = ()) -> dict[str, Any]:
    """Per target: rows, samples, errors by kind, cache hits, tokens, cost, latency
    percentiles and distributions (answered calls, cache hits left out), and per scorer the
    mean with its interval overall and per group of each `group_by` metadata column."""
    targets: dict[str, Any] = {}
    t = run.table
    for target in run.targets:
        rows = t.filter(pc.equal(t["target"], target))
        error = pc.is_valid(rows["error_kind"])
        answered = pc.and_(pc.invert(error), pc.invert(rows["cache_hit"]))
        latency = rows.filter(answered)["latency_ms"].to_numpy()
        cost = pc.add(rows["cost_usd"], rows["judge_cost_usd"])
        kinds = pc.value_counts(rows.filter(error)["error_kind"]).to_pylist()
        scorers: dict[str, Any] = {}
        for scorer in run.scorers:
            per_sample = sample_scores(run, target, scorer)
            entry = _summary_of(per_sample.scores)
            entry["groups"] = {column: _group_summaries(per_sample, column) for column in group_by}
            scorers[scorer] = entry
        targets[target] = {
            "rows": rows.num_rows,
            "samples": len(pc.unique(rows["sample_id"])),
            "errors": int(pc.sum(error).as_py() or 0),
            "error_kinds": {k["values"]: k["counts"] for k in kinds},
            "cache_hits": int(pc.sum(rows["cache_hit"]).as_py() or 0),
            "input_tokens": int(pc.sum(rows["input_tokens"]).as_py() or 0),
            "output_tokens": int(pc.sum(rows["output_tokens"]).as_py() or 0),
            "cost_usd": float(pc.sum(cost).as_py() or 0.0),
            "latency_ms": _percentiles(latency),
            "latency_histogram": _histogram(latency),
            "cost_histogram": _histogram(cost.to_numpy()),
            "served_by": {
                k["values"]: k["counts"] for k in pc.value_counts(rows["served_by"]).to_pylist()
            },
            "scorers": scorers,
        }
    return json_safe({"run_id": run.run_id, "confidence": CONFIDENCE, "targets": targets})


def _group_summaries(per_sample: SampleScores, column: str) -> dict[str, Any]:
    names = np.array(group_values(per_sample.metadata, column), dtype=object)
    return {
        name: _summary_of(per_sample.scores[names == name]) for name in sorted(set(names.tolist()))
    }
