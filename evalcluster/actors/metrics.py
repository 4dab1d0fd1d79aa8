"""Prometheus metrics exported through Ray's metrics API (names fixed by DESIGN.md).

Ray prefixes nothing to application metrics; its agent serves them with the rest of Ray's
metrics on each node's metrics export port, so one scrape config covers the whole cluster.
"""

from __future__ import annotations

from functools import cache

from ray.util import metrics

REQUESTS_TOTAL = "evalcluster_requests_total"
TOKENS_TOTAL = "evalcluster_tokens_total"
COST_USD_TOTAL = "evalcluster_cost_usd_total"
REQUEST_LATENCY_SECONDS = "evalcluster_request_latency_seconds"
BREAKER_STATE = "evalcluster_breaker_state"
SAMPLES_TOTAL = "evalcluster_samples_total"
RUN_BUDGET_USED_RATIO = "evalcluster_run_budget_used_ratio"

EXPORTED_METRICS = (
    REQUESTS_TOTAL,
    TOKENS_TOTAL,
    COST_USD_TOTAL,
    REQUEST_LATENCY_SECONDS,
    BREAKER_STATE,
    SAMPLES_TOTAL,
    RUN_BUDGET_USED_RATIO,
)

LATENCY_BOUNDARIES_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]


@cache
def requests_total() -> metrics.Counter:
    return metrics.Counter(
        REQUESTS_TOTAL,
        description="Provider requests by outcome (ok or an error kind).",
        tag_keys=("provider", "outcome"),
    )


@cache
def tokens_total() -> metrics.Counter:
    return metrics.Counter(
        TOKENS_TOTAL,
        description="Tokens reported by providers, by direction (input or output).",
        tag_keys=("provider", "direction"),
    )


@cache
def cost_usd_total() -> metrics.Counter:
    return metrics.Counter(
        COST_USD_TOTAL, description="US dollars spent per provider.", tag_keys=("provider",)
    )


@cache
def request_latency_seconds() -> metrics.Histogram:
    return metrics.Histogram(
        REQUEST_LATENCY_SECONDS,
        description="Latency of successful provider requests.",
        boundaries=LATENCY_BOUNDARIES_S,
        tag_keys=("provider",),
    )


@cache
def breaker_state() -> metrics.Gauge:
    return metrics.Gauge(
        BREAKER_STATE,
        description="Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        tag_keys=("provider",),
    )


@cache
def samples_total() -> metrics.Counter:
    return metrics.Counter(
        SAMPLES_TOTAL,
        description="Samples finished per run, by status (ok, error, cached).",
        tag_keys=("run_id", "status"),
    )


@cache
def run_budget_used_ratio() -> metrics.Gauge:
    return metrics.Gauge(
        RUN_BUDGET_USED_RATIO,
        description="Share of a run's budget spent or reserved (0 to 1).",
        tag_keys=("run_id",),
    )
