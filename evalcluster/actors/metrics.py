"""Prometheus metrics exported through Ray's metrics API. Their names are a contract: the
alert rules in infra/prometheus/, the Grafana dashboard in infra/grafana/ and the table in
docs/operations.md ("Metrics") use them.

Ray's agent serves them with the rest of Ray's metrics on each node's metrics export port,
prefixed with ``ray_`` (``evalcluster_requests_total`` is scraped as
``ray_evalcluster_requests_total``), so one scrape config covers the whole cluster.
"""

from __future__ import annotations

from functools import cache

from evalcluster.lazy_ray import ray_metrics as metrics

REQUESTS_TOTAL = "evalcluster_requests_total"
TOKENS_TOTAL = "evalcluster_tokens_total"
COST_USD_TOTAL = "evalcluster_cost_usd_total"
REQUEST_LATENCY_SECONDS = "evalcluster_request_latency_seconds"
BREAKER_STATE = "evalcluster_breaker_state"
SAMPLES_TOTAL = "evalcluster_samples_total"
RUN_BUDGET_USED_RATIO = "evalcluster_run_budget_used_ratio"
GATEWAY_REQUESTS_TOTAL = "evalcluster_gateway_requests_total"
GATEWAY_TOKENS_TOTAL = "evalcluster_gateway_tokens_total"
GATEWAY_COST_USD_TOTAL = "evalcluster_gateway_cost_usd_total"
BATCHES = "evalcluster_batches"

EXPORTED_METRICS = (
    REQUESTS_TOTAL,
    TOKENS_TOTAL,
    COST_USD_TOTAL,
    REQUEST_LATENCY_SECONDS,
    BREAKER_STATE,
    SAMPLES_TOTAL,
    RUN_BUDGET_USED_RATIO,
    GATEWAY_REQUESTS_TOTAL,
    GATEWAY_TOKENS_TOTAL,
    GATEWAY_COST_USD_TOTAL,
    BATCHES,
)
# `BATCHES` states, from `BatchLane.snapshot`: requests waiting to be gathered into a batch,
# batches at the provider, and the requests in them.
BATCH_STATES = {
    "queued": "queued",
    "in_progress": "batches_in_progress",
    "requests_in_progress": "requests_in_progress",
}

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


@cache
def gateway_requests_total() -> metrics.Counter:
    return metrics.Counter(
        GATEWAY_REQUESTS_TOTAL,
        description="Gateway calls per tenant and route, by outcome (ok, cached or an error kind).",
        tag_keys=("tenant", "model", "outcome"),
    )


@cache
def gateway_tokens_total() -> metrics.Counter:
    return metrics.Counter(
        GATEWAY_TOKENS_TOTAL,
        description="Tokens of gateway calls per tenant and route, by direction.",
        tag_keys=("tenant", "model", "direction"),
    )


@cache
def gateway_cost_usd_total() -> metrics.Counter:
    return metrics.Counter(
        GATEWAY_COST_USD_TOTAL,
        description="US dollars spent through the gateway per tenant and route.",
        tag_keys=("tenant", "model"),
    )


@cache
def batches() -> metrics.Gauge:
    return metrics.Gauge(
        BATCHES,
        description="Provider batch API work of an endpoint, by state: requests queued for a "
        "batch, batches in progress at the provider, requests in them.",
        tag_keys=("provider", "state"),
    )


# `BREAKER_STATE`'s values, by `CircuitBreaker.state`.
BREAKER_GAUGE = {"closed": 0, "half_open": 1, "open": 2}


def publish_breaker_state(provider: str, state: str) -> None:
    """Set `BREAKER_STATE` for `provider` to `state` ("closed", "half_open" or "open")."""
    breaker_state().set(BREAKER_GAUGE.get(state, 0), tags={"provider": provider})


def publish_batches(provider: str, snapshots: list[dict[str, int]]) -> None:
    """Set `BATCHES` for `provider` from its lanes' `BatchLane.snapshot`s (summed over runs)."""
    gauge = batches()
    for state, key in BATCH_STATES.items():
        value = sum(s.get(key, 0) for s in snapshots)
        gauge.set(value, tags={"provider": provider, "state": state})


class ProviderMetricsBuffer:
    """A provider actor's request metrics, summed locally and recorded once per batch.

    Recording a Ray metric costs about as much as a small HTTP request's parsing; a provider
    actor made five records per request. Counters are summed here and recorded on `flush`
    (sums are exact, only their timing moves); latencies are kept and observed on `flush`.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._outcomes: dict[str, int] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self._cost_usd = 0.0
        self._latencies_s: list[float] = []

    def request(self, outcome: str) -> None:
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1

    def success(self, input_tokens: int, output_tokens: int, cost: float, latency_s: float) -> None:
        self.request("ok")
        self._input_tokens += input_tokens
        self._output_tokens += output_tokens
        self._cost_usd += cost
        self._latencies_s.append(latency_s)

    def flush(self) -> None:
        tags = {"provider": self.provider}
        for outcome, count in self._outcomes.items():
            requests_total().inc(count, tags={**tags, "outcome": outcome})
        if self._input_tokens:
            tokens_total().inc(self._input_tokens, tags={**tags, "direction": "input"})
        if self._output_tokens:
            tokens_total().inc(self._output_tokens, tags={**tags, "direction": "output"})
        if self._cost_usd:
            cost_usd_total().inc(self._cost_usd, tags=tags)
        histogram = request_latency_seconds()
        for latency in self._latencies_s:
            histogram.observe(latency, tags=tags)
        self._outcomes.clear()
        self._input_tokens = self._output_tokens = 0
        self._cost_usd = 0.0
        self._latencies_s.clear()
