"""Human review labels: stored append-only beside the run, and what they change.

A label is one person's verdict (0 to 1, usually 0 or 1) on one row (target, sample, epoch) for
one scorer, with an optional comment, who gave it (tenant and key id, never the key) and when.
Each label is its own object, written once with a conditional put::

    runs/run_id=<id>/_labels/<time>-<random>.json

so concurrent reviewers never overwrite each other and the history stays whole; the newest
label of a row counts. The folder starts with ``_``, so pyarrow's and DuckDB's readers of the
runs never take it for results.

From the labels of one target and scorer (`human_summary`):

- the human-corrected mean: the scorer's scores with each labelled row's score replaced by
  its human verdict;
- judge-human agreement: Cohen's kappa of the scorer's verdict (score >= 0.5) against the
  human's, on the labelled rows, with the raw agreement;
- a prediction-powered estimate of the mean human verdict (Angelopoulos, Bates, Fannjiang,
  Jordan & Zrnic 2023, "Prediction-powered inference", Science 382(6671)): the scorer's mean
  over every scored row plus the mean human-minus-scorer difference on the labelled rows, the
  "rectifier". Its variance is Var(scorer)/N + Var(human - scorer)/n and the interval is the
  normal one (their mean estimation, section 2 and algorithm 1). Labelled rows are assumed to
  be a random sample of the rows; a queue of the least confident items is not one, so the
  estimate is only as good as that assumption (the review queue's ``random`` mode gives it).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.scoring.distributions import normal_quantile
from evalcluster.store.fs import LocalStore, Store
from evalcluster.store.layout import run_prefix

__all__ = [
    "AGREE_AT",
    "Kappa",
    "Label",
    "LabelRequest",
    "PpiEstimate",
    "append_label",
    "cohen_kappa",
    "human_summary",
    "label_key",
    "latest_verdicts",
    "new_label",
    "prediction_powered_mean",
    "read_labels",
]

AGREE_AT = 0.5  # a score or verdict at or above it counts as "right" for the agreement
MAX_COMMENT = 4000
_READ_WINDOW = 16

RowKey = tuple[str, int]  # (sample_id, epoch)


class LabelRequest(BaseModel):
    """A reviewer's verdict on one row for one scorer, as the client sends it."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=128, description="The row's target.")
    sample_id: str = Field(min_length=1, max_length=1024, description="The row's sample id.")
    epoch: int = Field(0, ge=0, le=1_000_000, description="The row's epoch.")
    scorer: str = Field(min_length=1, max_length=128, description="The scorer it corrects.")
    verdict: float = Field(
        ge=0, le=1, allow_inf_nan=False, description="The human score: 1 right, 0 wrong."
    )
    comment: str = Field("", max_length=MAX_COMMENT, description="Why, in the reviewer's words.")


class Label(LabelRequest):
    """A stored label: the request, the run, who and when."""

    label_id: str
    run_id: str
    tenant: str
    key_id: str = Field(description="Which of the tenant's keys gave it (a digest prefix).")
    created_at: str


def label_key(run_id: str, label_id: str) -> str:
    """``runs/run_id=<id>/_labels/<label_id>.json``."""
    return f"{labels_prefix(run_id)}{label_id}.json"


def labels_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}_labels/"


def new_label(
    request: LabelRequest, run_id: str, tenant: str, key_id: str, now: datetime | None = None
) -> Label:
    """A label for `request`, with an id that sorts by time (then at random)."""
    now = now or datetime.now(UTC)
    label_id = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(6)}"
    return Label(
        **request.model_dump(),
        label_id=label_id,
        run_id=run_id,
        tenant=tenant,
        key_id=key_id,
        created_at=now.isoformat(),
    )


def append_label(store: Store, label: Label) -> None:
    """Store `label` once; StoreError if its id is already taken (never overwritten)."""
    data = json.dumps(label.model_dump(), sort_keys=True).encode()
    if not store.put_if_absent(label_key(label.run_id, label.label_id), data):
        raise StoreError(f"label {label.label_id!r} already exists")


def read_labels(store: Store, run_id: str) -> list[Label]:
    """Every label of the run, oldest first. StoreError on a label that is not one."""
    keys = sorted(k for k in store.list(labels_prefix(run_id)) if k.endswith(".json"))
    if isinstance(store, LocalStore) or len(keys) < 2:
        raw = [_get(store, k) for k in keys]
    else:  # a round trip per label on S3: a window of them at once
        with ThreadPoolExecutor(max_workers=_READ_WINDOW) as pool:
            raw = list(pool.map(lambda k: _get(store, k), keys))
    labels = []
    for key, data in zip(keys, raw, strict=True):
        if data is None:
            continue
        try:
            labels.append(Label.model_validate_json(data))
        except ValidationError as e:
            raise StoreError(f"invalid label {store.full_uri(key)}: {e.errors()[0]['msg']}") from e
    return sorted(labels, key=lambda lab: (lab.created_at, lab.label_id))


def _get(store: Store, key: str) -> bytes | None:
    try:
        return store.get(key)
    except NotFoundError:
        return None


def latest_verdicts(labels: Sequence[Label], target: str, scorer: str) -> dict[RowKey, Label]:
    """The newest label of each row of `target` for `scorer` (labels oldest first)."""
    out: dict[RowKey, Label] = {}
    for label in labels:
        if label.target == target and label.scorer == scorer:
            out[(label.sample_id, label.epoch)] = label
    return out


# -- statistics --------------------------------------------------------------------------------


class Kappa(NamedTuple):
    """Cohen's kappa of two raters on the same items, with the raw agreement."""

    n: int
    kappa: float | None  # None with no items, or when chance agreement is 1 (one class only)
    observed: float | None  # share of items both put in the same class
    expected: float | None  # agreement expected by chance from each rater's own shares


def cohen_kappa(pairs: Sequence[tuple[Any, Any]]) -> Kappa:
    """Cohen's (1960) kappa, (p_o - p_e) / (1 - p_e), for two raters' labels of the same items
    (any hashable categories)."""
    n = len(pairs)
    if n == 0:
        return Kappa(0, None, None, None)
    categories = {a for a, _ in pairs} | {b for _, b in pairs}
    observed = sum(1 for a, b in pairs if a == b) / n
    expected = sum(
        (sum(1 for a, _ in pairs if a == c) / n) * (sum(1 for _, b in pairs if b == c) / n)
        for c in categories
    )
    if math.isclose(expected, 1.0):
        return Kappa(n, None, observed, expected)
    return Kappa(n, (observed - expected) / (1.0 - expected), observed, expected)


class PpiEstimate(NamedTuple):
    """A prediction-powered mean: the scorer's mean plus the labelled rows' rectifier."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    scorer_mean: float | None
    rectifier: float | None  # mean human - scorer on the labelled rows
    n_scored: int
    n_labelled: int


def prediction_powered_mean(
    scores: Sequence[float],
    labelled_scores: Sequence[float],
    labelled_verdicts: Sequence[float],
    confidence: float = 0.95,
) -> PpiEstimate:
    """The PPI estimate of the mean human verdict (see the module docstring).

    `scores`: the scorer on every scored row; `labelled_scores` and `labelled_verdicts`: the
    scorer and the human on the labelled rows, pairwise. The interval needs two labels.
    """
    if len(labelled_scores) != len(labelled_verdicts):
        raise ValueError("labelled_scores and labelled_verdicts must pair up")
    f = np.asarray(scores, dtype=float)
    diff = np.asarray(labelled_verdicts, dtype=float) - np.asarray(labelled_scores, dtype=float)
    big_n, n = len(f), len(diff)
    if big_n == 0 or n == 0:
        mean = float(f.mean()) if big_n else None
        return PpiEstimate(None, None, None, mean, None, big_n, n)
    scorer_mean, rectifier = float(f.mean()), float(diff.mean())
    estimate = scorer_mean + rectifier
    if n < 2:
        return PpiEstimate(estimate, None, None, scorer_mean, rectifier, big_n, n)
    var_f = float(f.var(ddof=1)) / big_n if big_n > 1 else 0.0
    variance = var_f + float(diff.var(ddof=1)) / n
    half = normal_quantile(0.5 + confidence / 2.0) * math.sqrt(variance)
    return PpiEstimate(estimate, estimate - half, estimate + half, scorer_mean, rectifier, big_n, n)


def human_summary(
    scores: Mapping[RowKey, float | None],
    verdicts: Mapping[RowKey, Label],
    confidence: float = 0.95,
) -> dict[str, Any]:
    """What the labels of one target and scorer say (see the module docstring).

    `scores`: the scorer's score of each row (None: an error or unscored); labels of rows
    with no score count for the corrected mean, not for agreement or the estimate.
    """
    scored = {k: float(v) for k, v in scores.items() if v is not None}
    corrected = dict(scored)
    pairs: list[tuple[int, int]] = []
    labelled_scores: list[float] = []
    labelled_verdicts: list[float] = []
    for key, label in verdicts.items():
        if key not in scores:
            continue  # a row that is not in the run (any more)
        corrected[key] = label.verdict
        if key in scored:
            pairs.append((int(scored[key] >= AGREE_AT), int(label.verdict >= AGREE_AT)))
            labelled_scores.append(scored[key])
            labelled_verdicts.append(label.verdict)
    kappa = cohen_kappa(pairs)
    ppi = prediction_powered_mean(
        list(scored.values()), labelled_scores, labelled_verdicts, confidence
    )
    values = list(corrected.values())
    return {
        "labelled": len([k for k in verdicts if k in scores]),
        "scorer_mean": (sum(scored.values()) / len(scored)) if scored else None,
        "corrected_mean": (sum(values) / len(values)) if values else None,
        "agreement": kappa._asdict(),
        "ppi": ppi._asdict(),
        "disagreements": sum(1 for a, b in pairs if a != b),
    }
