"""The review queue: which rows of a target a person should label next for one scorer.

- ``least_confident``: scored rows whose score is nearest 0.5 (a judge's 0.5 is a shrug; a
  binary scorer's rows all tie, and then keep the run's order);
- ``disagreement``: rows where this scorer and another one (``other``, by default the first
  other scorer) give different verdicts (score >= 0.5 against below);
- ``random``: a seeded shuffle of the scored rows: the mode whose labels are a random sample,
  which the prediction-powered estimate assumes (`evalcluster.ui.labels`).

Rows already labelled for the scorer are left out; error rows never need a verdict.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalcluster.rows import SCORE_PREFIX
from evalcluster.ui.labels import AGREE_AT, RowKey
from evalcluster.ui.queries import PAGE_COLUMNS, RunTable, page_row

__all__ = ["ReviewMode", "review_queue"]

ReviewMode = Literal["least_confident", "disagreement", "random"]


def review_queue(
    run: RunTable,
    target: str,
    scorer: str,
    mode: ReviewMode,
    *,
    labelled: Collection[RowKey] = (),
    other: str | None = None,
    limit: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Up to `limit` rows to label, best first, and how many candidates there are in all.

    KeyError naming an unknown scorer (or `other`).
    """
    if scorer not in run.scorers:
        raise KeyError(scorer)
    t = run.table
    column = SCORE_PREFIX + scorer
    keep = pc.and_(
        pc.and_(pc.equal(t["target"], target), pc.is_null(t["error_kind"])),
        pc.is_valid(t[column]),
    )
    if mode == "disagreement":
        other = other or next((s for s in run.scorers if s != scorer), None)
        if other is None or other == scorer:
            return {"total": 0, "other": None, "rows": []}
        if other not in run.scorers:
            raise KeyError(other)
        mine = pc.greater_equal(t[column], AGREE_AT)
        theirs = pc.greater_equal(t[SCORE_PREFIX + other], AGREE_AT)
        keep = pc.and_(keep, pc.fill_null(pc.not_equal(mine, theirs), False))
    positions = np.flatnonzero(np.asarray(pc.fill_null(keep, False).to_numpy(), dtype=bool))
    if labelled:
        ids = t["sample_id"].take(pa.array(positions)).to_pylist()
        epochs = t["epoch"].take(pa.array(positions)).to_pylist()
        fresh = [(s, e) not in labelled for s, e in zip(ids, epochs, strict=True)]
        positions = positions[np.asarray(fresh, dtype=bool)]
    if mode == "least_confident" and len(positions):
        scores = t[column].take(pa.array(positions)).to_numpy()
        positions = positions[np.argsort(np.abs(scores - 0.5), kind="stable")]
    elif mode == "random":
        positions = np.random.default_rng(seed).permutation(positions)
    chosen = positions[:limit].tolist()
    rows = []
    if chosen:
        index = t.take(pa.array(chosen, pa.int64())).to_pylist()
        texts = run.take(chosen, PAGE_COLUMNS).to_pylist()
        rows = [
            page_row(p, row, text, run.scorers)
            for p, row, text in zip(chosen, index, texts, strict=True)
        ]
    return {"total": len(positions), "other": other, "rows": rows}
