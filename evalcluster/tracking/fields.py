"""Names and values of the MLflow params, metrics and tags evalcluster logs.

Layout (see docs/mlflow.md):

- experiment ``evalcluster/<suite name>``;
- parent run (one per evaluation run) params ``suite_version``, ``seed``, ``sample_count``,
  ``targets``; metrics ``<target>/<metric>`` for every child metric, plus the totals
  ``cost_usd``, ``tokens/input``, ``tokens/output`` and ``errors`` summed over targets;
- child run (one per target) params ``suite_version``, ``model``, ``provider``, ``sample_count``,
  ``seed`` and each generation parameter as ``params.<name>`` (prefixed so that a generation
  ``seed`` cannot collide with the suite's ``seed``); metrics as the job computed them.

Any param whose name looks like a credential is dropped, whatever the suite says.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

EXPERIMENT_PREFIX = "evalcluster/"

TAG_RUN_ID = "evalcluster.run_id"
TAG_RESULTS_URI = "evalcluster.results_uri"
TAG_SUITE = "evalcluster.suite"
TAG_SUITE_VERSION = "evalcluster.suite_version"
TAG_TARGET = "evalcluster.target"
TAG_TARGETS = "evalcluster.targets"
TAG_ROLE = "evalcluster.role"
TAG_RESUMED_FROM = "evalcluster.resumed_from"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"

ROLE_EVALUATION = "evaluation"
ROLE_TARGET = "target"

GENERATION_PARAM_PREFIX = "params."

# Metrics whose parent copy is also summed over the targets into an unprefixed total.
SUMMED_METRICS = ("cost_usd", "tokens/input", "tokens/output", "errors",
                  "cost_usd/saved_batch", "cost_usd/saved_cache")  # fmt: skip

# MLflow's limits (mlflow.utils.validation): param values 6000 chars, tag values 8000 chars.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pwd",
        "token",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "bearer",
        "cookie",
        "signature",
    }
)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def experiment_name(suite: str) -> str:
    """The MLflow experiment that holds every evaluation of `suite`."""
    return f"{EXPERIMENT_PREFIX}{suite}"


def looks_secret(name: str) -> bool:
    """Whether a param name looks like it holds a credential (``api_key``, ``X-Auth-Token``).

    Whole words only, so ``max_tokens`` (the word is "tokens") and ``top_k`` stay.
    """
    spaced = _CAMEL_BOUNDARY.sub(" ", name)
    words = {w.lower() for w in _WORD_SPLIT.split(spaced) if w}
    return bool(words & _SECRET_WORDS)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Generation params as MLflow params: nested mappings dotted, credentials dropped.

    ``{"temperature": 0, "extra": {"api_key": "x", "n": 1}}`` with prefix ``params.`` gives
    ``{"params.temperature": "0", "params.extra.n": "1"}``.
    """
    flat: dict[str, str] = {}
    for name, value in params.items():
        name = str(name)
        if looks_secret(name) or value is None:
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = _param_value(value)
    return flat


def finite_metrics(metrics: Mapping[str, float | int | None]) -> dict[str, float]:
    """The metrics that are real numbers (MLflow stores NaN, but it only confuses charts)."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if value is None or isinstance(value, bool):
            continue
        number = float(value)
        if math.isfinite(number):
            out[name] = number
    return out


def parent_metrics(per_target: Iterable[tuple[str, Mapping[str, float]]]) -> dict[str, float]:
    """Parent-run metrics: ``<target>/<metric>`` copies, plus totals of `SUMMED_METRICS`."""
    out: dict[str, float] = {}
    totals: dict[str, float] = {}
    for target, metrics in per_target:
        for name, value in metrics.items():
            out[f"{target}/{name}"] = value
            if name in SUMMED_METRICS:
                totals[name] = totals.get(name, 0.0) + value
    out.update(totals)
    return out


def tag_value(value: str) -> str:
    """`value` cut to MLflow's tag length limit."""
    return value if len(value) <= MAX_TAG_VALUE else value[: MAX_TAG_VALUE - 3] + "..."
