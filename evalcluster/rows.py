"""The result row: one sample x target x epoch, named and typed here for every layer.

`ResultRow` is the contract: its keys are the base columns in file order and its annotations
their types. The shard task builds rows of it (`jobs/shard.py`), the store derives the Parquet
schema from it (`store/lake.py`, `arrow_type` of each annotation) and the readers (summary,
workbench, command line) name columns from it. A scorer named `exact` adds `score_exact`
(float, null for an error row) after the base columns: runs differ in their scorers, so those
columns are found by `SCORE_PREFIX`.

This module imports nothing of ours, nor pyarrow, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, TypedDict, get_type_hints

__all__ = [
    "ADDED_COLUMNS",
    "BASE_COLUMNS",
    "INT32",
    "PARTITION_COLUMNS",
    "SCORE_PREFIX",
    "ResultRow",
    "base_column_types",
    "score_column",
    "scorer_names",
]

SCORE_PREFIX = "score_"

# Marks an `int` column stored as 32 bits (the others are 64).
INT32 = "int32"


class ResultRow(TypedDict):
    """The base columns of a result row, in file order; `X | None` columns may be null."""

    run_id: str
    suite: str
    suite_version: str
    target: str
    provider: str  # the configured provider
    served_by: str  # who answered (differs on fallback)
    model: str
    sample_id: str
    epoch: Annotated[int, INT32]
    prompt: str
    reference: str | None
    output: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    usage_estimated: bool
    cost_usd: float
    latency_ms: float
    attempts: Annotated[int, INT32]
    cache_hit: bool
    error_kind: str | None
    error: str | None
    request_hash: str
    finished_at: datetime  # timezone-aware, stored as UTC microseconds
    metadata: str  # JSON object of the sample's metadata columns
    judge: str | None  # JSON of the judges' raw verdicts
    judge_input_tokens: int
    judge_output_tokens: int
    judge_cost_usd: float
    # What was paid: the answer came through the batch API; input tokens read from the
    # vendor's prompt cache; what batching and caching saved on the row's calls (the answer's
    # and its judges'), against the same calls sent sync with no cache.
    batch: bool
    cached_input_tokens: int
    usd_saved_batch: float
    usd_saved_cache: float


BASE_COLUMNS: tuple[str, ...] = tuple(ResultRow.__annotations__)

# Columns that files written before them lack: readers give them as null.
ADDED_COLUMNS = frozenset({"batch", "cached_input_tokens", "usd_saved_batch", "usd_saved_cache"})

# Hive partition columns: in the path (run_id=<id>/target=<name>/), not in the files. Written
# in the files too, pyarrow.parquet.read_table and pandas (which read partitions as
# dictionaries) refuse to merge them with the files' string columns.
PARTITION_COLUMNS = ("run_id", "target")


def base_column_types() -> dict[str, Any]:
    """Each base column's annotation, resolved (`Annotated` markers kept), in file order."""
    return get_type_hints(ResultRow, include_extras=True)


def score_column(scorer: str) -> str:
    """The result column of `scorer`."""
    return SCORE_PREFIX + scorer


def scorer_names(columns: Iterable[str]) -> list[str]:
    """The scorers whose columns are among `columns`, in their order."""
    return [c[len(SCORE_PREFIX) :] for c in columns if c.startswith(SCORE_PREFIX)]
